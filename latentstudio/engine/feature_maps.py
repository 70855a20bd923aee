"""A generator's intermediate feature maps, with autograd, and the image they lead to.

DragGAN supervises motion and tracks points on the synthesis network's own features, which
are far more discriminative than pixels. :class:`FeatureSynthesis` cuts the synthesis
network after one StyleGAN2 block or StyleGAN3 layer: :meth:`~FeatureSynthesis.features`
runs the layers up to the cut (with autograd, when the latents need gradients) and
:meth:`~FeatureSynthesis.image` runs the rest later (without autograd: no loss reads it).
Together they compute what one ``G.synthesis`` call computes, so the image is the network's
own image (to float rounding: the first part runs the modulated convolutions unfused, which
spares the backward pass a gradient for every modulated weight, the rest the renderer's
lean batch-1 path), and an optimiser that needs only the features skips the expensive
high-resolution layers on steps whose image nobody looks at.

DragGAN resizes the feature map bilinearly to the image size; :class:`ResizedFeatures`
reads that resized map at any pixel positions without building it (a 512 px model's map
would be 256 channels x 512 x 512 per step).

Which features (``feature_layers`` lists the choices, :func:`default_feature_layer` picks):

- StyleGAN2: the output ``x`` of a block. DragGAN uses the 6th block (128x128 on its 256,
  512 and 1024 px models); models under 256 px have no 128 px block below their last one,
  so they use the block at half the output resolution, which is what the 6th block is on a
  256 px model.
- StyleGAN3: the output of a synthesis layer. DragGAN uses the 6th (``L5``, of 14). A
  StyleGAN3 layer's grid carries ``margin`` extra samples on each side of the image area;
  they are cropped before resizing, so feature pixel (x, y) lies under image pixel (x, y)
  (DragGAN resizes the whole grid, margins included, which shifts every feature off its
  pixel towards the centre).

The network modules are used as they are: nothing in ``latentstudio.nets`` changes, and
the renderer's fast paths are untouched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DRAGGAN_FEATURE_INDEX = 5  # DragGAN's `feature_idx`: the 6th block (StyleGAN2) or layer (StyleGAN3)
DRAGGAN_STYLEGAN3_LAYERS = 14  # the StyleGAN3 depth DragGAN's choice was made on


@dataclass(frozen=True)
class FeatureLayer:
    """One place to cut the synthesis network: ``index`` of the block (StyleGAN2, 4x4 = 0)
    or layer (StyleGAN3, ``L0`` = 0), its ``name``, the ``size`` of its map over the image
    area (margins cropped), its ``channels``, and ``last_row``, the highest ``ws`` row that
    the layers up to it read."""

    index: int
    name: str
    size: int
    channels: int
    last_row: int


def is_stylegan3(G: nn.Module) -> bool:
    return not hasattr(G.synthesis, "blocks")


def feature_layers(G: nn.Module) -> list[FeatureLayer]:
    """Every block (StyleGAN2) or layer before ToRGB (StyleGAN3) whose output can be the features."""
    synthesis = G.synthesis
    if is_stylegan3(G):
        layers = synthesis.layers[:-1]  # ToRGB's "features" are the image itself
        return [FeatureLayer(i, name, int(layer.out_sampling_rate), layer.out_channels, i + 1)
                for i, (name, layer) in enumerate(zip(synthesis.layer_names, layers))]
    result, w_idx = [], 0
    for i, block in enumerate(synthesis.blocks):
        w_idx += block.num_conv
        result.append(FeatureLayer(i, f"b{block.resolution}", block.resolution, block.conv1.out_channels, w_idx - 1))
    return result


def default_feature_layer(G: nn.Module) -> int:
    """DragGAN's choice (see the module docstring), scaled to models smaller than its own."""
    layers = feature_layers(G)
    if is_stylegan3(G):
        scaled = round((DRAGGAN_FEATURE_INDEX + 1) * G.synthesis.num_layers / DRAGGAN_STYLEGAN3_LAYERS) - 1
        return min(max(scaled, 0), len(layers) - 1)
    wanted = min(128, G.img_resolution // 2)
    return next((layer.index for layer in layers if layer.size >= wanted), layers[-1].index)


@dataclass
class Features:
    """What the layers up to the cut produced: the feature ``map`` ``[1, C, h, w]`` (float32,
    StyleGAN3 margins cropped), the partial image of a StyleGAN2 ``skip`` generator summed so
    far (``[1, img_channels, h, w]``, None otherwise), and a detached ``carry`` for
    :meth:`FeatureSynthesis.image`."""

    map: torch.Tensor
    partial_image: torch.Tensor | None
    carry: Any


class FeatureSynthesis:
    """``G.synthesis`` cut after feature layer ``layer`` (default :func:`default_feature_layer`).

    ``noise_mode`` / ``noise_seed`` as in :class:`~latentstudio.engine.recipe.EditRecipe`:
    ``random`` noise is drawn from a generator seeded afresh on every call, so the noise is
    the same on every step of an optimisation. A StyleGAN3 input transform must be set on
    ``G.synthesis`` by the caller (``set_transform``) before the first call.
    """

    def __init__(self, G: nn.Module, layer: int | None = None, noise_mode: str = "const", noise_seed: int = 0):
        self.G = G
        self.synthesis = G.synthesis
        self.stylegan3 = is_stylegan3(G)
        choices = feature_layers(G)
        index = default_feature_layer(G) if layer is None else layer
        if not 0 <= index < len(choices):
            kind = "layer" if self.stylegan3 else "block"
            raise ValueError(f"feature {kind} {index} does not exist: this model has {kind}s 0-{len(choices) - 1} "
                             f"({', '.join(c.name for c in choices)})")
        self.layer = choices[index]
        self.noise_mode = noise_mode
        self.noise_seed = noise_seed
        self.resolution = G.img_resolution

    def _noise_generator(self, state: torch.Tensor | None = None) -> torch.Generator | None:
        if self.noise_mode != "random" or self.stylegan3:
            return None
        generator = torch.Generator()  # on the CPU, as the renderer draws it
        if state is None:
            return generator.manual_seed(self.noise_seed)
        generator.set_state(state)
        return generator

    def features(self, ws: torch.Tensor) -> Features:
        """``ws`` ``[1, num_ws, w_dim]`` -> the :class:`Features` of the layers up to the cut."""
        ws = ws.to(torch.float32)
        if self.stylegan3:
            x = self.synthesis.input(ws[:, 0])
            for i, layer in enumerate(self.synthesis.layers[: self.layer.index + 1]):
                x = layer(x, ws[:, i + 1])
            margin = (x.shape[-1] - self.layer.size) // 2
            cropped = x[:, :, margin : x.shape[-2] - margin, margin : x.shape[-1] - margin]
            return Features(cropped.float(), None, (x.detach(), None, None))
        generator = self._noise_generator()
        x = img = None
        blocks = self.synthesis.blocks[: self.layer.index + 1]
        for block, block_ws in zip(blocks, self.synthesis.split_ws(ws)):
            # Unfused: the backward pass then needs no gradient of a modulated weight per layer.
            x, img = block(x, img, block_ws, noise_mode=self.noise_mode, noise_generator=generator, fused_modconv=False)
        carry = (x.detach(), None if img is None else img.detach(), None if generator is None else generator.get_state())
        return Features(x.float(), img, carry)

    def image(self, ws: torch.Tensor, carry: Any) -> torch.Tensor:
        """The NCHW image of the synthesis that :meth:`features` began (``ws`` the same latents)."""
        with torch.no_grad():
            ws = ws.detach().to(torch.float32)
            if self.stylegan3:
                # Resume before layer index + 1: step k of the network is layer k - 1.
                return self.synthesis(ws, first_step=self.layer.index + 2, x=carry[0])
            x, img, noise_state = carry
            generator = self._noise_generator(noise_state)
            start = self.layer.index + 1
            for block, block_ws in zip(self.synthesis.blocks[start:], self.synthesis.split_ws(ws)[start:]):
                x, img = block(x, img, block_ws, noise_mode=self.noise_mode, noise_generator=generator, fused_modconv="auto")
            return img


class ResizedFeatures:
    """A feature map ``[1, C, h, w]`` read as if bilinearly resized to ``R x R``
    (``F.interpolate(..., mode="bilinear", align_corners=False)``), without building it.

    :meth:`pixels` gives the resized map's values at integer pixels; :meth:`at` interpolates
    bilinearly between those (what ``grid_sample(..., align_corners=True)`` on the resized
    map does), clamping positions to the image. Gradients flow to ``map``.
    """

    def __init__(self, map: torch.Tensor, resolution: int):
        self.map = map
        self.resolution = resolution
        _, self.channels, self.height, self.width = map.shape

    def pixels(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Values at integer pixels ``(x, y)`` (1-D integer tensors): ``[C, n]``."""
        # Where F.interpolate reads pixel i: source (i + 0.5) * size / R - 0.5, clamped to the map.
        u = ((x.to(torch.float32) + 0.5) * (self.width / self.resolution) - 0.5).clamp(0, self.width - 1)
        v = ((y.to(torch.float32) + 0.5) * (self.height / self.resolution) - 0.5).clamp(0, self.height - 1)
        grid = torch.stack([u / max(self.width - 1, 1), v / max(self.height - 1, 1)], dim=-1) * 2 - 1
        grid = grid.to(self.map.device).reshape(1, 1, -1, 2)
        return F.grid_sample(self.map, grid, mode="bilinear", align_corners=True)[0, :, 0]

    def at(self, points: np.ndarray) -> torch.Tensor:
        """Values at pixel positions ``(x, y)`` (``[n, 2]``, fractional allowed): ``[C, n]``."""
        xy = torch.as_tensor(np.asarray(points, dtype=np.float64)).reshape(-1, 2).clamp(0, self.resolution - 1)
        low = xy.floor()
        frac = (xy - low).to(torch.float32).to(self.map.device)
        x0, y0 = low[:, 0].long(), low[:, 1].long()
        x1, y1 = (x0 + 1).clamp(max=self.resolution - 1), (y0 + 1).clamp(max=self.resolution - 1)
        corners = self.pixels(torch.cat([x0, x1, x0, x1]), torch.cat([y0, y0, y1, y1])).reshape(self.channels, 4, -1)
        fx, fy = frac[:, 0], frac[:, 1]
        weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])  # [4, n]
        return (corners * weights).sum(dim=1)

    def window(self, left: int, top: int, right: int, bottom: int) -> torch.Tensor:
        """The resized map on pixels ``left <= x < right``, ``top <= y < bottom``: ``[C, h, w]``."""
        ys, xs = torch.meshgrid(torch.arange(top, bottom), torch.arange(left, right), indexing="ij")
        return self.pixels(xs.flatten(), ys.flatten()).reshape(self.channels, bottom - top, right - left)
