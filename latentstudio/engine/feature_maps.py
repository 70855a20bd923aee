"""A generator's intermediate feature maps, with autograd, and the image they lead to.

DragGAN supervises motion and tracks points on the synthesis network's own features, which
are far more discriminative than pixels. :class:`FeatureSynthesis` cuts the synthesis
network after one StyleGAN2 block or StyleGAN3 layer: :meth:`~FeatureSynthesis.features`
runs the layers up to the cut (with autograd, when the latents need gradients) and returns
the feature map bilinearly resized to the image size, plus a ``carry`` to finish with;
:meth:`~FeatureSynthesis.image` runs the rest (without autograd: no loss reads it). Together
they do the arithmetic of one ``G.synthesis`` call in the same order, so the image is the
network's own image, and an optimiser that needs only the features can skip the expensive
high-resolution layers on steps whose image nobody looks at.

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

    def _noise_generator(self) -> torch.Generator | None:
        if self.noise_mode == "random" and not self.stylegan3:
            return torch.Generator().manual_seed(self.noise_seed)  # on the CPU, as the renderer draws it
        return None

    def features(self, ws: torch.Tensor, resize: bool = True) -> tuple[torch.Tensor, Any]:
        """``ws`` ``[1, num_ws, w_dim]`` -> (features ``[1, C, R, R]`` float32, carry).

        The features are bilinearly resized to the image size ``R`` unless ``resize`` is
        False (then they are the map's own size). ``carry`` (detached) lets :meth:`image`
        finish the same synthesis later.
        """
        ws = ws.to(torch.float32)
        if self.stylegan3:
            x = self.synthesis.input(ws[:, 0])
            for i, layer in enumerate(self.synthesis.layers[: self.layer.index + 1]):
                x = layer(x, ws[:, i + 1])
            carry: Any = (x.detach(), None)
            margin = (x.shape[-1] - self.layer.size) // 2
            features = x[:, :, margin : x.shape[-2] - margin, margin : x.shape[-1] - margin].float()
        else:
            generator = self._noise_generator()
            x = img = None
            blocks = self.synthesis.blocks[: self.layer.index + 1]
            for block, block_ws in zip(blocks, self.synthesis.split_ws(ws)):
                x, img = block(x, img, block_ws, noise_mode=self.noise_mode, noise_generator=generator)
            noise_state = generator.get_state() if generator is not None else None
            carry = (x.detach(), None if img is None else img.detach(), noise_state)
            features = x.float()
        if resize and features.shape[-1] != self.resolution:
            features = F.interpolate(features, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        return features, carry

    def image(self, ws: torch.Tensor, carry: Any) -> torch.Tensor:
        """The NCHW image of the synthesis :meth:`features` began (``ws`` the same latents)."""
        with torch.no_grad():
            ws = ws.detach().to(torch.float32)
            if self.stylegan3:
                # Resume before layer index + 1: step k of the network is layer k - 1.
                return self.synthesis(ws, first_step=self.layer.index + 2, x=carry[0])
            x, img, noise_state = carry
            generator = None
            if noise_state is not None:
                generator = torch.Generator()
                generator.set_state(noise_state)
            start = self.layer.index + 1
            for block, block_ws in zip(self.synthesis.blocks[start:], self.synthesis.split_ws(ws)[start:]):
                x, img = block(x, img, block_ws, noise_mode=self.noise_mode, noise_generator=generator)
            return img
