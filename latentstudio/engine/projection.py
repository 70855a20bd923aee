"""Projection (GAN inversion): find the latent whose image matches a photo.

``project(G, target)`` runs the shared Adam loop (:mod:`latentstudio.engine.latent_optimization`)
on one of three latent spaces, starting from the mean of sampled ``w``:

- ``"w"``: one ``w`` for every layer (NVlabs' projector);
- ``"w+"``: one ``w`` per layer (Abdal et al., Image2StyleGAN): far closer reconstructions,
  slightly less editable;
- ``"w-then-w+"``: ``w`` for the first part of the run, then per-layer refinement from there.

The schedule is NVlabs' (learning-rate ramp up and down, Gaussian noise added to ``w`` and
ramped down to zero over the first three quarters); optimising the noise buffers (with
NVlabs' multi-scale regulariser and renormalisation) is available but off by default: a recipe
renders with the model's own constant noise, so noise fitted to the photo would make the
reported image differ from what the editor and every export show. With it on, the result
carries the fitted noise and reports both images. What was measured:
``benchmarks/projection.py`` and ``benchmarks/RESULTS.md``.

The caller's generator is never changed: the latents are the only variables, unless noise is
optimised, and then a private copy of G holds the noise.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from latentstudio.engine.latent_optimization import (
    Progress,
    StepOutput,
    noise_buffers,
    optimize,
    ramp_schedule,
    trainable_copy,
)
from latentstudio.engine.projection_losses import LossChoice, build_loss, choose_loss, psnr_uint8, ssim_uint8
from latentstudio.engine.recipe import EditRecipe, class_vector
from latentstudio.engine.renderer import Renderer, to_uint8

SPACES = ("w", "w+", "w-then-w+")
DEFAULT_STEPS = 500
DEFAULT_SPACE = "w-then-w+"  # the closest reconstructions of the three (benchmarks/RESULTS.md)
# Base learning rates per space (Adam), measured on the default model's own images.
LEARNING_RATES = {"w": 0.1, "w+": 0.05}
W_PHASE = 0.5  # w-then-w+: the share of the steps spent in W
NOISE_RAMP = 0.75  # the w noise reaches zero at this share of the run (NVlabs)
# Noise added to w at the start, times the spread of sampled w: NVlabs' 0.05 in W (it helps
# the single w out of poor starts); none in W+, where it measured worse (benchmarks/RESULTS.md).
W_NOISE = {"w": 0.05, "w+": 0.0}
NOISE_REGULARIZE = 1e5  # weight of the noise regulariser (NVlabs)
W_SAMPLES = 10_000


@dataclass
class Projection:
    """The result of :func:`project`.

    ``latent`` is ``[1, num_ws, w_dim]`` (float32, CPU); ``image`` the image its recipe renders
    (the model's constant noise), ``target`` the image it was fitted to, both ``H x W x C``
    uint8, and ``psnr`` / ``ssim`` compare the two. With ``optimize_noise``, ``noise`` holds the
    fitted buffers by name, and ``noise_image`` / ``noise_psnr`` / ``noise_ssim`` describe the
    image with them (what the optimiser saw, not what a recipe reproduces).
    """

    latent: torch.Tensor
    space: str
    loss: LossChoice
    steps: int
    total_steps: int
    reason: str
    seconds: float
    history: list[dict[str, float]]
    image: np.ndarray
    target: np.ndarray
    psnr: float
    ssim: float
    class_index: int | None = None
    model: str | None = None
    noise: dict[str, torch.Tensor] | None = None
    noise_image: np.ndarray | None = None
    noise_psnr: float | None = None
    noise_ssim: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def recipe(self) -> EditRecipe:
        """An :class:`EditRecipe` with ``latent`` set: every edit of the editor applies to it."""
        return EditRecipe(latent=tuple(self.latent.reshape(-1).tolist()), class_index=self.class_index,
                          truncation_psi=1.0, noise_mode="const", model=self.model)

    def report(self) -> dict[str, Any]:
        """The numbers for ``report.json`` and the GUI."""
        report = {"space": self.space, "loss": self.loss.name, "loss_reason": self.loss.reason,
                  "steps": self.steps, "requested_steps": self.total_steps, "stopped": self.reason,
                  "seconds": round(self.seconds, 3), "steps_per_second": round(self.steps / max(self.seconds, 1e-9), 2),
                  "psnr": round(self.psnr, 3), "ssim": round(self.ssim, 4),
                  "final_loss": self.history[-1] if self.history else {}, "settings": self.settings}
        if self.noise_psnr is not None:
            report.update(noise_psnr=round(self.noise_psnr, 3), noise_ssim=round(self.noise_ssim, 4))
        return report


def target_tensor(image: np.ndarray, G: torch.nn.Module) -> tuple[torch.Tensor, np.ndarray]:
    """A photo crop (``H x W x 3`` uint8) as G's target: resized to G's resolution (centre
    square first), grayscale for one-channel models; the NCHW [-1, 1] tensor on G's device
    and the uint8 image it was made from (``R x R x C``)."""
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or image.dtype != np.uint8:
        raise ValueError(f"a target must be an H x W x 1/3/4 uint8 image, not {image.shape} {image.dtype}")
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else np.ascontiguousarray(image[..., :3]))
    side = min(picture.size)
    if picture.width != picture.height:
        left, top = (picture.width - side) // 2, (picture.height - side) // 2
        picture = picture.crop((left, top, left + side, top + side))
    resolution = int(G.img_resolution)
    if side != resolution:
        picture = picture.resize((resolution, resolution), Image.Resampling.LANCZOS)
    picture = picture.convert("L" if G.img_channels == 1 else "RGB")
    pixels = np.asarray(picture, dtype=np.uint8)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    device = G.mapping.w_avg.device
    tensor = torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1)[None].to(device)
    return (tensor - 128.0) / 127.5, pixels  # the inverse of to_uint8's x * 127.5 + 128


def w_statistics(G: torch.nn.Module, class_index: int | None = None, samples: int = W_SAMPLES, seed: int = 0) -> tuple[torch.Tensor, float]:
    """Mean of sampled ``w`` (``[1, 1, w_dim]``) and their spread (root mean squared distance
    to the mean, NVlabs' ``w_std``), for the class of a conditional model."""
    device = G.mapping.w_avg.device
    generator = torch.Generator().manual_seed(seed)
    c = class_vector(G, class_index, device) if G.c_dim else torch.zeros([1, 0], device=device)
    chunks = []
    with torch.no_grad():
        for start in range(0, samples, 1000):
            z = torch.randn([min(1000, samples - start), G.z_dim], generator=generator).to(device)
            chunks.append(G.mapping(z, c.expand(len(z), -1), truncation_psi=1)[:, :1].float())
    w = torch.cat(chunks)
    mean = w.mean(dim=0, keepdim=True)
    spread = float((w - mean).square().sum(dim=-1).mean().sqrt())
    return mean, spread


def noise_regularizer(buffers: list[torch.Tensor]) -> torch.Tensor:
    """NVlabs' noise regulariser: squared autocorrelation at one-pixel shifts of each buffer,
    at every scale down to 8x8, so fitted noise stays noise instead of drawing the image."""
    total = torch.zeros((), device=buffers[0].device)
    for noise in buffers:
        noise = noise.reshape(1, 1, *noise.shape[-2:])
        while True:
            total = total + (noise * torch.roll(noise, 1, dims=3)).mean().square()
            total = total + (noise * torch.roll(noise, 1, dims=2)).mean().square()
            if noise.shape[-1] <= 8:
                break
            noise = torch.nn.functional.avg_pool2d(noise, 2)
    return total


class ProjectionObjective:
    """One phase of a projection as an :class:`~latentstudio.engine.latent_optimization.Objective`."""

    def __init__(self, synthesis: torch.nn.Module, num_ws: int, start: torch.Tensor, loss, w_spread: float,
                 lr: float, noise: list[torch.Tensor], seed: int, step_offset: int, total_steps: int,
                 w_noise: float = 0.0, noise_ramp: float = NOISE_RAMP, noise_weight: float = NOISE_REGULARIZE):
        self.synthesis, self.num_ws, self.loss = synthesis, num_ws, loss
        self.w = trainable_copy(start)  # [1, 1 or num_ws, w_dim]
        self.noise, self.noise_weight = noise, noise_weight
        self.lr, self.w_spread, self.w_noise, self.noise_ramp = lr, w_spread, w_noise, noise_ramp
        self.offset, self.total = step_offset, total_steps
        self.generator = torch.Generator().manual_seed(seed)

    def parameter_groups(self) -> list[dict[str, Any]]:
        return [{"params": [self.w] + self.noise, "lr": self.lr}]

    def forward(self, step: int, total: int) -> StepOutput:
        t = (self.offset + step) / max(self.total, 1)
        scale = self.w_spread * self.w_noise * max(0.0, 1.0 - t / self.noise_ramp) ** 2 if self.noise_ramp > 0 else 0.0
        w = self.w
        if scale > 0:
            w = w + scale * torch.randn(w.shape, generator=self.generator).to(w.device)
        image = self.synthesis(w.expand(-1, self.num_ws, -1), noise_mode="const")
        loss, values = self.loss(image)
        if self.noise:
            regularizer = noise_regularizer(self.noise)
            loss = loss + self.noise_weight * regularizer
            values["noise_reg"] = float(regularizer.detach())
        values["loss"] = float(loss.detach())
        return StepOutput(loss=loss, values=values, image=image)

    def after_step(self, step: int, output: StepOutput) -> bool:
        for buffer in self.noise:  # NVlabs: keep each buffer zero-mean, unit-variance
            buffer -= buffer.mean()
            buffer *= buffer.square().mean().rsqrt()
        return False

    def current_ws(self) -> torch.Tensor:
        return self.w.detach().expand(-1, self.num_ws, -1)


def project(
    G: torch.nn.Module,
    target: np.ndarray,
    space: str = DEFAULT_SPACE,
    steps: int = DEFAULT_STEPS,
    loss: str = "auto",
    D: torch.nn.Module | None = None,
    vgg16: str | os.PathLike | None = None,
    lr: float | None = None,
    optimize_noise: bool = False,
    w_noise: float | None = None,
    seed: int = 0,
    class_index: int | None = None,
    callback: Callable[[Progress], None] | None = None,
    every: int = 10,
    should_stop: Callable[[], bool] | None = None,
) -> Projection:
    """Fit a latent of ``G`` to ``target`` (``H x W x 3`` uint8, already aligned).

    ``loss``: ``"auto"``, ``"lpips"``, ``"discriminator"`` (needs ``D``) or ``"pixel"``
    (:func:`~latentstudio.engine.projection_losses.choose_loss`); ``vgg16``: a path to
    torchvision's VGG16 weights. ``w_noise``: the starting w noise (times the spread of
    sampled w), by default :data:`W_NOISE` of each phase's space. ``callback`` gets a
    :class:`Progress` every ``every`` steps (its ``step`` / ``total`` count the whole run
    across phases); ``should_stop()`` cancels, and a cancelled run still returns the latent
    it reached. ``seed`` fixes the w noise and the sampling of ``w`` statistics, so a run is
    reproducible.
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(SPACES)}, not {space!r}")
    if steps < 0:
        raise ValueError(f"steps must be zero or more, not {steps}")
    if G.c_dim and class_index is None:
        class_index = 0
    choice, vgg16_path = choose_loss(loss, D is not None, vgg16)
    target_t, target_pixels = target_tensor(target, G)
    image_loss = build_loss(choice, target_t, D, vgg16_path)
    start_w, spread = w_statistics(G, class_index if G.c_dim else None, seed=seed)

    model = copy.deepcopy(G) if optimize_noise else G  # fitted noise lives in a private copy
    buffers = noise_buffers(model) if optimize_noise else []
    if optimize_noise:
        generator = torch.Generator().manual_seed(seed + 1)
        for buffer in buffers:
            buffer.copy_(torch.randn(buffer.shape, generator=generator))  # NVlabs starts from fresh noise
            buffer.requires_grad_(True)

    phases = _phases(space, steps, lr)
    start = time.perf_counter()
    history: list[dict[str, float]] = []
    done, reason, w = 0, "done", start_w
    for phase_space, phase_steps, phase_lr in phases:
        if phase_space == "w+" and w.shape[1] == 1:
            w = w.expand(-1, G.num_ws, -1)
        objective = ProjectionObjective(model.synthesis, G.num_ws, w, image_loss, spread, phase_lr, buffers, seed + done,
                                        done, steps, w_noise=W_NOISE[phase_space] if w_noise is None else w_noise)
        result = optimize(objective, phase_steps, phase_lr, ramp_schedule(), _offset(callback, done, steps, start),
                          every, should_stop)
        history += result.history
        done += result.steps
        w = objective.w.detach()
        if result.reason == "cancelled":
            reason = "cancelled"
            break
    for buffer in buffers:
        buffer.requires_grad_(False)
    seconds = time.perf_counter() - start

    latent = w.expand(-1, G.num_ws, -1).detach().float().cpu().contiguous()
    image = _render(G, latent)
    result = Projection(latent=latent, space=space, loss=choice, steps=done, total_steps=steps, reason=reason,
                        seconds=seconds, history=history, image=image, target=target_pixels,
                        psnr=psnr_uint8(image, target_pixels), ssim=ssim_uint8(image, target_pixels),
                        class_index=class_index, model=getattr(getattr(G, "info", None), "fingerprint", None),
                        settings={"phases": [p[0] for p in phases], "lr": [p[2] for p in phases],
                                  "w_noise": [W_NOISE[p[0]] if w_noise is None else w_noise for p in phases],
                                  "optimize_noise": optimize_noise, "seed": seed})
    if optimize_noise:
        with torch.no_grad():
            result.noise_image = to_uint8(model.synthesis(latent.to(start_w.device), noise_mode="const"))[0]
        result.noise = {name: b.detach().cpu().clone() for name, b in model.synthesis.named_buffers() if name.endswith("noise_const")}
        result.noise_psnr = psnr_uint8(result.noise_image, target_pixels)
        result.noise_ssim = ssim_uint8(result.noise_image, target_pixels)
    return result


def _phases(space: str, steps: int, lr: float | None) -> list[tuple[str, int, float]]:
    """(space, steps, base learning rate) of each phase of the run."""
    if space == "w-then-w+":
        first = int(round(steps * W_PHASE))
        return [("w", first, lr or LEARNING_RATES["w"]), ("w+", steps - first, lr or LEARNING_RATES["w+"])]
    return [(space, steps, lr or LEARNING_RATES[space])]


def _offset(callback, done: int, total: int, start: float):
    """The callback with steps and time counted over the whole run, not this phase."""
    if callback is None:
        return None
    before = time.perf_counter() - start

    def shifted(progress: Progress) -> None:
        callback(dataclasses.replace(progress, step=progress.step + done, total=total, elapsed_s=progress.elapsed_s + before))

    return shifted


def _render(G: torch.nn.Module, latent: torch.Tensor) -> np.ndarray:
    """What the recipe of ``latent`` shows: the editor's own renderer, constant noise."""
    frame = Renderer(G, incremental=False).render(EditRecipe(latent=tuple(latent.reshape(-1).tolist()), class_index=0 if G.c_dim else None))
    if not frame.ok:
        raise RuntimeError(frame.error)
    return frame.raw
