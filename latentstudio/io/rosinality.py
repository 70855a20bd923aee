"""rosinality/stylegan2-pytorch weights as latentstudio's StyleGAN2 networks (NVlabs names).

Pure functions from plain data: a rosinality ``state_dict`` (name -> tensor) goes in, the
NVlabs-style init kwargs and ``state_dict`` come out. Reading the file is
:mod:`latentstudio.io.rosinality_checkpoint`'s job; building the network is
:mod:`latentstudio.io.architectures`'.

rosinality's ``model.py`` computes the same functions as NVlabs' StyleGAN2 (configs E/F:
skip generator, residual discriminator) with the same parameters, named and shaped
differently, so every tensor maps one to one:

- mapping ``style.{i}`` (after a PixelNorm at ``style.0``) -> ``mapping.fc{i-1}``; both
  scale by ``lr_mul / sqrt(fan_in)`` at run time, rosinality's ``lr_mlp`` default 0.01 is
  NVlabs' ``lr_multiplier`` (``train.py`` has no option to change it);
- ``input.input`` ``[1, C, 4, 4]`` -> ``b4.const``; ``conv1`` -> ``b4.conv1``, ``to_rgb1`` ->
  ``b4.torgb``; ``convs.{2k}`` / ``convs.{2k+1}`` -> ``b{8*2^k}.conv0`` / ``conv1``,
  ``to_rgbs.{k}`` -> ``b{8*2^k}.torgb``;
- ``conv.weight`` ``[1, O, I, k, k]`` -> ``weight`` ``[O, I, k, k]`` (rosinality's transposed
  convolution is NVlabs' up-sampling path, no flip), ``conv.modulation`` -> ``affine``
  (bias initialised to 1 in both), ``noise.weight`` ``[1]`` -> ``noise_strength`` ``[]``,
  ``activate.bias`` (the fused leaky ReLU's bias) -> ``bias``, ToRGB ``bias`` ``[1, 3, 1, 1]``
  -> ``[3]``, ``noises.noise_{i}`` ``[1, 1, R, R]`` -> the layer's ``noise_const`` ``[R, R]``;
- the blur kernels (buffers) are checked to be the standard ``[1, 3, 3, 1]`` and dropped:
  our layers build their own.

Widths come from the tensors' shapes; they must follow a ``min(channel_base / res,
channel_max)`` rule, as rosinality's table does (``channel_base = 16384 * channel_multiplier``,
``channel_max = 512`` for multipliers 1 and 2). Nothing about the sizes is assumed.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from latentstudio.io.architectures import UnsupportedNetwork

BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)
MAPPING_LR_MULTIPLIER = 0.01  # rosinality's lr_mlp default
W_AVG_BETA = 0.995  # for fine-tuning: the EMA our trainer keeps of W


class _Reader:
    """Takes tensors out of a state dict by name, checking each one's rank, and remembers
    which it took so that anything left over (another architecture) can be refused."""

    def __init__(self, state: Mapping[str, Any], network: str):
        self.state = state
        self.network = network
        self.taken: set[str] = set()

    def take(self, key: str, ndim: int) -> torch.Tensor:
        value = self.state.get(key)
        if value is None:
            raise UnsupportedNetwork(f"rosinality {self.network}: {key} is missing")
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise UnsupportedNetwork(f"rosinality {self.network}: {key} is not a floating-point tensor")
        if value.ndim != ndim:
            raise UnsupportedNetwork(f"rosinality {self.network}: {key} has shape {list(value.shape)}, expected {ndim} dimensions")
        self.taken.add(key)
        return value

    def take_unit_dims(self, key: str, shape: list[int | None]) -> torch.Tensor:
        """Take ``key``, whose shape must be ``shape`` (None: any size), keeping only the
        dimensions given as None (``[1, 1, None, None]``: ``[1, 1, R, R]`` -> ``[R, R]``)."""
        value = self.take(key, len(shape))
        if any(want is not None and got != want for got, want in zip(value.shape, shape)):
            pattern = ", ".join("n" if want is None else str(want) for want in shape)
            raise UnsupportedNetwork(f"rosinality {self.network}: {key} has shape {list(value.shape)}, expected [{pattern}]")
        return value.reshape([size for size, want in zip(value.shape, shape) if want is None])

    def take_blur(self, key: str, gain: float) -> None:
        """Check one of rosinality's FIR kernels (``make_kernel([1, 3, 3, 1]) * gain``)."""
        kernel = self.take(key, 2)
        taps = torch.tensor(BLUR_TAPS)
        expected = torch.outer(taps, taps) / taps.sum() ** 2 * gain
        if kernel.shape != expected.shape or not torch.allclose(kernel.float(), expected, atol=1e-6):
            raise UnsupportedNetwork(f"rosinality {self.network}: {key} is not the standard [1, 3, 3, 1] blur kernel")

    def indices(self, pattern: str) -> list[int]:
        """The sorted integers ``i`` for which ``pattern`` (with one ``(\\d+)`` group) names a key;
        they must run 0..n-1 or 1..n without gaps."""
        found = sorted({int(m.group(1)) for key in self.state if (m := re.fullmatch(pattern, key))})
        if found and found != list(range(found[0], found[0] + len(found))):
            raise UnsupportedNetwork(f"rosinality {self.network}: the layers {pattern} are not numbered consecutively")
        return found

    def refuse_leftovers(self) -> None:
        leftover = sorted(set(self.state) - self.taken)
        if leftover:
            shown = ", ".join(leftover[:4]) + (f" and {len(leftover) - 4} more" if len(leftover) > 4 else "")
            raise UnsupportedNetwork(
                f"rosinality {self.network}: unexpected parameters {shown} "
                "(not the StyleGAN2 model.py architecture; forks such as SWAGAN are not supported)"
            )


def channel_rule(widths: Mapping[int, int], what: str) -> tuple[int, int]:
    """``(channel_base, channel_max)`` such that ``min(channel_base // res, channel_max)``
    gives every width in ``widths`` (resolution -> channels), as NVlabs networks compute them."""
    channel_max = max(widths.values())
    below_max = {res * width for res, width in widths.items() if width < channel_max}
    if not below_max:
        channel_base = channel_max * max(widths)
    elif len(below_max) == 1:
        channel_base = below_max.pop()
    else:
        channel_base = 0
    if channel_base <= 0 or any(min(channel_base // res, channel_max) != width for res, width in widths.items()):
        table = ", ".join(f"{res}: {width}" for res, width in sorted(widths.items()))
        raise UnsupportedNetwork(f"rosinality {what}: its channel widths ({table}) follow no min(base / resolution, max) rule")
    return channel_base, channel_max


def _modulated(r: _Reader, source: str, target: str, state: dict[str, torch.Tensor]) -> torch.Tensor:
    """A rosinality ``ModulatedConv2d`` (``{source}.weight``, ``.modulation``) -> NVlabs layer
    ``{target}`` (``weight``, ``affine``); returns the weight in NVlabs layout."""
    weight = r.take(f"{source}.weight", 5)
    if weight.shape[0] != 1:
        raise UnsupportedNetwork(f"rosinality {r.network}: {source}.weight has shape {list(weight.shape)}, expected [1, out, in, k, k]")
    state[f"{target}.weight"] = weight[0]
    state[f"{target}.affine.weight"] = r.take(f"{source}.modulation.weight", 2)
    state[f"{target}.affine.bias"] = r.take(f"{source}.modulation.bias", 1)
    return weight[0]


def _styled_conv(r: _Reader, source: str, target: str, state: dict[str, torch.Tensor]) -> int:
    """A rosinality ``StyledConv`` -> NVlabs ``SynthesisLayer``; returns its output width."""
    weight = _modulated(r, f"{source}.conv", target, state)
    state[f"{target}.noise_strength"] = r.take_unit_dims(f"{source}.noise.weight", [1])
    state[f"{target}.bias"] = r.take(f"{source}.activate.bias", 1)
    return int(weight.shape[0])


def _to_rgb(r: _Reader, source: str, target: str, state: dict[str, torch.Tensor]) -> int:
    """A rosinality ``ToRGB`` -> NVlabs ``ToRGBLayer``; returns the image channels."""
    weight = _modulated(r, f"{source}.conv", target, state)
    state[f"{target}.bias"] = r.take_unit_dims(f"{source}.bias", [1, None, 1, 1])
    return int(weight.shape[0])


def generator_from_rosinality(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A rosinality ``Generator`` state dict -> (NVlabs ``Generator`` init kwargs, state dict).

    The state dict has every parameter and noise buffer except ``mapping.w_avg`` and the
    resampling filters: rosinality keeps no average latent inside the generator (see
    :func:`latentstudio.io.rosinality_checkpoint` for where it comes from).
    """
    r = _Reader(state, "generator")
    out: dict[str, torch.Tensor] = {}

    layers = r.indices(r"style\.(\d+)\.weight")
    if not layers or layers[0] != 1:
        raise UnsupportedNetwork("rosinality generator: no mapping layers style.1 ... style.N")
    for i in layers:
        out[f"mapping.fc{i - 1}.weight"] = r.take(f"style.{i}.weight", 2)
        out[f"mapping.fc{i - 1}.bias"] = r.take(f"style.{i}.bias", 1)
    z_dim = int(out["mapping.fc0.weight"].shape[1])
    w_dim = int(out[f"mapping.fc{len(layers) - 1}.weight"].shape[0])

    const = r.take("input.input", 4)
    out["synthesis.b4.const"] = const[0]
    widths = {4: _styled_conv(r, "conv1", "synthesis.b4.conv1", out)}
    img_channels = _to_rgb(r, "to_rgb1", "synthesis.b4.torgb", out)

    blocks = r.indices(r"to_rgbs\.(\d+)\.conv\.weight")
    if blocks and blocks[0] != 0:
        raise UnsupportedNetwork("rosinality generator: to_rgbs must start at to_rgbs.0")
    convs = r.indices(r"convs\.(\d+)\.conv\.weight")
    if convs != list(range(2 * len(blocks))):
        raise UnsupportedNetwork(f"rosinality generator: {len(convs)} convs for {len(blocks)} to_rgbs (expected two per resolution)")
    for k in blocks:
        res = 8 << k
        widths[res] = _styled_conv(r, f"convs.{2 * k}", f"synthesis.b{res}.conv0", out)
        r.take_blur(f"convs.{2 * k}.conv.blur.kernel", gain=4)
        if _styled_conv(r, f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", out) != widths[res]:
            raise UnsupportedNetwork(f"rosinality generator: the two convolutions at {res}x{res} differ in width")
        if _to_rgb(r, f"to_rgbs.{k}", f"synthesis.b{res}.torgb", out) != img_channels:
            raise UnsupportedNetwork(f"rosinality generator: to_rgbs.{k} has another number of image channels")
        r.take_blur(f"to_rgbs.{k}.upsample.kernel", gain=4)

    noises = r.indices(r"noises\.noise_(\d+)")
    if noises != list(range(2 * len(blocks) + 1)):
        raise UnsupportedNetwork(f"rosinality generator: {len(noises)} noise buffers for {2 * len(blocks) + 1} layers")
    for i in noises:
        layer = "synthesis.b4.conv1" if i == 0 else f"synthesis.b{8 << (i - 1) // 2}.conv{(i - 1) % 2}"
        out[f"{layer}.noise_const"] = r.take_unit_dims(f"noises.noise_{i}", [1, 1, None, None])
    r.refuse_leftovers()

    channel_base, channel_max = channel_rule(widths, "generator")
    init_kwargs = {
        "z_dim": z_dim,
        "c_dim": 0,
        "w_dim": w_dim,
        "img_resolution": 4 << len(blocks),
        "img_channels": img_channels,
        "mapping_kwargs": {"num_layers": len(layers), "lr_multiplier": MAPPING_LR_MULTIPLIER, "w_avg_beta": W_AVG_BETA},
        "channel_base": channel_base,
        "channel_max": channel_max,
        "num_fp16_res": 0,
        "conv_clamp": None,
        "architecture": "skip",
    }
    return init_kwargs, out


def discriminator_from_rosinality(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A rosinality ``Discriminator`` state dict -> (NVlabs residual ``Discriminator`` init
    kwargs, state dict without the resampling filters).

    rosinality's D is NVlabs' ``resnet`` architecture: ``convs.0`` is the top block's
    ``fromrgb``, ``convs.{i}`` the residual block at ``R / 2^(i-1)`` (``conv1`` -> ``conv0``,
    the down-sampling ``conv2`` -> ``conv1``, ``skip``), then minibatch-std (group 4, one
    feature), ``final_conv`` -> ``b4.conv`` and ``final_linear`` -> ``b4.fc``, ``b4.out``.
    """
    r = _Reader(state, "discriminator")
    out: dict[str, torch.Tensor] = {}
    blocks = r.indices(r"convs\.(\d+)\.conv1\.0\.weight")
    if not blocks or blocks[0] != 1:
        raise UnsupportedNetwork("rosinality discriminator: no residual blocks convs.1 ... convs.N")
    resolution = 4 << len(blocks)

    fromrgb = r.take("convs.0.0.weight", 4)
    out[f"b{resolution}.fromrgb.weight"] = fromrgb
    out[f"b{resolution}.fromrgb.bias"] = r.take("convs.0.1.bias", 1)
    widths: dict[int, int] = {}
    for i in blocks:
        res = resolution >> (i - 1)
        block = f"b{res}"
        out[f"{block}.conv0.weight"] = conv0 = r.take(f"convs.{i}.conv1.0.weight", 4)
        out[f"{block}.conv0.bias"] = r.take(f"convs.{i}.conv1.1.bias", 1)
        out[f"{block}.conv1.weight"] = conv1 = r.take(f"convs.{i}.conv2.1.weight", 4)
        out[f"{block}.conv1.bias"] = r.take(f"convs.{i}.conv2.2.bias", 1)
        out[f"{block}.skip.weight"] = r.take(f"convs.{i}.skip.1.weight", 4)
        r.take_blur(f"convs.{i}.conv2.0.kernel", gain=1)
        r.take_blur(f"convs.{i}.skip.0.kernel", gain=1)
        widths[res], widths[res // 2] = int(conv0.shape[0]), int(conv1.shape[0])
    out["b4.conv.weight"] = r.take("final_conv.0.weight", 4)
    out["b4.conv.bias"] = r.take("final_conv.1.bias", 1)
    out["b4.fc.weight"] = r.take("final_linear.0.weight", 2)
    out["b4.fc.bias"] = r.take("final_linear.0.bias", 1)
    out["b4.out.weight"] = r.take("final_linear.1.weight", 2)
    out["b4.out.bias"] = r.take("final_linear.1.bias", 1)
    r.refuse_leftovers()

    channel_base, channel_max = channel_rule(widths, "discriminator")
    init_kwargs = {
        "c_dim": 0,
        "img_resolution": resolution,
        "img_channels": int(fromrgb.shape[1]),
        "architecture": "resnet",
        "channel_base": channel_base,
        "channel_max": channel_max,
        "num_fp16_res": 0,
        "conv_clamp": None,
        "epilogue_kwargs": {"mbstd_group_size": 4, "mbstd_num_channels": 1},
    }
    return init_kwargs, out
