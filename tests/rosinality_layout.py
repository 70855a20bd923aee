"""rosinality/stylegan2-pytorch networks of any size, written and computed the way its
``model.py`` does, for tests that must not depend on the fixtures' sizes.

``generator_state`` / ``discriminator_state`` make random state dicts in rosinality's exact
layout (its parameter names, shapes and buffers) for any resolution, latent size, mapping
depth and channel table. ``generate`` / ``discriminate`` compute with such a state dict as
rosinality's modules do, op for op (PixelNorm, EqualLinear with ``lr_mul``, the fused
leaky ReLU, ``ModulatedConv2d`` with its transposed convolution and blur, ``NoiseInjection``,
``ToRGB`` with its up-sampled skip, the residual discriminator and its minibatch stddev).
This file is checked against the real rosinality outputs stored with the fixtures, so it can
stand in for rosinality on sizes the fixtures do not have.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SQRT2 = math.sqrt(2)
BLUR = torch.tensor([1.0, 3.0, 3.0, 1.0])


def blur_kernel(gain: float) -> torch.Tensor:
    kernel = torch.outer(BLUR, BLUR)
    return kernel / kernel.sum() * gain


def rosinality_channels(channel_multiplier: int) -> dict[int, int]:
    """rosinality's own table (``model.py``): 512 up to 32x32, then 256·m, 128·m, ..."""
    m = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * m, 128: 128 * m, 256: 64 * m, 512: 32 * m, 1024: 16 * m}


def generator_state(size: int, style_dim: int, n_mlp: int, channels: dict[int, int], seed: int = 0) -> dict[str, torch.Tensor]:
    """A random rosinality ``Generator`` state dict (every parameter and noise buffer random)."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(list(shape), generator=g)  # noqa: E731
    state: dict[str, torch.Tensor] = {}
    for i in range(1, n_mlp + 1):
        state[f"style.{i}.weight"] = rand(style_dim, style_dim) / 0.01
        state[f"style.{i}.bias"] = rand(style_dim)

    def styled_conv(prefix: str, cin: int, cout: int, up: bool) -> None:
        state[f"{prefix}.conv.weight"] = rand(1, cout, cin, 3, 3)
        if up:
            state[f"{prefix}.conv.blur.kernel"] = blur_kernel(4)
        state[f"{prefix}.conv.modulation.weight"] = rand(cin, style_dim)
        state[f"{prefix}.conv.modulation.bias"] = 1 + 0.2 * rand(cin)
        state[f"{prefix}.noise.weight"] = rand(1)
        state[f"{prefix}.activate.bias"] = 0.2 * rand(cout)

    def to_rgb(prefix: str, cin: int, up: bool) -> None:
        state[f"{prefix}.bias"] = 0.2 * rand(1, 3, 1, 1)
        if up:
            state[f"{prefix}.upsample.kernel"] = blur_kernel(4)
        state[f"{prefix}.conv.weight"] = rand(1, 3, cin, 1, 1)
        state[f"{prefix}.conv.modulation.weight"] = rand(cin, style_dim)
        state[f"{prefix}.conv.modulation.bias"] = 1 + 0.2 * rand(cin)

    state["input.input"] = rand(1, channels[4], 4, 4)
    styled_conv("conv1", channels[4], channels[4], up=False)
    to_rgb("to_rgb1", channels[4], up=False)
    log_size = int(math.log2(size))
    for k, res in enumerate(2**i for i in range(3, log_size + 1)):
        styled_conv(f"convs.{2 * k}", channels[res // 2], channels[res], up=True)
        styled_conv(f"convs.{2 * k + 1}", channels[res], channels[res], up=False)
        to_rgb(f"to_rgbs.{k}", channels[res], up=True)
    for i in range(2 * (log_size - 2) + 1):
        res = 2 ** ((i + 1) // 2 + 2)
        state[f"noises.noise_{i}"] = rand(1, 1, res, res)
    return state


def discriminator_state(size: int, channels: dict[int, int], seed: int = 1) -> dict[str, torch.Tensor]:
    """A random rosinality ``Discriminator`` state dict."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(list(shape), generator=g)  # noqa: E731
    state = {"convs.0.0.weight": rand(channels[size], 3, 1, 1), "convs.0.1.bias": 0.2 * rand(channels[size])}
    log_size = int(math.log2(size))
    for i, res in enumerate((2**j for j in range(log_size, 2, -1)), start=1):
        cin, cout = channels[res], channels[res // 2]
        state.update({
            f"convs.{i}.conv1.0.weight": rand(cin, cin, 3, 3), f"convs.{i}.conv1.1.bias": 0.2 * rand(cin),
            f"convs.{i}.conv2.0.kernel": blur_kernel(1), f"convs.{i}.conv2.1.weight": rand(cout, cin, 3, 3),
            f"convs.{i}.conv2.2.bias": 0.2 * rand(cout), f"convs.{i}.skip.0.kernel": blur_kernel(1),
            f"convs.{i}.skip.1.weight": rand(cout, cin, 1, 1),
        })
    c4 = channels[4]
    state.update({
        "final_conv.0.weight": rand(c4, c4 + 1, 3, 3), "final_conv.1.bias": 0.2 * rand(c4),
        "final_linear.0.weight": rand(c4, c4 * 16), "final_linear.0.bias": 0.2 * rand(c4),
        "final_linear.1.weight": rand(1, c4), "final_linear.1.bias": 0.2 * rand(1),
    })
    return state


# -- rosinality's computation -------------------------------------------------------------------


def _fused_lrelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    shape = [1, -1] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), 0.2) * SQRT2


def _upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: int, pad: tuple[int, int]) -> torch.Tensor:
    """``upfirdn2d_native`` with down=1: zero-insert, pad, convolve with the flipped kernel."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.view(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).view(n, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = torch.flip(kernel, [0, 1]).view(1, 1, *kernel.shape).repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, groups=c)


def map_z(state: dict, z: torch.Tensor) -> torch.Tensor:
    """``Generator.style``: PixelNorm, then EqualLinear(lr_mul=0.01, fused_lrelu) layers."""
    x = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    i = 1
    while f"style.{i}.weight" in state:
        weight = state[f"style.{i}.weight"]
        x = _fused_lrelu(F.linear(x, weight * (0.01 / math.sqrt(weight.shape[1]))), state[f"style.{i}.bias"] * 0.01)
        i += 1
    return x


def _modulated_conv(state: dict, prefix: str, x: torch.Tensor, style: torch.Tensor, demodulate: bool, up: bool) -> torch.Tensor:
    weight = state[f"{prefix}.weight"]  # (1, O, I, k, k)
    _, cout, cin, k, _ = weight.shape
    mod = state[f"{prefix}.modulation.weight"]
    s = F.linear(style, mod / math.sqrt(mod.shape[1]), state[f"{prefix}.modulation.bias"])  # (B, I)
    batch = x.shape[0]
    w = weight / math.sqrt(cin * k * k) * s.view(batch, 1, cin, 1, 1)
    if demodulate:
        w = w * torch.rsqrt(w.pow(2).sum([2, 3, 4]) + 1e-8).view(batch, cout, 1, 1, 1)
    h, wd = x.shape[2:]
    x = x.reshape(1, batch * cin, h, wd)
    if up:
        w = w.transpose(1, 2).reshape(batch * cin, cout, k, k)
        out = F.conv_transpose2d(x, w, padding=0, stride=2, groups=batch)
        out = out.view(batch, cout, *out.shape[2:])
        return _upfirdn(out, state[f"{prefix}.blur.kernel"], up=1, pad=(1, 1))
    out = F.conv2d(x, w.reshape(batch * cout, cin, k, k), padding=k // 2, groups=batch)
    return out.view(batch, cout, h, wd)


def _styled_conv(state: dict, prefix: str, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor, up: bool) -> torch.Tensor:
    x = _modulated_conv(state, f"{prefix}.conv", x, style, demodulate=True, up=up)
    x = x + state[f"{prefix}.noise.weight"] * noise
    return _fused_lrelu(x, state[f"{prefix}.activate.bias"])


def _to_rgb(state: dict, prefix: str, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
    out = _modulated_conv(state, f"{prefix}.conv", x, style, demodulate=False, up=False) + state[f"{prefix}.bias"]
    if skip is not None:
        out = out + _upfirdn(skip, state[f"{prefix}.upsample.kernel"], up=2, pad=(2, 1))
    return out


def synthesize(state: dict, latent: torch.Tensor) -> torch.Tensor:
    """``Generator.forward`` after the styles: ``latent`` ``[B, n_latent, style_dim]``, the
    stored noise buffers (``randomize_noise=False``)."""
    noise = [state[f"noises.noise_{i}"] for i in range(len([k for k in state if k.startswith("noises.")]))]
    out = state["input.input"].repeat(latent.shape[0], 1, 1, 1)
    out = _styled_conv(state, "conv1", out, latent[:, 0], noise[0], up=False)
    skip = _to_rgb(state, "to_rgb1", out, latent[:, 1], None)
    i = 1
    k = 0
    while f"to_rgbs.{k}.conv.weight" in state:
        out = _styled_conv(state, f"convs.{2 * k}", out, latent[:, i], noise[2 * k + 1], up=True)
        out = _styled_conv(state, f"convs.{2 * k + 1}", out, latent[:, i + 1], noise[2 * k + 2], up=False)
        skip = _to_rgb(state, f"to_rgbs.{k}", out, latent[:, i + 2], skip)
        i += 2
        k += 1
    return skip


def n_latent(state: dict) -> int:
    return 2 * len([k for k in state if k.startswith("to_rgbs.") and k.endswith(".conv.weight")]) + 2


def generate(state: dict, z: torch.Tensor, truncation: float = 1.0, truncation_latent: torch.Tensor | None = None) -> torch.Tensor:
    """``g_ema([z], truncation=..., truncation_latent=..., randomize_noise=False)[0]``."""
    w = map_z(state, z)
    if truncation != 1:
        w = truncation_latent + truncation * (w - truncation_latent)
    return synthesize(state, w.unsqueeze(1).repeat(1, n_latent(state), 1))


def discriminate(state: dict, image: torch.Tensor) -> torch.Tensor:
    """``Discriminator.forward``: fromrgb, residual blocks, minibatch stddev, final layers."""

    def conv(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
        return F.conv2d(x, weight / math.sqrt(weight[0].numel()), stride=stride, padding=padding)

    x = _fused_lrelu(conv(image, state["convs.0.0.weight"]), state["convs.0.1.bias"])
    i = 1
    while f"convs.{i}.conv1.0.weight" in state:
        p = f"convs.{i}"
        out = _fused_lrelu(conv(x, state[f"{p}.conv1.0.weight"], padding=1), state[f"{p}.conv1.1.bias"])
        out = _upfirdn(out, state[f"{p}.conv2.0.kernel"], up=1, pad=(2, 2))
        out = _fused_lrelu(conv(out, state[f"{p}.conv2.1.weight"], stride=2), state[f"{p}.conv2.2.bias"])
        skip = conv(_upfirdn(x, state[f"{p}.skip.0.kernel"], up=1, pad=(1, 1)), state[f"{p}.skip.1.weight"], stride=2)
        x = (out + skip) / SQRT2
        i += 1
    batch, channel, height, width = x.shape
    group = min(batch, 4)
    stddev = x.view(group, -1, 1, channel, height, width)
    stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
    x = torch.cat([x, stddev.repeat(group, 1, height, width)], 1)
    x = _fused_lrelu(conv(x, state["final_conv.0.weight"], padding=1), state["final_conv.1.bias"]).view(batch, -1)
    weight = state["final_linear.0.weight"]
    x = _fused_lrelu(F.linear(x, weight / math.sqrt(weight.shape[1])), state["final_linear.0.bias"])
    weight = state["final_linear.1.weight"]
    return F.linear(x, weight / math.sqrt(weight.shape[1]), state["final_linear.1.bias"])
