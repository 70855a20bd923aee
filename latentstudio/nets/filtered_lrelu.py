"""StyleGAN3's alias-free nonlinearity and the low-pass filters it is built from.

A leaky ReLU creates frequencies above the Nyquist limit of the signal it acts on; sampled
naively they fold back as aliasing, which is what makes StyleGAN2 textures stick to pixel
coordinates. StyleGAN3 therefore applies the nonlinearity at a temporarily higher sampling
rate, between an upsampling low-pass filter and a downsampling low-pass filter.

The resampling here is done with matrix products rather than depthwise convolutions: one
resampling pass along one axis is a linear map, i.e. a banded matrix built from the filter
taps, and a CPU runs a (chunked) matrix product through BLAS many times faster than a
depthwise convolution of a large, many-channel image. Results equal those of
:func:`latentstudio.nets.ops.upfirdn2d` (which defines the semantics) to float rounding.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# Largest input window (samples) one chunked matrix product reads per output chunk: big
# enough for efficient BLAS calls, small enough that multiplying by the zeros outside the
# filter band stays cheap.
_CHUNK_INPUT = 64
# Singular values below this fraction of the largest are dropped when a 2-D filter is split
# into separable terms (the jinc filters of config R have rank 2 or 3 above it).
_SEPARABLE_RTOL = 1e-6


def design_lowpass_filter(
    numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False
) -> torch.Tensor | None:
    """A Kaiser-windowed low-pass FIR filter, or ``None`` when one tap means "no filtering".

    Separable filters are returned as ``[numtaps]`` (applied along x then y); the radially
    symmetric jinc filter of config R, which treats all directions alike so that rotations
    stay alias-free, is a full ``[numtaps, numtaps]`` kernel. ``width`` is the transition band
    (twice the half-width) and ``fs`` the sampling rate the filter runs at, both in the same
    units as ``cutoff``.
    """
    assert numtaps >= 1
    if numtaps == 1:
        return None
    # Imported here: scipy.signal takes over a second to import, which every editor launch
    # would pay although only StyleGAN3 models design filters.
    import scipy.signal
    import scipy.special

    if not radial:
        taps = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        return torch.as_tensor(taps, dtype=torch.float32)

    # Ideal circular low-pass (jinc), sampled at the tap positions, then windowed.
    positions = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    radius = np.hypot(*np.meshgrid(positions, positions))  # [numtaps, numtaps]
    with np.errstate(divide="ignore", invalid="ignore"):
        jinc = scipy.special.j1(2 * np.pi * cutoff * radius) / (np.pi * radius)
    jinc = np.where(radius == 0, cutoff, jinc)  # limit at the centre (odd numtaps only)
    attenuation = scipy.signal.kaiser_atten(numtaps, width / (fs / 2))
    window = np.kaiser(numtaps, scipy.signal.kaiser_beta(attenuation))
    kernel = jinc * np.outer(window, window)
    return torch.as_tensor(kernel / kernel.sum(), dtype=torch.float32)


def _band_matrix(taps: torch.Tensor, inputs: torch.Tensor, outputs: torch.Tensor, up: int, down: int,
                 pad0: int, gain: float) -> torch.Tensor:
    """Entries ``[len(inputs), len(outputs)]`` of the 1-D upfirdn map, for the given indices.

    Input sample ``i`` lands at ``up * i + pad0`` after zero insertion and padding; output
    ``j`` is the full convolution with ``taps`` at ``down * j + len(taps) - 1`` there.
    """
    num_taps = taps.numel()
    tap = num_taps - 1 + down * outputs[None, :] - up * inputs[:, None] - pad0  # (in, out)
    inside = (tap >= 0) & (tap < num_taps)
    return torch.where(inside, taps[tap.clamp(0, num_taps - 1)], 0) * gain


def _resample_axis(x: torch.Tensor, taps: torch.Tensor, dim: int, up: int, down: int,
                   pad0: int, pad1: int, gain: float) -> torch.Tensor:
    """1-D upfirdn of ``x`` ``[B, H, W]`` along ``dim`` (-1: width, -2: height) as matrix products.

    Long axes are cut into chunks of outputs, each reading only the contiguous window of
    about ``_CHUNK_INPUT`` inputs its taps reach, so the work grows linearly with the image
    size rather than quadratically. Without autograd the chunks are written straight into
    the result: a concatenation would copy it once more, and fresh large buffers are costly.
    """
    length = x.shape[dim]
    num_taps = taps.numel()
    out_length = -(-(length * up + pad0 + pad1 - num_taps + 1) // down)  # ceil division
    taps = taps.to(device=x.device, dtype=x.dtype)
    num_chunks = max(1, round(length / _CHUNK_INPUT))
    chunk = -(-out_length // num_chunks)
    result = None
    if num_chunks > 1 and not (torch.is_grad_enabled() and x.requires_grad):
        shape = list(x.shape)
        shape[dim] = out_length
        result = x.new_empty(shape)
    pieces = []
    for first in range(0, out_length, chunk):
        last = min(first + chunk, out_length) - 1
        # Inputs reached by this chunk: up * i in [down * j - pad0, down * j - pad0 + taps - 1].
        lo = max(0, -(-(down * first - pad0) // up))
        hi = max(0, min(length - 1, (down * last - pad0 + num_taps - 1) // up))
        lo = min(lo, hi)  # a chunk entirely in the padding still needs a (zero) window
        matrix = _band_matrix(taps, torch.arange(lo, hi + 1, device=x.device),
                              torch.arange(first, last + 1, device=x.device), up, down, pad0, gain)  # (in, out)
        window = x.narrow(dim, lo, hi - lo + 1)
        operands = (window, matrix) if dim == -1 else (matrix.t(), window)
        if result is None:
            pieces.append(torch.matmul(*operands))
        else:
            torch.matmul(*operands, out=result.narrow(dim, first, last + 1 - first))
    if result is None:
        result = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=dim)
    return result


def _separable_terms(f: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``f`` as ``[(taps_y, taps_x), ...]`` with ``f = sum(outer(taps_y, taps_x))``.

    A 1-D filter is one term (the same taps on both axes). A 2-D filter is split by SVD,
    dropping negligible singular values, so it too runs as a few separable passes.
    """
    if f.ndim == 1:
        return [(f, f)]
    u, s, vh = torch.linalg.svd(f.detach().cpu().double())  # tiny: cheaper on the CPU
    keep = s > s[0] * _SEPARABLE_RTOL
    return [((u[:, k] * s[k]).float(), vh[k].float()) for k in torch.nonzero(keep).flatten().tolist()]


def upfirdn2d_separable(x: torch.Tensor, f: torch.Tensor | None, up: int = 1, down: int = 1,
                        padding: Sequence[int] = (0, 0, 0, 0), gain: float = 1) -> torch.Tensor:
    """:func:`latentstudio.nets.ops.upfirdn2d` (convolution, square factors) via matrix products.

    ``padding`` is ``[x0, x1, y0, y1]``; ``gain`` scales the whole 2-D result.
    """
    px0, px1, py0, py1 = padding
    if f is None and up == down == 1 and not any(padding):
        return x * gain if gain != 1 else x
    if f is None:
        f = torch.ones([1])
    axis_gain = math.sqrt(gain)
    batch_shape = x.shape[:-2]
    x = x.reshape(-1, *x.shape[-2:])  # (N*C, H, W): plain (batched) matrix products below
    result = None
    for taps_y, taps_x in _separable_terms(f):
        term = _resample_axis(x, taps_x, -1, up, down, px0, px1, axis_gain)
        term = _resample_axis(term, taps_y, -2, up, down, py0, py1, axis_gain)
        result = term if result is None else result + term
    return result.reshape(*batch_shape, *result.shape[-2:])


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None = None,
    fd: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    gain: float = math.sqrt(2),
    slope: float = 0.2,
    clamp: float | None = None,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Bias, upsample, leaky ReLU (with gain and clamp), downsample, per channel.

    Same semantics as NVlabs ``filtered_lrelu``: ``padding`` (int, ``[x, y]`` or
    ``[x0, x1, y0, y1]``, negative crops) is applied to the zero-stuffed upsampled image
    before ``fu``; ``gain`` scales the activation and ``clamp`` bounds it before ``fd``
    filters and ``down`` decimates. ``x`` is ``[N, C, H, W]``; the result keeps its dtype.
    """
    assert x.ndim == 4 and gain > 0 and slope >= 0
    if isinstance(padding, int):
        padding = [padding] * 4
    elif len(padding) == 2:
        padding = [padding[0], padding[0], padding[1], padding[1]]
    if flip_filter:  # correlation = convolution with the mirrored filter
        fu = fu.flip(list(range(fu.ndim))) if fu is not None else None
        fd = fd.flip(list(range(fd.ndim))) if fd is not None else None

    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    # Zero insertion divides the signal energy by up**2, which the filter gain restores; the
    # activation gain is folded in too, since leaky_relu(g * x) = g * leaky_relu(x) for g > 0.
    x = upfirdn2d_separable(x, fu, up=up, padding=padding, gain=up**2 * gain)
    # x is our own intermediate now: overwrite it unless autograd needs the values.
    inplace = not (torch.is_grad_enabled() and x.requires_grad)
    if slope != 1:
        x = F.leaky_relu(x, slope, inplace=inplace)
    if clamp is not None:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return upfirdn2d_separable(x, fd, down=down)
