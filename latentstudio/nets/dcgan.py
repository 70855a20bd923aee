"""The DCGAN generator (Radford et al. 2016) in the layout of PyTorch's DCGAN tutorial, as a teacher.

Five transposed convolutions take ``z [N, z_dim]`` (as a 1x1 map) to a 64x64 image in
[-1, 1]: 4x4 with ``8 f`` channels, then 8, 16, 32 with ``4 f``, ``2 f``, ``f``, each with
batch norm and ReLU, then ``tanh``. The modules sit in one ``main`` sequence at the
tutorial's indices, so the state dicts that code writes (``main.0.weight``,
``main.1.running_mean``, ...) load as they are. latentstudio never trains it: it is a fixed
function of its z, used by the trainer as an endless data source and as the target of
distillation (:mod:`latentstudio.train.teacher`). Always in eval mode (batch norm uses its
stored statistics), so an image depends on its own z only.
"""
from __future__ import annotations

import torch
from torch import nn

RESOLUTION = 64
CONV_INDICES = (0, 3, 6, 9, 12)  # main.<i>.weight of the five transposed convolutions
NORM_INDICES = (1, 4, 7, 10)  # main.<i> batch norms


class DCGANGenerator(nn.Module):
    """``z [N, z_dim]`` -> images ``[N, channels, 64, 64]`` in [-1, 1]."""

    def __init__(self, z_dim: int = 100, features: int = 64, channels: int = 3) -> None:
        super().__init__()
        self.z_dim, self.features, self.img_channels = z_dim, features, channels
        self.img_resolution = RESOLUTION
        widths = [z_dim, features * 8, features * 4, features * 2, features, channels]
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
            first, last = index == 0, index == len(widths) - 2
            layers.append(nn.ConvTranspose2d(width_in, width_out, 4, 1 if first else 2, 0 if first else 1, bias=False))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(width_out), nn.ReLU(True)]
        self.main = nn.Sequential(*layers)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> DCGANGenerator:
        """Stays in eval mode: a teacher's batch norm must not follow the batch."""
        return super().train(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.reshape(z.shape[0], self.z_dim, 1, 1))
