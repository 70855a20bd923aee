"""StyleGAN3 generator (Karras et al. 2021, "Alias-Free Generative Adversarial Networks").

Configs T (translation equivariant, 3x3 convolutions) and R (rotation equivariant, 1x1
convolutions, radially symmetric downsampling filters) are the same classes with different
init kwargs. Parameter and buffer names, constructor kwargs and call conventions are those of
NVlabs ``training/networks_stylegan3.py``, so an NVlabs StyleGAN3 ``G`` state_dict loads with
``load_state_dict(strict=True)`` and computes the same images. The discriminator of StyleGAN3
snapshots is the StyleGAN2 one (:class:`latentstudio.nets.stylegan2.Discriminator`).

What differs from StyleGAN2, and why:
- The image is not grown from a learned 4x4 constant but sampled from Fourier features
  (:class:`SynthesisInput`) whose frequencies and phases are continuous: the whole image can
  be translated and rotated sub-pixel by transforming them (``synthesis.input.transform``,
  see :func:`make_input_transform`).
- Every layer treats its feature maps as band-limited continuous signals: the nonlinearity
  runs between low-pass filters at a higher sampling rate (:mod:`filtered_lrelu`), and the
  cutoff frequency grows geometrically from layer to layer. There are no noise inputs.
- Layers keep a moving average of their input magnitude (``magnitude_ema``) and divide by
  it, replacing StyleGAN2's fixed per-layer gains.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from latentstudio.nets import stylegan2
from latentstudio.nets.filtered_lrelu import design_lowpass_filter, filtered_lrelu
from latentstudio.nets.stylegan2 import FullyConnectedLayer

__all__ = [
    "FullyConnectedLayer",
    "MappingNetwork",
    "SynthesisInput",
    "SynthesisLayer",
    "SynthesisNetwork",
    "Generator",
    "make_input_transform",
]

_NOISE_MODES = ("random", "const", "none")


def make_input_transform(translate_x: float = 0.0, translate_y: float = 0.0, rotate_deg: float = 0.0) -> torch.Tensor:
    """The 3x3 matrix to store in ``synthesis.input.transform`` to move the generated image.

    The network wants the *inverse* transform (it maps output pixel coordinates back to the
    Fourier-feature plane, so it never has to invert anything itself). The forward transform
    here shifts the image by ``(translate_x, translate_y)`` (in image widths: 1.0 is one full
    image) and then rotates it by ``rotate_deg`` about the centre, with the rotation sign of
    the NVlabs visualizer; this is the matrix of the reference fixtures. (The visualizer
    itself rotates first and then translates, so there a translation is not rotated along.)
    ``(0, 0, 0)`` gives the identity, i.e. the untransformed image.
    """
    angle = math.radians(rotate_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    translation = torch.tensor([[1.0, 0.0, translate_x], [0.0, 1.0, translate_y], [0.0, 0.0, 1.0]],
                               dtype=torch.float64)
    return torch.linalg.inv(rotation @ translation).to(torch.float32)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool,
    padding: int,
    input_gain: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN3's modulated convolution: ``x`` ``[N, I, H, W]`` -> ``[N, O, H', W']``.

    Unlike StyleGAN2's, weights and styles are first brought to unit root-mean-square
    (which demodulation then cancels exactly), so fp16 intermediates cannot overflow, and a
    scalar ``input_gain`` (the inverse input magnitude) scales the input once the
    demodulation coefficients are known. One sample runs as a single convolution with its
    own modulated weights; a batch scales activations around one shared convolution
    instead, which a CPU runs much faster than a grouped convolution (same result).
    """
    batch_size, in_channels = x.shape[0], x.shape[1]
    out_channels = weight.shape[0]
    assert weight.shape[1] == in_channels and styles.shape == (batch_size, in_channels)
    if demodulate:
        weight = weight * weight.square().mean(dim=[1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean(dim=1, keepdim=True).rsqrt()
    # Demodulation: unit norm of each sample's modulated weights per output channel,
    # sum_i s_i^2 * |w_oi|^2 computed as one matmul.
    dcoefs = torch.ones([batch_size, out_channels], device=x.device)
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # (N, O)
    if input_gain is not None:
        styles = styles * input_gain  # scalar, so it commutes with the convolution

    if batch_size == 1:
        w = weight * styles.reshape(1, in_channels, 1, 1) * dcoefs.reshape(out_channels, 1, 1, 1)  # (O, I, k, k)
        return F.conv2d(x, w.to(x.dtype), padding=padding)
    x = x * styles.to(x.dtype).reshape(batch_size, in_channels, 1, 1)
    x = F.conv2d(x, weight.to(x.dtype), padding=padding)  # (N, O, H', W')
    return x * dcoefs.to(x.dtype).reshape(batch_size, out_channels, 1, 1)


class MappingNetwork(stylegan2.MappingNetwork):
    """z (and label c) -> ``[N, num_ws, w_dim]``, with truncation.

    Computes exactly what StyleGAN2's mapping network computes; StyleGAN3 only changes the
    defaults (2 layers instead of 8) and takes no per-layer feature widths, so the NVlabs
    StyleGAN3 kwargs are the whole signature here.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 2,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.998,
        freeze_layers: int = 0,
        freeze_embed: bool = False,
    ) -> None:
        super().__init__(z_dim, c_dim, w_dim, num_ws, num_layers=num_layers, lr_multiplier=lr_multiplier,
                         w_avg_beta=w_avg_beta, freeze_layers=freeze_layers, freeze_embed=freeze_embed)


class SynthesisInput(torch.nn.Module):
    """Fourier features: ws[0] -> ``[N, channels, size, size]``, a band-limited starting image.

    Each channel is ``sin(2*pi*(f . p + phase))`` sampled on the pixel grid ``p``, mixed by a
    learned ``weight``. ws[0] only sets a global rotation and translation of the plane (the
    ``affine`` output ``(cos, sin, tx, ty)``, normalised to a pure rotation); the user's
    ``transform`` (inverse, wrt. the output image) is applied on top of it.
    """

    def __init__(self, w_dim: int, channels: int, size: int | list[int], sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = np.broadcast_to(np.asarray(size), [2])  # [width, height]
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth

        # Frequencies uniform over the disc of radius `bandwidth`; phases uniform in a period.
        angles = torch.rand([channels]) * (2 * math.pi)
        radii = torch.rand([channels]).sqrt() * bandwidth
        freqs = torch.stack([angles.cos(), angles.sin()], dim=1) * radii.unsqueeze(1)  # (C, 2)
        phases = torch.rand([channels]) - 0.5  # (C,)

        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        # Starts as the identity transform: zero weights, bias = (cos, sin, tx, ty) = (1, 0, 0, 0).
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)
        # Pixel centres in the feature plane's units (one unit = sampling_rate pixels).
        xs = (torch.arange(int(self.size[0])) + 0.5 - self.size[0] / 2) / sampling_rate
        ys = (torch.arange(int(self.size[1])) + 0.5 - self.size[1] / 2) / sampling_rate
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
        self.register_buffer("grid", grid.to(torch.float32), persistent=False)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """``[N, w_dim]`` -> ``[N, channels, height, width]`` (float32)."""
        t = self.affine(w)  # (N, 4)
        t = t / t[:, :2].norm(dim=1, keepdim=True)  # rotation part on the unit circle
        cos, sin, tx, ty = t.unbind(dim=1)
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        # Inverse rotation and inverse translation wrt. the output image, each (N, 3, 3).
        rotation = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], dim=1).reshape(-1, 3, 3)
        translation = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], dim=1).reshape(-1, 3, 3)
        transforms = rotation @ translation @ self.transform  # (N, 3, 3)

        # Transforming the sampling plane = transforming frequencies (linear part) and phases (shift).
        phases = self.phases + (self.freqs @ transforms[:, :2, 2:]).squeeze(2)  # (N, C)
        freqs = self.freqs @ transforms[:, :2, :2]  # (N, C, 2)
        # A user transform can push frequencies past the band limit: fade those out.
        nyquist = self.sampling_rate / 2
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (nyquist - self.bandwidth)).clamp(0, 1)  # (N, C)

        x = torch.einsum("hwk,nck->nhwc", self.grid, freqs) + phases[:, None, None, :]  # (N, H, W, C)
        x = torch.sin(x * (2 * math.pi)) * amplitudes[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.channels)).t()  # (N, H, W, C)
        return x.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={list(self.size)}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


class SynthesisLayer(torch.nn.Module):
    """Modulated conv + bias + filtered leaky ReLU (+ clamp), with its own sampling rates.

    The input is a signal sampled at ``in_sampling_rate`` with content up to ``in_cutoff``;
    the output is sampled at ``out_sampling_rate`` with content up to ``out_cutoff``. The
    nonlinearity runs at ``tmp_sampling_rate`` (``lrelu_upsampling`` times the higher of
    the two) so that the harmonics it creates can be filtered out before decimation.
    ``*_half_width`` is half the transition band of the low-pass filters. Sizes include
    ``margin_size`` extra pixels on each side except for the last layers.

    The final ToRGB layer (``is_torgb``) is a 1x1 conv without demodulation nor activation.
    """

    def __init__(
        self,
        w_dim: int,
        is_torgb: bool,
        is_critically_sampled: bool,
        use_fp16: bool,
        in_channels: int,
        out_channels: int,
        in_size: int | list[int],
        out_size: int | list[int],
        in_sampling_rate: float,
        out_sampling_rate: float,
        in_cutoff: float,
        out_cutoff: float,
        in_half_width: float,
        out_half_width: float,
        conv_kernel: int = 3,
        filter_size: int = 6,
        lrelu_upsampling: int = 2,
        use_radial_filters: bool = False,
        conv_clamp: float | None = 256,
        magnitude_ema_beta: float = 0.999,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])  # [width, height]
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        # bias_init=1: styles start at 1, i.e. the layer starts as a plain convolution.
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        # Up/down factors between the layer's rates and the activation's rate; filters are
        # `filter_size` taps per low-rate sample, or none at all (one tap) when not resampling.
        self.up_factor = self._integer_ratio(self.tmp_sampling_rate, in_sampling_rate)
        self.down_factor = self._integer_ratio(self.tmp_sampling_rate, out_sampling_rate)
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        # Critically sampled layers have no room for a radial filter's wider transition band.
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer("up_filter", design_lowpass_filter(
            self.up_taps, in_cutoff, in_half_width * 2, self.tmp_sampling_rate))
        self.register_buffer("down_filter", design_lowpass_filter(
            self.down_taps, out_cutoff, out_half_width * 2, self.tmp_sampling_rate, radial=self.down_radial))
        self.padding = self._filter_padding()

    @staticmethod
    def _integer_ratio(high_rate: float, low_rate: float) -> int:
        ratio = int(np.rint(high_rate / low_rate))
        assert low_rate * ratio == high_rate, "sampling rates must be integer multiples"
        return ratio

    def _filter_padding(self) -> list[int]:
        """``[x0, x1, y0, y1]`` padding of the upsampled signal that yields exactly ``out_size``.

        The conv (padding ``k - 1``) gives ``in_size + k - 1`` samples; upsampling multiplies
        that by ``up_factor``; the two FIR filters (valid mode) eat ``taps - 1`` samples each;
        decimation needs ``(out_size - 1) * down_factor + 1``. The surplus or deficit is split
        with the extra sample before, shifted by ``up_factor / 2`` so that sample positions
        stay centred (the symmetric interpretation of the paper's Appendix C.3).
        """
        needed = (self.out_size - 1) * self.down_factor + 1
        available = (self.in_size + self.conv_kernel - 1) * self.up_factor - (self.up_taps - 1) - (self.down_taps - 1)
        total = needed - available  # per axis, [x, y]
        before = (total + self.up_factor) // 2
        after = total - before
        return [int(before[0]), int(after[0]), int(before[1]), int(after[1])]

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        force_fp32: bool = False,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """``[N, in_channels, in_h, in_w]``, w ``[N, w_dim]`` -> ``[N, out_channels, out_h, out_w]``.

        Runs in float16 only when the layer is marked ``use_fp16``, on CUDA, and not
        ``force_fp32``; the output keeps that dtype.
        """
        assert x.shape[1:] == (self.in_channels, int(self.in_size[1]), int(self.in_size[0])), x.shape
        if update_emas:
            magnitude = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()

        styles = self.affine(w)  # (N, in_channels)
        if self.is_torgb:
            # No demodulation for the output layer: fold the equalised-lr weight gain into the styles.
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel**2))

        use_fp16 = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        dtype = torch.float16 if use_fp16 else torch.float32
        x = modulated_conv2d(x.to(dtype), self.weight, styles, demodulate=not self.is_torgb,
                             padding=self.conv_kernel - 1, input_gain=input_gain)
        x = filtered_lrelu(x, self.up_filter, self.down_filter, self.bias.to(dtype),
                           up=self.up_factor, down=self.down_factor, padding=self.padding,
                           gain=1 if self.is_torgb else math.sqrt(2), slope=1 if self.is_torgb else 0.2,
                           clamp=self.conv_clamp)
        assert x.shape[1:] == (self.out_channels, int(self.out_size[1]), int(self.out_size[0])), x.shape
        return x

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, is_critically_sampled={self.is_critically_sampled}, "
                f"use_fp16={self.use_fp16}, in_sampling_rate={self.in_sampling_rate:g}, "
                f"out_sampling_rate={self.out_sampling_rate:g}, in_cutoff={self.in_cutoff:g}, "
                f"out_cutoff={self.out_cutoff:g}, in_size={list(self.in_size)}, out_size={list(self.out_size)}, "
                f"in_channels={self.in_channels}, out_channels={self.out_channels}")


class LayerSchedule(NamedTuple):
    """Per-layer values of a StyleGAN3 synthesis network; index 0 is the Fourier-feature input,
    index ``num_layers`` the ToRGB layer (``num_layers + 1`` entries each)."""

    cutoffs: np.ndarray
    stopbands: np.ndarray
    sampling_rates: np.ndarray
    half_widths: np.ndarray
    sizes: np.ndarray
    channels: np.ndarray


def layer_schedule(img_resolution: int, img_channels: int, channel_base: float, channel_max: int, num_layers: int,
                   num_critical: int, first_cutoff: float, first_stopband: float, last_stopband_rel: float,
                   margin_size: int) -> LayerSchedule:
    """The schedule :class:`SynthesisNetwork` builds its layers from (see its docstring); a
    function of the settings alone, so loaders can check settings before building anything."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    progress = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** progress
    stopbands = first_stopband * (last_stopband / first_stopband) ** progress
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution  # the last layer and ToRGB have no margin
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return LayerSchedule(cutoffs, stopbands, sampling_rates, half_widths, sizes, channels)


class SynthesisNetwork(torch.nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> image ``[N, img_channels, R, R]``: Fourier features, then
    ``num_layers`` synthesis layers, then ToRGB (``num_ws = num_layers + 2``).

    ws[0] drives :attr:`input` and ws[i + 1] drives the layer named ``layer_names[i]``
    (``L{i}_{size}_{channels}``). Cutoff frequencies and minimum stopbands grow
    geometrically from ``first_cutoff`` / ``first_stopband`` to the output Nyquist rate over
    the first ``num_layers - num_critical`` layers and stay there; each layer's sampling rate
    is the smallest power of two that holds its stopband, and its channel count shrinks as
    its cutoff grows (``channel_base / 2 / cutoff``, at most ``channel_max``).
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_layers: int = 14,
        num_critical: int = 2,
        first_cutoff: float = 2,
        first_stopband: float = 2**2.1,
        last_stopband_rel: float = 2**0.3,
        margin_size: int = 10,
        output_scale: float = 0.25,
        num_fp16_res: int = 4,
        **layer_kwargs: Any,
    ) -> None:
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res

        schedule = layer_schedule(img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical,
                                  first_cutoff, first_stopband, last_stopband_rel, margin_size)
        cutoffs, sampling_rates, half_widths = schedule.cutoffs, schedule.sampling_rates, schedule.half_widths
        sizes, channels = schedule.sizes, schedule.channels

        self.input = SynthesisInput(w_dim=w_dim, channels=int(channels[0]), size=int(sizes[0]),
                                    sampling_rate=sampling_rates[0], bandwidth=cutoffs[0])
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=idx == num_layers, is_critically_sampled=idx >= num_layers - num_critical,
                use_fp16=bool(sampling_rates[idx] * 2**num_fp16_res > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]),
                in_size=int(sizes[prev]), out_size=int(sizes[idx]),
                in_sampling_rate=int(sampling_rates[prev]), out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev], out_half_width=half_widths[idx],
                **layer_kwargs)
            name = f"L{idx}_{layer.out_size[0]}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    @property
    def layers(self) -> list[SynthesisLayer]:
        """The synthesis layers in execution order (ToRGB last); ws[i + 1] drives ``layers[i]``."""
        return [getattr(self, name) for name in self.layer_names]

    def set_transform(self, translate: tuple[float, float] = (0.0, 0.0), rotate_deg: float = 0.0) -> None:
        """Translate / rotate the generated image (see :func:`make_input_transform`)."""
        self.set_transforms([translate], [rotate_deg])

    def set_transforms(self, translates: Sequence[tuple[float, float]], rotates_deg: Sequence[float]) -> None:
        """One transform per image of the next batch (an animation's frames move differently).

        One transform is stored as ``[3, 3]`` (the usual buffer, shared by the whole batch);
        several as ``[N, 3, 3]``, which the input layer broadcasts row by row, so the next
        batch must have exactly N images. Call :meth:`set_transform` to return to one.
        """
        assert len(translates) == len(rotates_deg) > 0, (len(translates), len(rotates_deg))
        matrices = [make_input_transform(t[0], t[1], r) for t, r in zip(translates, rotates_deg)]
        stacked = matrices[0] if len(matrices) == 1 else torch.stack(matrices)  # (3, 3) or (N, 3, 3)
        self.input.transform = stacked.to(self.input.transform.device)

    @property
    def step_rows(self) -> tuple[tuple[int, ...], ...]:
        """The ``ws`` rows read by each step of ``forward``: the input reads row 0, layer i row i + 1.

        ``forward(first_step=k, x=...)`` resumes before step k from that step's input, as
        ``SynthesisBlock`` of StyleGAN2 does, so incremental synthesis serves both.
        """
        return tuple((row,) for row in range(self.num_ws))

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        force_fp32: bool = False,
        update_emas: bool = False,
        noise_generator: torch.Generator | None = None,
        first_step: int = 0,
        x: torch.Tensor | None = None,
        before_step: Callable[[int, torch.Tensor | None, None], None] | None = None,
    ) -> torch.Tensor:
        """``[N, num_ws, w_dim]`` -> float32 NCHW image, roughly in [-1, 1] (not clipped).

        ``noise_mode`` and ``noise_generator`` are accepted so that StyleGAN2 and StyleGAN3
        generators can be called alike; StyleGAN3 has no noise inputs and ignores them.
        ``first_step`` > 0 resumes at layer ``first_step - 1`` from its input ``x`` (see
        ``step_rows``); ``before_step(step, x, None)`` is called before every step that runs.
        """
        assert noise_mode in _NOISE_MODES, noise_mode
        assert ws.shape[1:] == (self.num_ws, self.w_dim), ws.shape
        ws = ws.to(torch.float32).unbind(dim=1)
        if first_step == 0:
            if before_step is not None:
                before_step(0, None, None)
            x = self.input(ws[0])  # (N, C0, size0, size0)
        assert x is not None, "resuming needs the step's input x"
        layers = self.layers
        for step in range(max(first_step, 1), self.num_ws):
            if before_step is not None:
                before_step(step, x, None)
            x = layers[step - 1](x, ws[step], force_fp32=force_fp32, update_emas=update_emas)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_layers={self.num_layers}, "
                f"num_critical={self.num_critical}, margin_size={self.margin_size}, num_fp16_res={self.num_fp16_res}")


class Generator(stylegan2.Generator):
    """StyleGAN3 generator: ``mapping`` (z, c -> ws) followed by the alias-free ``synthesis``.

    The same constructor, call conventions and attributes as the StyleGAN2 generator; only
    the synthesis and mapping networks differ.
    """

    synthesis_class = SynthesisNetwork
    mapping_class = MappingNetwork
