"""The few primitives StyleGAN needs, in pure PyTorch (CPU, CUDA, MPS).

Same semantics as the NVlabs ``torch_utils.ops`` reference ops, so networks built on them
compute the same numbers as the NVlabs code (about 1e-6 apart in float32). Everything is
made of ordinary differentiable PyTorch ops, so gradients of any order work, which the
R1 and path-length regularisers of training need (``autograd.grad(..., create_graph=True)``).

Conventions shared by all functions here:
- images are NCHW;
- an FIR filter ``f`` is a float32 tensor, 2-D ``[fh, fw]`` or 1-D ``[taps]`` (separable,
  applied along x then y), or ``None`` (identity); make it with :func:`setup_filter`;
- ``padding`` is an int, ``[px, py]`` or ``[px0, px1, py0, py1]``; negative values crop;
- ``flip_filter=False`` / ``flip_weight=False`` mean true convolution, ``True`` means
  correlation (what ``torch.nn.functional.conv2d`` does).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Padding = int | Sequence[int]
Scaling = int | Sequence[int]

# ---------------------------------------------------------------------------------------------
# Tensors derived from parameters, kept between calls

_DERIVED: dict[tuple[int, object], tuple[weakref.ref, int, int, torch.Tensor]] = {}


def derived(weight: torch.Tensor, kind: object, make: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``make(weight)``, kept per parameter while the parameter stays the same.

    Inference repeats per-weight work every frame that depends on the weight alone (a
    flipped or transposed copy, a layout change, the demodulation sums): for a 512-channel
    layer each is a 2.4 M-value pass, and at 64 px they add up to a tenth of a frame. Only
    ``nn.Parameter`` weights are cached (temporaries would only churn the cache), and only
    when no gradient must flow to them. An entry is dropped when its parameter is freed and
    recomputed when the parameter changes: in place (an optimizer step, ``load_state_dict``:
    the version counter moves) or by a new storage (``.to()``: the data pointer moves).
    Writing through ``param.data`` moves neither, as PyTorch gives ``.data`` its own version
    counter: after such edits call :func:`forget_derived`. A result that shares the weight's
    memory (a view) is returned but not kept: keeping it would keep the parameter alive.
    """
    if not isinstance(weight, torch.nn.Parameter) or (weight.requires_grad and torch.is_grad_enabled()):
        return make(weight)
    try:
        version = weight._version
    except RuntimeError:  # an inference-mode tensor has no version counter: do not cache
        return make(weight)
    key = (id(weight), kind)
    entry = _DERIVED.get(key)
    if entry is not None and entry[0]() is weight and entry[1] == version and entry[2] == weight.data_ptr():
        return entry[3]
    with torch.inference_mode(False), torch.no_grad():  # a normal tensor, usable outside inference mode
        value = make(weight)
    if value.untyped_storage().data_ptr() == weight.untyped_storage().data_ptr():
        return value
    _DERIVED[key] = (weakref.ref(weight, lambda _, key=key: _DERIVED.pop(key, None)), version, weight.data_ptr(), value)
    return value


def forget_derived() -> None:
    """Drop every tensor :func:`derived` keeps (needed only after writing weights via ``.data``)."""
    _DERIVED.clear()


# ---------------------------------------------------------------------------------------------
# Small argument helpers


def _layout(x: torch.Tensor) -> torch.memory_format:
    """``channels_last`` for an NHWC-strided 4-D tensor, else ``contiguous_format``."""
    nhwc = x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if nhwc else torch.contiguous_format


def _scaling_xy(scaling: Scaling) -> tuple[int, int]:
    """An up/down factor as ``(sx, sy)``."""
    sx, sy = (scaling, scaling) if isinstance(scaling, int) else scaling
    assert sx >= 1 and sy >= 1, f"bad scaling factor {scaling}"
    return int(sx), int(sy)


def _padding_xxyy(padding: Padding) -> tuple[int, int, int, int]:
    """Padding as ``(px0, px1, py0, py1)`` (left, right, top, bottom)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """``(fw, fh)`` of a filter; a 1-D (separable) filter is square."""
    if f is None:
        return 1, 1
    assert f.ndim in (1, 2)
    return int(f.shape[-1]), int(f.shape[0])


# ---------------------------------------------------------------------------------------------
# FIR filtering with up/down-sampling


def setup_filter(
    f: torch.Tensor | Sequence[float] | Sequence[Sequence[float]] | float | None,
    device: torch.device | str = "cpu",
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1,
    separable: bool | None = None,
) -> torch.Tensor:
    """Turn filter taps such as ``[1, 3, 3, 1]`` into the float32 filter tensor the ops take.

    Normalising to unit sum keeps a constant image constant through the filter, so
    resampling changes detail, never brightness. Short 1-D filters become 2-D (outer
    product; faster for 4 taps); long ones (>= 8 taps, StyleGAN3) stay separable unless
    ``separable`` says otherwise. ``gain`` scales the 2-D result (each 1-D pass gets its
    square root).
    """
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32).clone()
    assert f.ndim in (0, 1, 2) and f.numel() > 0
    if f.ndim == 0:
        f = f.reshape(1)
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)  # (taps, taps)
    assert f.ndim == (1 if separable else 2)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def _depthwise(
    x: torch.Tensor, kernel: torch.Tensor, up: tuple[int, int], transpose: bool,
    padding: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """Apply one 2-D kernel ``[kh, kw]`` to every channel of ``x`` (full, or valid after
    symmetric zero ``padding`` ``(py, px)``)."""
    channels = x.shape[1]
    weight = kernel[None, None].repeat(channels, 1, 1, 1)  # (C, 1, kh, kw)
    if transpose:
        # Transposed conv with stride `up` = zero-insertion upsampling followed by a *full*
        # convolution, without ever materialising (and multiplying) the inserted zeros.
        return F.conv_transpose2d(x, weight, stride=(up[1], up[0]), groups=channels)
    # conv2d correlates, so flip the kernel to convolve.
    return F.conv2d(x, weight.flip([2, 3]), groups=channels, padding=padding)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: Scaling = 1,
    down: Scaling = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1,
) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample (decimate) a batch of images.

    In this order, per channel: insert ``up - 1`` zeros after each pixel; pad with zeros
    (negative = crop); convolve with ``f`` keeping only outputs whose footprint lies in the
    padded image; keep every ``down``-th pixel. This one op expresses every resampling step
    of StyleGAN, with the filter as the anti-aliasing low-pass.

    Args:
        x: ``[N, C, H, W]`` float tensor.
        f: filter from :func:`setup_filter` (float32, 1-D or 2-D) or ``None`` (identity).
        up, down: integer factors, or ``[x, y]``.
        padding: with respect to the upsampled image; int, ``[x, y]`` or ``[x0, x1, y0, y1]``.
        flip_filter: ``False`` = convolution, ``True`` = correlation.
        gain: overall signal scale (upsampling by ``u`` needs ``u**2`` to keep brightness).

    Returns:
        ``[N, C, (H*upy + py0 + py1 - fh + 1) / downy, ...]`` (rounded up), dtype of ``x``.
    """
    assert x.ndim == 4
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    assert f.ndim in (1, 2) and f.dtype == torch.float32 and not f.requires_grad
    upx, upy = _scaling_xy(up)
    downx, downy = _scaling_xy(down)
    px0, px1, py0, py1 = _padding_xxyy(padding)
    fw, fh = _filter_size(f)
    assert x.shape[3] * upx + px0 + px1 >= fw and x.shape[2] * upy + py0 + py1 >= fh

    f = (f * (gain ** (f.ndim / 2))).to(device=x.device, dtype=x.dtype)
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    # One or two (separable: x then y) 2-D kernels, in convolution orientation.
    kernels = [f] if f.ndim == 2 else [f.reshape(1, fw), f.reshape(fh, 1)]
    upsample = upx > 1 or upy > 1

    if upsample:
        # Full convolution of the zero-inserted image (last zeros dropped) = padding by
        # (k - 1) before and (k - 1) - (up - 1) after; correct the padding by the difference.
        x = _depthwise(x, kernels[0], (upx, upy), transpose=True)  # zeros in both axes
        if len(kernels) == 2:
            x = _depthwise(x, kernels[1], (1, 1), transpose=True)
        x = F.pad(x, [px0 - fw + 1, px1 + upx - fw, py0 - fh + 1, py1 + upy - fh])
    elif px0 == px1 >= 0 and py0 == py1 >= 0:
        # Symmetric zero padding: let the convolution pad, rather than copying into a
        # padded buffer first (at 256 px and up that copy costs as much as the filter).
        pads = [(py0, px0)] if len(kernels) == 1 else [(0, px0), (py0, 0)]
        for k, pad in zip(kernels, pads):
            x = _depthwise(x, k, (1, 1), transpose=False, padding=pad)
    else:
        x = F.pad(x, [px0, px1, py0, py1])  # (N, C, H + py0 + py1, W + px0 + px1)
        for k in kernels:
            x = _depthwise(x, k, (1, 1), transpose=False)
    return x[:, :, ::downy, ::downx]


def filter2d(
    x: torch.Tensor, f: torch.Tensor | None, padding: Padding = 0, flip_filter: bool = False, gain: float = 1
) -> torch.Tensor:
    """Filter with ``f``, padded so the output has the input's size (plus ``padding``)."""
    px0, px1, py0, py1 = _padding_xxyy(padding)
    fw, fh = _filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain)


def upsample2d(
    x: torch.Tensor, f: torch.Tensor | None, up: Scaling = 2, padding: Padding = 0,
    flip_filter: bool = False, gain: float = 1,
) -> torch.Tensor:
    """Upsample by ``up`` with ``f`` as interpolation filter: ``[H, W]`` -> ``[H*up, W*up]``.

    The ``up**2`` gain compensates for the inserted zeros, so brightness is kept.
    """
    upx, upy = _scaling_xy(up)
    px0, px1, py0, py1 = _padding_xxyy(padding)
    fw, fh = _filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(
    x: torch.Tensor, f: torch.Tensor | None, down: Scaling = 2, padding: Padding = 0,
    flip_filter: bool = False, gain: float = 1,
) -> torch.Tensor:
    """Low-pass with ``f`` then decimate by ``down``: ``[H, W]`` -> ``[H/down, W/down]``."""
    downx, downy = _scaling_xy(down)
    px0, px1, py0, py1 = _padding_xxyy(padding)
    fw, fh = _filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)


# ---------------------------------------------------------------------------------------------
# Bias + activation + gain + clamp


@dataclass(frozen=True)
class Activation:
    """An activation function with its default shape parameter and gain.

    The default gain restores unit variance after the nonlinearity (He et al.: relu halves
    the second moment, hence sqrt(2)); with equalised learning rate every layer then sees
    unit-variance inputs without any per-layer initialisation scale.
    """

    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float
    def_gain: float


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, 0.0, 1.0),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain, -clamp, clamp)``, each step optional.

    Args:
        x: any shape; ``b`` (1-D) is added along dimension ``dim``.
        act: a key of :data:`ACTIVATIONS`.
        alpha: activation shape parameter (lrelu slope); ``None`` = default (0.2 for lrelu).
        gain: output scale; ``None`` = the activation's default gain (sqrt(2) for (l)relu).
        clamp: clip the output to ``[-clamp, clamp]``; ``None`` = no clipping. StyleGAN2-ADA
            clamps conv outputs (256 by default) so that fp16 activations cannot overflow.
        inplace: overwrite ``x`` (which the caller owns, e.g. a fresh conv output) instead of
            allocating a tensor per step. Same values; for big activations it saves most of
            the time, since each fresh buffer of 32 MB or more is new memory to page in.
            Ignored while autograd records ``x`` (the backward pass needs the intermediates).
    """
    spec = ACTIVATIONS[act]
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    assert clamp is None or clamp >= 0
    if inplace and act in ("linear", "lrelu") and not (torch.is_grad_enabled() and x.requires_grad):
        if b is not None:
            assert b.ndim == 1 and b.shape[0] == x.shape[dim]
            x.add_(b.reshape([-1 if i == dim else 1 for i in range(x.ndim)]))
        if act == "lrelu":
            F.leaky_relu_(x, alpha)
        if gain != 1:
            x.mul_(gain)
        return x.clamp_(-clamp, clamp) if clamp is not None else x
    if b is not None:
        assert b.ndim == 1 and b.shape[0] == x.shape[dim]
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# ---------------------------------------------------------------------------------------------
# Convolution with resampling, modulated convolution


def _conv(
    x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: Sequence[int] = (0, 0),
    groups: int = 1, flip_weight: bool = True,
) -> torch.Tensor:
    """``conv2d`` that convolves (``flip_weight=False``) or correlates (``True``)."""
    memory_format = _layout(x)
    if not flip_weight or not w.is_contiguous(memory_format=memory_format):
        # The weight in the activations' layout: conv2d would otherwise convert it per call.
        w = derived(w, ("conv", flip_weight, memory_format),
                    lambda w: (w if flip_weight else w.flip([2, 3])).contiguous(memory_format=memory_format))
    return F.conv2d(x, w, stride=stride, padding=tuple(padding), groups=groups)


def _conv_transpose(
    x: torch.Tensor, w: torch.Tensor, stride: int, groups: int, flip_weight: bool
) -> torch.Tensor:
    """Zero-insertion upsampling by ``stride`` + full convolution/correlation with ``w``.

    ``w`` is a normal conv weight ``[O, I/groups, kh, kw]``; ``conv_transpose2d`` wants
    ``[I, O/groups, kh, kw]`` and convolves, so swap the channel axes per group and flip
    the taps when a correlation is asked for.
    """
    out_channels, in_per_group, kh, kw = w.shape
    memory_format = _layout(x)

    def transposed(w: torch.Tensor) -> torch.Tensor:
        w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        return (w.flip([2, 3]) if flip_weight else w).contiguous(memory_format=memory_format)

    return F.conv_transpose2d(x, derived(w, ("conv_transpose", groups, flip_weight, memory_format), transposed),
                              stride=stride, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """2-D convolution with optional FIR-filtered up- or down-sampling.

    Meaning (what is computed): upsample ``x`` by ``up`` (zero insertion, filter ``f``,
    gain ``up**2``), pad by ``padding`` (relative to the upsampled image), convolve with
    ``w``, then filter with ``f`` and decimate by ``down``. Convolution and FIR filtering
    commute, so the work is reordered to run at the lowest possible resolution: strided
    convolution for ``down``, transposed convolution for ``up``.

    Args:
        x: ``[N, C_in, H, W]``.
        w: ``[C_out, C_in / groups, kh, kw]``, same dtype as ``x``.
        f: float32 filter from :func:`setup_filter` (``None`` = box of size 1).
        up, down: integer factors (not both > 1 in StyleGAN, but both work).
        flip_weight: ``True`` = correlation (like ``F.conv2d``), ``False`` = convolution.
    """
    assert x.ndim == 4 and w.ndim == 4 and w.dtype == x.dtype
    assert up >= 1 and down >= 1 and groups >= 1
    assert f is None or (f.ndim in (1, 2) and f.dtype == torch.float32)
    kh, kw = int(w.shape[2]), int(w.shape[3])
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _padding_xxyy(padding)
    # The padding the up/down-sampling filter itself needs to keep sizes exact multiples.
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = [px0, px1, py0, py1]

    if up == 1 and down == 1:
        if px0 == px1 >= 0 and py0 == py1 >= 0:
            return _conv(x, w, padding=(py0, px0), groups=groups, flip_weight=flip_weight)
        x = upfirdn2d(x, None, padding=pad)  # asymmetric or negative padding
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    if up == 1:  # downsampling only
        if kh == kw == 1:  # 1x1: decimate first, then the (cheap) pointwise conv
            x = upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter)
            return _conv(x, w, groups=groups, flip_weight=flip_weight)
        x = upfirdn2d(x, f, padding=pad, flip_filter=flip_filter)  # low-pass at full res
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    if kh == kw == 1 and down == 1:  # 1x1 upsampling: pointwise conv at low res first
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pad, gain=up**2, flip_filter=flip_filter)

    # Upsampling: the transposed conv does zero insertion + full conv (implicit padding of
    # k - 1 before and k - up after); the filter pass applies the remaining padding.
    x = _conv_transpose(x, w, stride=up, groups=groups, flip_weight=flip_weight)
    pad = [px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)]
    x = upfirdn2d(x, f, padding=pad, gain=up**2, flip_filter=flip_filter)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """StyleGAN2's style-modulated convolution: scale input channels per sample, convolve,
    then (optionally) demodulate and add noise.

    Demodulation rescales each output channel to unit expected variance given the style,
    replacing StyleGAN1's AdaIN: it removes the droplet artefacts that come from
    normalising by actual feature statistics, while keeping per-sample style control.

    Args:
        x: ``[N, C_in, H, W]``.
        weight: ``[C_out, C_in, kh, kw]``, shared by all samples.
        styles: ``[N, C_in]`` per-sample input-channel scales (from the affine layer).
        noise: added after demodulation; broadcastable to the output (``[H, W]`` or
            ``[N, 1, H, W]``).
        fused_modconv: ``True`` = bake the per-sample weights and run one grouped conv
            (fast for inference); ``False`` = scale activations before/after a shared conv
            (cheaper backward, preferred for training); ``"auto"`` = the inference fast path
            :func:`_modulated_conv2d_lean`, which picks whichever is cheaper for the shapes.
    Returns:
        ``[N, C_out, H', W']`` in the dtype of ``x``.
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert x.shape[1] == in_channels and styles.shape == (batch_size, in_channels)
    if fused_modconv == "auto" and x.dtype != torch.float16:
        return _modulated_conv2d_lean(x, weight, styles, noise, up, down, padding, resample_filter, demodulate, flip_weight)
    fused_modconv = bool(fused_modconv)

    # fp16 has a small range: bring weights and styles to max-abs 1 first. Harmless, since
    # demodulation divides out any overall scale.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)
                           / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # (N, O, I, kh, kw)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # (N, O)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down,
                            padding=padding, flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    # Fused: the batch becomes the group axis of a single grouped convolution.
    if demodulate:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)  # (N, O, I, kh, kw)
    x = x.reshape(1, -1, *x.shape[2:])  # (1, N*I, H, W)
    w = w.reshape(-1, in_channels, kh, kw)  # (N*O, I, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down,
                        padding=padding, groups=batch_size, flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])  # (N, O, H', W')
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def _modulated_conv2d_lean(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None,
    up: int,
    down: int,
    padding: Padding,
    resample_filter: torch.Tensor | None,
    demodulate: bool,
    flip_weight: bool,
) -> torch.Tensor:
    """The same modulated convolution without materialising modulated weights when it can.

    The reference computes the demodulation coefficients from a per-sample copy of the
    weights, ``[N, O, I, kh, kw]``, which for a 512-channel 3x3 layer is 2.4 M values
    written per call: at low resolutions that costs more than the convolution. Since
    ``sum_{i,k} (W_oik s_i)^2 = sum_i s_i^2 sum_k W_oik^2`` the coefficients are a small
    matrix product instead. Then, per layer, the cheaper form runs: scaling the activations
    around a shared convolution (no weight copy; wins at low resolution) or one fused
    convolution with baked weights (wins at high resolution, where activations are big).
    Equal to the reference up to float rounding (about 1e-6 relative).
    """
    batch_size, in_channels, height, width = x.shape
    out_channels, _, kh, kw = weight.shape
    if batch_size == 1 and x.device.type == "cpu":
        # Channels-last (NHWC): the CPU convolution and FIR kernels run 1.2-1.4x faster on
        # it from 64 px up (measured; on GPUs NHWC pays off for fp16, which the lean path
        # does not run). Once converted, every later op keeps the layout, so this copies
        # only the network's 4x4 constant.
        x = x.contiguous(memory_format=torch.channels_last)
    channels_last = _layout(x) == torch.channels_last
    dcoefs = None
    if demodulate:
        dcoefs = (styles.square() @ _squared_tap_sums(weight) + 1e-8).rsqrt()  # (N, O)
    weight_copy_cost = batch_size * out_channels * in_channels * kh * kw
    activation_scaling_cost = batch_size * (in_channels + out_channels) * height * width * up * up
    if kh == kw == 1 and up == down == 1 and _padding_xxyy(padding) == (0, 0, 0, 0):
        # A 1x1 layer (toRGB) is a matrix product; BLAS does it ~4x faster than the
        # convolution kernels do with 3 output channels.
        scale = styles.reshape(batch_size, 1, -1)
        if dcoefs is not None:
            scale = scale * dcoefs.reshape(batch_size, -1, 1)
        w = weight.reshape(1, out_channels, in_channels) * scale  # (N, O, I)
        if channels_last:  # (N, H*W, I) @ (N, I, O), back as an NHWC tensor
            x = torch.bmm(x.permute(0, 2, 3, 1).reshape(batch_size, height * width, in_channels), w.transpose(1, 2))
            x = x.reshape(batch_size, height, width, out_channels).permute(0, 3, 1, 2)
        else:
            x = torch.bmm(w, x.reshape(batch_size, in_channels, height * width))
            x = x.reshape(batch_size, out_channels, height, width)
    elif weight_copy_cost < activation_scaling_cost:
        scale = styles.reshape(batch_size, 1, -1, 1, 1)
        if dcoefs is not None:
            scale = scale * dcoefs.reshape(batch_size, -1, 1, 1, 1)
        w = (weight.unsqueeze(0) * scale).reshape(-1, in_channels, kh, kw)  # (N*O, I, kh, kw)
        if batch_size > 1:  # a reshape of a batch-1 NHWC tensor would hide its layout from the conv
            x = x.reshape(1, -1, height, width)
        x = conv2d_resample(x, w, f=resample_filter, up=up, down=down, padding=padding,
                            groups=batch_size, flip_weight=flip_weight)
        if batch_size > 1:
            x = x.reshape(batch_size, -1, *x.shape[2:])
    else:
        x = x * styles.reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(x, weight, f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight)
        if dcoefs is not None:
            x.mul_(dcoefs.reshape(batch_size, -1, 1, 1))
    if noise is not None:
        x.add_(noise)  # x is this function's own fresh output
    return x


def _squared_tap_sums(weight: torch.Tensor) -> torch.Tensor:
    """``weight.square().sum([2, 3]).T`` ``[I, O]``, the demodulation's weight term."""
    return derived(weight, "tap_sums", lambda w: w.square().sum(dim=[2, 3]).transpose(0, 1))


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit root-mean-square along ``dim`` (pixel norm of latents/embeddings),
    so the mapping network sees inputs of a fixed scale whatever their dimensionality."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
