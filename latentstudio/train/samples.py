"""Sample grids: the same latents rendered by ``G_ema`` at every snapshot, so progress is visible."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latentstudio.engine.export import make_grid, save_png

GRID_COLUMNS = 8


def grid_size(resolution: int) -> int:
    """Number of images in a grid: 32 small ones, fewer as they get large."""
    return 32 if resolution <= 128 else 16 if resolution <= 512 else 8


def fixed_latents(seed: int, count: int, z_dim: int) -> torch.Tensor:
    """``[count, z_dim]`` latents that depend only on ``seed``."""
    return torch.randn([count, z_dim], generator=torch.Generator().manual_seed(seed))


def to_uint8_images(images: torch.Tensor) -> list[np.ndarray]:
    """NCHW floats in [-1, 1] -> HWC uint8 arrays."""
    pixels = (images.detach().float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return list(pixels.permute(0, 2, 3, 1).numpy())


@torch.no_grad()
def render_grid(G: torch.nn.Module, z: torch.Tensor, c: torch.Tensor, batch: int = 16) -> np.ndarray:
    """``G(z, c)`` with constant noise, tiled ``GRID_COLUMNS`` wide, as one HWC uint8 image."""
    device = next(G.parameters()).device
    images: list[np.ndarray] = []
    for start in range(0, len(z), batch):
        out = G(z[start:start + batch].to(device), c[start:start + batch].to(device), noise_mode="const")
        images += to_uint8_images(out)
    return make_grid(images, columns=GRID_COLUMNS)


def save_grid(path: Path, images: list[np.ndarray]) -> Path:
    return save_png(path, make_grid(images, columns=GRID_COLUMNS))
