"""Image distances for projection that work offline, and the quality metrics we report.

Three losses, each built once around its target (so the target's features are computed
once) and called with the current image (NCHW, about [-1, 1]), returning the scalar and its
named parts:

- :class:`PixelLoss`: mean squared error plus ``1 - MS-SSIM``; always available.
- :class:`DiscriminatorLoss`: distances between the model's own discriminator activations at
  every resolution (normalised per position, as LPIPS does); for files that hold a D.
- :class:`LpipsLoss`: LPIPS-VGG16 (Zhang et al. 2018): a VGG16 we define, loaded from
  torchvision's ``vgg16-397923af.pth`` *when it is already on the machine* (torch hub cache,
  ``$LATENTSTUDIO_VGG16`` or a path given), with ``weights_only=True`` and never downloaded,
  plus the calibrated linear layers of the lpips package (BSD-2, shipped in ``weights/``).

:func:`build_loss` resolves ``"auto"``: LPIPS when the backbone is found, else the
discriminator when the file holds one, else pixels; each perceptual loss is added to the pixel
loss, which anchors colours (measured in ``benchmarks/projection.py``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from latentstudio.untrusted import describe, open_regular_file, prefixed

LOSSES = ("auto", "lpips", "discriminator", "pixel")
VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16 (its hub cache name)
MAX_VGG16_BYTES = 1 << 30  # torchvision's file is 528 MiB
VGG16_ENV = "LATENTSTUDIO_VGG16"
LPIPS_LIN = Path(__file__).with_name("weights") / "lpips_vgg_lin_v0.1.safetensors"
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
PIXEL_SSIM_WEIGHT = 0.1  # (1 - MS-SSIM) next to the MSE of [-1, 1] images


class LossUnavailable(ValueError):
    """The requested loss cannot run here (no VGG16 weights, no discriminator in the file)."""


# -- SSIM / PSNR -----------------------------------------------------------------------------
def _gaussian_window(size: int, channels: int, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean SSIM and mean contrast-structure term (valid Gaussian windows)."""
    channels = x.shape[1]
    size = min(SSIM_WINDOW, x.shape[-1], x.shape[-2])
    window = _gaussian_window(size, channels, x)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs
    return ssim_map.mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004; 11x11 Gaussian, sigma 1.5), mean over channels,
    per image (``[N]``). ``data_range`` 2 for [-1, 1] images, 255 for pixel values."""
    return _ssim_parts(x, y, data_range)[0]


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Multi-scale SSIM over as many of the five standard scales as the image allows (each
    scale at least one window wide), with the standard weights renormalised; ``[N]``."""
    scales = max(1, min(len(MS_SSIM_WEIGHTS), int(math.log2(min(x.shape[-2:]) / SSIM_WINDOW)) + 1))
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], device=x.device)
    weights = weights / weights.sum()
    terms = []
    for scale in range(scales):
        full, cs = _ssim_parts(x, y, data_range)
        terms.append((full if scale == scales - 1 else cs).clamp(min=1e-6))
        if scale < scales - 1:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return torch.prod(torch.stack(terms, dim=-1) ** weights, dim=-1)


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB (``inf`` when equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two ``H x W x C`` uint8 images (the metric we report)."""
    def as_tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]

    return float(ssim(as_tensor(a), as_tensor(b), data_range=255.0)[0])


# -- losses ----------------------------------------------------------------------------------
class PixelLoss:
    """MSE of [-1, 1] images plus ``ssim_weight * (1 - MS-SSIM)``."""

    name = "pixel"

    def __init__(self, target: torch.Tensor, ssim_weight: float = PIXEL_SSIM_WEIGHT):
        self.target, self.ssim_weight = target, ssim_weight

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        mse = (image - self.target).square().mean()
        structure = 1 - ms_ssim(image, self.target).mean()
        return mse + self.ssim_weight * structure, {"mse": float(mse.detach()), "ms_ssim": float(1 - structure.detach())}


def _unit_channels(features: torch.Tensor) -> torch.Tensor:
    """Each position's feature vector scaled to unit length (LPIPS' normalisation)."""
    return features / (features.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)


class DiscriminatorLoss:
    """Mean squared distance of channel-normalised discriminator activations, averaged over the
    blocks (every resolution from the image's down to 8x8). Needs no class label: only the
    convolutional blocks are used, not the conditional epilogue."""

    name = "discriminator"

    def __init__(self, D: nn.Module, target: torch.Tensor):
        if not hasattr(D, "block_resolutions"):
            raise LossUnavailable("the discriminator is not a StyleGAN2-style D")
        if D.img_resolution != target.shape[-1]:
            raise LossUnavailable(f"the discriminator takes {D.img_resolution} px images, the generator makes {target.shape[-1]} px")
        self.D = D.eval()
        with torch.no_grad():
            self.targets = [_unit_channels(f) for f in self.features(target)]

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        x, img, out = None, image, []
        for res in self.D.block_resolutions:
            x, img = getattr(self.D, f"b{res}")(x, img, force_fp32=True)
            out.append(x.float())
        return out

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        parts = [(_unit_channels(f) - t).square().sum(dim=1).mean() for f, t in zip(self.features(image), self.targets)]
        loss = torch.stack(parts).mean()
        return loss, {"d_features": float(loss.detach())}


VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG16_TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision's vgg16.features
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


class VGG16Features(nn.Module):
    """VGG16's convolutional part with torchvision's module indices (``features.N``), so its
    state dict loads unchanged, returning the five LPIPS taps."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for spec in VGG16_LAYERS:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(spec), 3, padding=1), nn.ReLU(inplace=False)]
                channels = int(spec)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in VGG16_TAPS:
                taps.append(x)
        return taps


def find_vgg16(path: str | os.PathLike | None = None) -> Path | None:
    """Where torchvision's VGG16 weights are on this machine: ``path`` when given (it must
    exist), else ``$LATENTSTUDIO_VGG16``, else the torch hub cache; ``None`` when they are
    nowhere (nothing is downloaded)."""
    if path:
        if not os.path.lexists(path):
            raise LossUnavailable(f"{path}: no such VGG16 weights file")
        return Path(path)  # a folder or a pipe is refused, with its reason, by load_vgg16
    for candidate in (os.environ.get(VGG16_ENV), Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def load_vgg16(path: str | os.PathLike, device: torch.device | str = "cpu") -> VGG16Features:
    """Our VGG16 with torchvision's ``features.*`` weights from ``path`` (``weights_only=True``,
    a regular file of at most :data:`MAX_VGG16_BYTES`; anything else is one line)."""
    with open_regular_file(path, prefixed(LossUnavailable), "VGG16 weights file") as (_, size):
        if size > MAX_VGG16_BYTES:
            raise LossUnavailable(f"{path}: {size:,} bytes, more than VGG16 weights can be ({MAX_VGG16_BYTES:,})")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file is one clear message
            raise LossUnavailable(f"{path}: not a readable VGG16 state dict ({describe(error, 200)})") from None
    if not isinstance(state, dict):
        raise LossUnavailable(f"{path}: expected a state dict, found {type(state).__name__}")
    features = {k: v for k, v in state.items() if isinstance(k, str) and k.startswith("features.")}
    network = VGG16Features()
    try:
        network.load_state_dict(features, strict=True)
    except RuntimeError as error:
        raise LossUnavailable(f"{path}: not torchvision's VGG16 ({str(error).splitlines()[0]})") from None
    return network.eval().requires_grad_(False).to(device)


def lpips_linear_weights() -> list[torch.Tensor]:
    """The five calibrated LPIPS-VGG v0.1 channel weights (non-negative)."""
    from safetensors.torch import load_file

    weights = load_file(str(LPIPS_LIN))
    return [weights[f"lin{i}"] for i in range(5)]


class LpipsLoss:
    """LPIPS-VGG16 v0.1. Images above 256 px are area-downsampled to 256 first (NVlabs'
    projector does the same); smaller ones are used as they are."""

    name = "lpips"

    def __init__(self, vgg: VGG16Features, target: torch.Tensor):
        self.vgg = vgg
        device = target.device
        self.weights = [w.to(device).reshape(1, -1, 1, 1) for w in lpips_linear_weights()]
        self.shift = torch.tensor(LPIPS_SHIFT, device=device).reshape(1, 3, 1, 1)
        self.scale = torch.tensor(LPIPS_SCALE, device=device).reshape(1, 3, 1, 1)
        with torch.no_grad():
            self.targets = [_unit_channels(f) for f in self.vgg(self._prepare(target))]

    def _prepare(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[1] == 1:
            image = image.repeat(1, 3, 1, 1)
        if image.shape[-1] > 256:
            image = F.adaptive_avg_pool2d(image, (256, 256))
        return (image - self.shift) / self.scale

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        features = self.vgg(self._prepare(image))
        loss = sum(((_unit_channels(f) - t).square() * w).sum(dim=1).mean() for f, t, w in zip(features, self.targets, self.weights))
        return loss, {"lpips": float(loss.detach())}


class SumLoss:
    """A perceptual loss plus the pixel loss; ``name`` is the perceptual one's."""

    def __init__(self, *losses, weights: tuple[float, ...]):
        self.losses, self.weights = losses, weights
        self.name = losses[0].name

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        total, values = 0.0, {}
        for loss, weight in zip(self.losses, self.weights):
            value, parts = loss(image)
            total = total + weight * value
            values.update(parts)
        return total, values


@dataclass(frozen=True)
class LossChoice:
    """The loss that will run, and why (shown in reports and the GUI)."""

    name: str
    reason: str


def choose_loss(requested: str, has_discriminator: bool, vgg16_path: str | os.PathLike | None = None) -> tuple[LossChoice, Path | None]:
    """Resolve ``requested`` (one of :data:`LOSSES`) to what can run here, or raise
    :class:`LossUnavailable` for an explicit request that cannot."""
    if requested not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {requested!r}")
    vgg = find_vgg16(vgg16_path) if requested in ("auto", "lpips") else None
    if requested == "lpips":
        if vgg is None:
            raise LossUnavailable(f"LPIPS needs torchvision's VGG16 weights ({VGG16_FILE}) in the torch hub cache, "
                                  f"${VGG16_ENV} or --vgg16 PATH; latentstudio never downloads them")
        return LossChoice("lpips", f"LPIPS-VGG16 from {vgg}"), vgg
    if requested == "discriminator":
        if not has_discriminator:
            raise LossUnavailable("this model file holds no discriminator (D)")
        return LossChoice("discriminator", "the model's own discriminator features"), None
    if requested == "pixel":
        return LossChoice("pixel", "pixel MSE + MS-SSIM"), None
    if vgg is not None:
        return LossChoice("lpips", f"auto: LPIPS-VGG16 weights found at {vgg}"), vgg
    if has_discriminator:
        return LossChoice("discriminator", "auto: no VGG16 weights here; the file holds a discriminator"), None
    return LossChoice("pixel", "auto: no VGG16 weights here and no discriminator in the file: pixel MSE + MS-SSIM"), None


PERCEPTUAL_WEIGHT = {"lpips": 1.0, "discriminator": 1.0}


def build_loss(choice: LossChoice, target: torch.Tensor, D: nn.Module | None = None, vgg16_path: Path | None = None):
    """The callable loss for a resolved choice (perceptual ones summed with the pixel loss)."""
    pixel = PixelLoss(target)
    if choice.name == "pixel":
        return pixel
    if choice.name == "discriminator":
        if D is None:
            raise LossUnavailable("the discriminator loss needs the model's D")
        perceptual = DiscriminatorLoss(D, target)
    else:
        perceptual = LpipsLoss(load_vgg16(vgg16_path, target.device), target)
    return SumLoss(perceptual, pixel, weights=(PERCEPTUAL_WEIGHT[choice.name], 1.0))
