"""StyleGAN2 generator and discriminator (Karras et al. 2020, configs E-F / StyleGAN2-ADA).

Parameter and buffer names, constructor arguments and call conventions are those of NVlabs
``training/networks_stylegan2.py`` (stylegan3 repository), so an NVlabs ``state_dict`` loads
with ``load_state_dict(strict=True)`` into a network built from the same init kwargs, and
computes the same images (float32: about 1e-6 apart).

Two tricks recur everywhere:
- *Equalised learning rate*: weights are stored with unit variance and multiplied by
  ``weight_gain = 1 / sqrt(fan_in)`` at run time. Adam's updates are then equally large
  relative to every weight, whatever the layer's fan-in (and ``lr_multiplier`` slows a
  layer down, e.g. the mapping network by 100x).
- *Clamping* (``conv_clamp``): conv outputs are clipped to +-clamp, which keeps fp16
  activations finite; it is applied in float32 too, so fp16 and fp32 runs agree.

fp16 is used only on CUDA (for the ``num_fp16_res`` highest resolutions); on CPU and MPS
every block runs in float32, as the NVlabs code does on a CPU.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from latentstudio.nets.ops import (
    ACTIVATIONS,
    bias_act,
    conv2d_resample,
    downsample2d,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
    upsample2d,
)

DEFAULT_FILTER = (1, 3, 3, 1)  # binomial low-pass used for all up/down-sampling


def _param_or_buffer(module: torch.nn.Module, name: str, value: torch.Tensor | None, trainable: bool) -> None:
    """Register ``value`` as a parameter, or as a buffer when frozen (same state_dict name)."""
    if value is None:
        setattr(module, name, None)
    elif trainable:
        setattr(module, name, torch.nn.Parameter(value))
    else:
        module.register_buffer(name, value)


def _memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def _random_noise(shape: Sequence[int], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise on ``like``'s device.

    With a generator the noise is drawn on the generator's device and then moved, so one
    seed gives the same noise whichever device renders (a CPU generator works for CUDA).
    """
    if generator is None:
        return torch.randn(shape, device=like.device)
    return torch.randn(shape, generator=generator, device=generator.device).to(like.device)


# ---------------------------------------------------------------------------------------------
# Basic layers


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalised learning rate, optional bias and activation."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier
        # Stored weights are divided by lr_multiplier so that the effective initial weights
        # are N(0, 1/fan_in) whatever the multiplier; only the learning speed changes.
        weight = torch.randn([out_features, in_features]) / lr_multiplier
        bias_value = torch.full([out_features], np.float32(bias_init)) if bias else None
        _param_or_buffer(self, "weight", weight, trainable)
        _param_or_buffer(self, "bias", bias_value, trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain  # (out, in)
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())  # (N, out)
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Convolution with equalised learning rate, FIR up/down-sampling, bias, activation, clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        channels_last: bool = False,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size**2)
        self.act_gain = ACTIVATIONS[activation].def_gain
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        weight = weight.to(memory_format=_memory_format(channels_last))
        _param_or_buffer(self, "weight", weight, trainable)
        _param_or_buffer(self, "bias", torch.zeros([out_channels]) if bias else None, trainable)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        """``gain`` scales output and clamp together (resnet branches use sqrt(1/2))."""
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        # Without upsampling the filter orientation is free: correlation avoids a flip.
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"activation={self.activation}, up={self.up}, down={self.down}")


# ---------------------------------------------------------------------------------------------
# Mapping network


class MappingNetwork(torch.nn.Module):
    """z (and label c) -> w, broadcast to ``num_ws`` per-layer latents, with truncation.

    The learned, non-linear map from the Gaussian z to the intermediate space W is what
    makes W better disentangled than Z. ``w_avg`` tracks the mean of W during training
    (an EMA); truncation pulls latents towards it to trade diversity for quality.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.998,
        freeze_layers: int = 0,
        freeze_embed: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features, trainable=not freeze_embed)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier, trainable=idx >= freeze_layers)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """``[N, z_dim]``, ``[N, c_dim]`` -> ``[N, num_ws, w_dim]`` (``[N, w_dim]`` if num_ws is None).

        Truncation: ``w = w_avg + psi * (w - w_avg)`` on the first ``truncation_cutoff``
        latents (all when ``None``).
        """
        # Each input is normalised on its own so z and the label embedding weigh the same.
        x = None
        if self.z_dim > 0:
            assert z is not None and z.shape[1:] == (self.z_dim,)
            x = normalize_2nd_moment(z.to(torch.float32))  # (N, z_dim)
        if self.c_dim > 0:
            assert c is not None and c.shape[1:] == (self.c_dim,)
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))  # (N, embed_features)
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)  # (N, w_dim) at the end

        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # (N, num_ws, w_dim)

        if truncation_psi != 1:
            assert self.w_avg_beta is not None, "truncation needs w_avg"
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                head = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
                x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


# ---------------------------------------------------------------------------------------------
# Synthesis network


class SynthesisLayer(torch.nn.Module):
    """Modulated 3x3 conv (optionally 2x upsampling) + per-pixel noise + bias + lrelu + clamp.

    The style (an affine map of this layer's w) scales the input channels; the noise adds
    stochastic detail (hair, pores) that the latents need not encode.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].def_gain

        # bias_init=1: styles start at 1, i.e. the layer starts as a plain convolution.
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        self.weight = torch.nn.Parameter(weight.to(memory_format=_memory_format(channels_last)))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool = True,
        gain: float = 1,
        noise_generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``[N, C_in, R/up, R/up]``, w ``[N, w_dim]`` -> ``[N, C_out, R, R]``.

        ``noise_mode``: ``'random'`` (fresh noise, from ``noise_generator`` when given),
        ``'const'`` (the stored ``noise_const``), ``'none'``.
        """
        assert noise_mode in ("random", "const", "none")
        in_resolution = self.resolution // self.up
        assert x.shape[1:] == (self.in_channels, in_resolution, in_resolution), x.shape
        styles = self.affine(w)  # (N, C_in)

        noise = None
        if self.use_noise and noise_mode == "random":
            shape = [x.shape[0], 1, self.resolution, self.resolution]
            noise = _random_noise(shape, x, noise_generator) * self.noise_strength  # (N, 1, R, R)
        if self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength  # (R, R)

        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp,
                        inplace=fused_modconv == "auto")

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}, "
                f"resolution={self.resolution}, up={self.up}, activation={self.activation}")


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation.

    No demodulation: the output is an image whose scale matters, not a feature map that
    the next layer renormalises. The weight gain is folded into the styles instead.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        self.weight = torch.nn.Parameter(weight.to(memory_format=_memory_format(channels_last)))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        """``[N, C, R, R]``, w ``[N, w_dim]`` -> ``[N, img_channels, R, R]``."""
        styles = self.affine(w) * self.weight_gain  # (N, C)
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp, inplace=fused_modconv == "auto")

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}"


class SynthesisBlock(torch.nn.Module):
    """One resolution of the synthesis network: ``(x, img)`` at R/2 -> ``(x, img)`` at R.

    The first block (``in_channels == 0``) starts from a learned constant ``const`` and has
    one conv; the others upsample with ``conv0`` and refine with ``conv1``. Architectures:
    ``'skip'`` (every block adds its ToRGB output to the upsampled image; StyleGAN2's
    default), ``'resnet'`` (residual feature path, ToRGB only at the end), ``'orig'`` (plain).

    ``num_conv`` and ``num_torgb`` say how many ws the block consumes: ``ws`` given to it is
    ``[N, num_conv + num_torgb, w_dim]`` (conv0, conv1, torgb in that order).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = 256,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        fused_modconv_default: bool | str = True,
        **layer_kwargs: Any,
    ) -> None:
        assert architecture in ("orig", "skip", "resnet")
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        common = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, resample_filter=resample_filter,
                                        **common, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **common, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    @property
    def step_rows(self) -> tuple[tuple[int, ...], ...]:
        """The rows of this block's ``ws`` slice read by each step of ``forward``, in order.

        The steps are the block's layers: ``conv0``, ``conv1`` and ``torgb`` (the first block:
        ``conv1``, ``torgb``; ``'resnet'``: both convs with the skip branch as one step, since
        the residual sum needs all three). ``forward(first_step=k, ...)`` resumes before step k
        from that step's inputs, which lets incremental synthesis restart inside a block.
        """
        if self.in_channels == 0:
            convs: tuple[tuple[int, ...], ...] = ((0,),)
        elif self.architecture == "resnet":
            convs = ((0, 1),)
        else:
            convs = ((0,), (1,))
        return convs + (((self.num_conv,),) if self.num_torgb else ())

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        force_fp32: bool = False,
        fused_modconv: bool | str | None = None,
        update_emas: bool = False,  # accepted for NVlabs call compatibility; nothing to update
        noise_mode: str = "random",
        noise_generator: torch.Generator | None = None,
        first_step: int = 0,
        before_step: Callable[[int, torch.Tensor | None, torch.Tensor | None], None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``[N, C_in, R/2, R/2]`` (None for the first block), ``img``
        ``[N, img_channels, R/2, R/2]`` or None, ``ws`` ``[N, num_conv + num_torgb, w_dim]``
        -> ``x`` ``[N, C_out, R, R]`` (fp16 in fp16 blocks), ``img`` float32 ``[N, img_channels, R, R]``
        (None while a non-skip architecture has not reached its last block).

        ``first_step`` > 0 resumes inside the block (see ``step_rows``): ``x`` and ``img``
        are then that step's inputs, as ``before_step(step, x, img)`` saw them on an
        earlier call; ``before_step`` is called before every step that runs.
        """
        assert ws.shape[1:] == (self.num_conv + self.num_torgb, self.w_dim), ws.shape
        w = ws.unbind(dim=1)
        use_fp16 = self.use_fp16 and ws.device.type == "cuda" and not force_fp32
        dtype = torch.float16 if use_fp16 else torch.float32
        memory_format = _memory_format(self.channels_last and use_fp16)
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
        if fused_modconv == "inference_only":
            fused_modconv = not self.training
        if fused_modconv == "auto" and not use_fp16:
            memory_format = torch.preserve_format  # the lean path's NHWC layout stays as it is
        layer_kwargs = dict(fused_modconv=fused_modconv, noise_mode=noise_mode, noise_generator=noise_generator)

        num_steps = len(self.step_rows)
        for step in range(first_step, num_steps):
            if before_step is not None:
                before_step(step, x, img)
            if step < num_steps - self.num_torgb:
                x = self._conv_step(step, x, w, dtype, memory_format, layer_kwargs)
            else:
                img = self._torgb_step(x, img, w[self.num_conv], fused_modconv)
        if not self.num_torgb and img is not None:
            img = upsample2d(img, self.resample_filter)
        return x, img

    def _conv_step(self, step: int, x: torch.Tensor | None, w: Sequence[torch.Tensor], dtype: torch.dtype,
                   memory_format: torch.memory_format, layer_kwargs: dict) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format)
            x = x.unsqueeze(0).repeat([w[0].shape[0], 1, 1, 1])  # (N, C, 4, 4)
            return self.conv1(x, w[0], **layer_kwargs)
        if step > 0:
            return self.conv1(x, w[1], **layer_kwargs)  # (N, C_out, R, R)
        assert x is not None and x.shape[1:] == (self.in_channels, self.resolution // 2, self.resolution // 2)
        x = x.to(dtype=dtype, memory_format=memory_format)
        if self.architecture != "resnet":
            return self.conv0(x, w[0], **layer_kwargs)
        # sqrt(1/2) on both branches keeps the variance of their sum unchanged.
        y = self.skip(x, gain=np.sqrt(0.5))
        x = self.conv0(x, w[0], **layer_kwargs)
        x = self.conv1(x, w[1], gain=np.sqrt(0.5), **layer_kwargs)
        return y + x

    def _torgb_step(self, x: torch.Tensor, img: torch.Tensor | None, w: torch.Tensor,
                    fused_modconv: bool | str) -> torch.Tensor:
        if img is not None:
            assert img.shape[1:] == (self.img_channels, self.resolution // 2, self.resolution // 2)
            img = upsample2d(img, self.resample_filter)  # (N, img_channels, R, R)
        y = self.torgb(x, w, fused_modconv=fused_modconv)
        y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        return img + y if img is not None else y

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class SynthesisNetwork(torch.nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> image ``[N, img_channels, R, R]``, as blocks ``b4``, ``b8``, ...

    Block i consumes ``ws[:, w_idx : w_idx + num_conv + num_torgb]`` where ``w_idx`` is the
    sum of ``num_conv`` of the blocks before it: consecutive blocks share one latent, the
    one used by a block's ToRGB and by the next block's first conv. :meth:`split_ws` gives
    these slices, and the forward pass is a plain loop carrying ``(x, img)``, so synthesis
    can be restarted at any block from cached ``(x, img)``.
    """

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        **block_kwargs: Any,
    ) -> None:
        assert img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == img_resolution
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim,
                                   resolution=res, img_channels=img_channels, is_last=is_last,
                                   use_fp16=res >= fp16_resolution, **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    @property
    def blocks(self) -> list[SynthesisBlock]:
        """The blocks from 4x4 up, in execution order."""
        return [getattr(self, f"b{res}") for res in self.block_resolutions]

    def split_ws(self, ws: torch.Tensor) -> list[torch.Tensor]:
        """Per-block views of ``ws`` ``[N, num_ws, w_dim]``: block i gets
        ``ws[:, w_idx : w_idx + num_conv + num_torgb]``, ``w_idx`` advancing by ``num_conv``.

        In the skip architecture a block's ToRGB latent is the next block's first latent,
        so a change at latent L first affects the first block whose slice contains L,
        which is the block *before* the one whose conv0 reads L.
        """
        assert ws.shape[1:] == (self.num_ws, self.w_dim), ws.shape
        slices = []
        w_idx = 0
        for block in self.blocks:
            slices.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))
            w_idx += block.num_conv
        return slices

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "random",
        force_fp32: bool = False,
        noise_generator: torch.Generator | None = None,
        **block_kwargs: Any,
    ) -> torch.Tensor:
        """``[N, num_ws, w_dim]`` -> float32 NCHW image, roughly in [-1, 1] (not clipped).

        ``noise_generator`` makes ``noise_mode='random'`` reproducible; other keywords
        (``fused_modconv``, ``update_emas``) go to every block.
        """
        x = img = None
        for block, block_ws in zip(self.blocks, self.split_ws(ws.to(torch.float32))):
            x, img = block(x, img, block_ws, force_fp32=force_fp32, noise_mode=noise_mode,
                           noise_generator=noise_generator, **block_kwargs)
        return img

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_fp16_res={self.num_fp16_res}")


class Generator(torch.nn.Module):
    """StyleGAN2 generator: ``mapping`` (z, c -> ws) followed by ``synthesis`` (ws -> image).

    StyleGAN3's generator is this class with other ``synthesis_class`` / ``mapping_class``.
    """

    synthesis_class: type[torch.nn.Module]  # set below, once SynthesisNetwork is defined
    mapping_class: type[torch.nn.Module]

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict[str, Any] | None = None,
        **synthesis_kwargs: Any,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = self.synthesis_class(w_dim=w_dim, img_resolution=img_resolution,
                                              img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = self.mapping_class(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws,
                                          **(mapping_kwargs or {}))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        truncation_psi: float = 1,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        **synthesis_kwargs: Any,
    ) -> torch.Tensor:
        """``[N, z_dim]``, ``[N, c_dim]`` -> ``[N, img_channels, R, R]``."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)


Generator.synthesis_class = SynthesisNetwork
Generator.mapping_class = MappingNetwork


# ---------------------------------------------------------------------------------------------
# Discriminator


class DiscriminatorBlock(torch.nn.Module):
    """One resolution of the discriminator: ``(x, img)`` at R -> ``(x, img)`` at R/2.

    ``'resnet'`` (default): two 3x3 convs (the second downsamples) plus a 1x1 downsampling
    skip. ``'skip'``: every block also reads the downsampled input image through ``fromrgb``.
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        first_layer_idx: int,
        architecture: str = "resnet",
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        freeze_layers: int = 0,
    ) -> None:
        assert in_channels in (0, tmp_channels)
        assert architecture in ("orig", "skip", "resnet")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_layers = 0

        def trainable() -> bool:
            """Freeze-D: the first `freeze_layers` layers of the whole D stay fixed."""
            layer_idx = self.first_layer_idx + self.num_layers
            self.num_layers += 1
            return layer_idx >= freeze_layers

        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, trainable=trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, trainable=trainable(), **common)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, down=2, trainable=trainable(),
                                 resample_filter=resample_filter, **common)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=trainable(), resample_filter=resample_filter,
                                    channels_last=self.channels_last)

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` ``[N, C, R, R]`` (None for the first block), ``img`` ``[N, img_channels, R, R]``
        -> ``x`` ``[N, C_out, R/2, R/2]``, ``img`` downsampled (skip) or None."""
        device = (x if x is not None else img).device
        use_fp16 = self.use_fp16 and device.type == "cuda" and not force_fp32
        dtype = torch.float16 if use_fp16 else torch.float32
        memory_format = _memory_format(self.channels_last and use_fp16)

        if x is not None:
            assert x.shape[1:] == (self.in_channels, self.resolution, self.resolution), x.shape
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0 or self.architecture == "skip":
            assert img is not None and img.shape[1:] == (self.img_channels, self.resolution, self.resolution)
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)  # (N, tmp_channels, R, R)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x)
            x = self.conv1(x)  # (N, out_channels, R/2, R/2)
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class MinibatchStdLayer(torch.nn.Module):
    """Append the across-batch standard deviation as extra feature maps.

    Lets D see the variety of a group of samples, so a generator that collapses to a few
    modes is easy to spot. Samples ``n, n + N/G, n + 2N/G, ...`` form a group of size G.
    """

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size is not None else N
        F = self.num_channels
        c = C // F
        y = x.reshape(G, -1, F, c, H, W)  # (G, n, F, c, H, W)
        y = y - y.mean(dim=0)  # deviation from the group mean
        y = y.square().mean(dim=0)  # (n, F, c, H, W) variance over the group
        y = (y + 1e-8).sqrt()  # standard deviation
        y = y.mean(dim=[2, 3, 4])  # (n, F) averaged over channels and pixels
        y = y.reshape(-1, F, 1, 1).repeat(G, 1, H, W)  # (N, F, H, W)
        return torch.cat([x, y], dim=1)  # (N, C + F, H, W)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(torch.nn.Module):
    """The 4x4 head: minibatch-std, conv, two dense layers, projection onto the label map."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
    ) -> None:
        assert architecture in ("orig", "skip", "resnet")
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(
        self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None, force_fp32: bool = False
    ) -> torch.Tensor:
        """``x`` ``[N, C, 4, 4]`` -> logits ``[N, 1]`` (always float32; ``force_fp32`` unused)."""
        assert x.shape[1:] == (self.in_channels, self.resolution, self.resolution), x.shape
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            assert img is not None
            x = x + self.fromrgb(img.to(dtype=torch.float32, memory_format=torch.contiguous_format))

        if self.mbstd is not None:
            x = self.mbstd(x)  # (N, C + F, 4, 4)
        x = self.conv(x)  # (N, C, 4, 4)
        x = self.fc(x.flatten(1))  # (N, C)
        x = self.out(x)  # (N, cmap_dim or 1)

        # Projection discriminator: the score is the dot product with the label's embedding,
        # scaled by 1/sqrt(cmap_dim) to keep it unit-variance.
        if self.cmap_dim > 0:
            assert cmap is not None and cmap.shape[1:] == (self.cmap_dim,)
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))  # (N, 1)
        return x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class Discriminator(torch.nn.Module):
    """StyleGAN2 discriminator: blocks ``b{R}`` ... ``b8`` then the epilogue ``b4``;
    conditional models map the label through their own ``mapping`` network."""

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        conv_clamp: float | None = 256,
        cmap_dim: int | None = None,
        block_kwargs: dict[str, Any] | None = None,
        mapping_kwargs: dict[str, Any] | None = None,
        epilogue_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0

        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res],
                                       channels[res // 2], resolution=res, first_layer_idx=layer_idx,
                                       use_fp16=res >= fp16_resolution, **(block_kwargs or {}), **common)
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4,
                                        **(epilogue_kwargs or {}), **common)

    def forward(
        self, img: torch.Tensor, c: torch.Tensor | None, update_emas: bool = False, **block_kwargs: Any
    ) -> torch.Tensor:
        """``[N, img_channels, R, R]``, ``[N, c_dim]`` -> logits ``[N, 1]``.

        ``update_emas`` is accepted for call compatibility (D has no EMAs);
        ``block_kwargs`` (``force_fp32``) go to every block.
        """
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None  # (N, cmap_dim)
        return self.b4(x, img, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"
