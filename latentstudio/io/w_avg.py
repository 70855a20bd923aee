"""The average latent ``w_avg`` for files that do not store one (truncation pulls towards it)."""
from __future__ import annotations

import copy

import torch
from torch import nn

W_AVG_SAMPLES = 100_000
W_AVG_SEED = 0
_BATCH = 10_000


def mean_w(mapping: nn.Module, samples: int = W_AVG_SAMPLES, seed: int = W_AVG_SEED) -> torch.Tensor:
    """The mean of ``samples`` mapped latents ``z ~ N(0, I)`` drawn from ``seed`` (``[w_dim]``).

    The same seed and count always give the same average, so a model loads to the same
    pixels every time; z is drawn on the CPU in fixed batches and summed in float64.
    """
    device = next(mapping.parameters()).device
    unbroadcast = copy.copy(mapping)  # shares the weights; [N, w_dim] out, not [N, num_ws, w_dim]
    unbroadcast.num_ws = None
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros([mapping.w_dim], dtype=torch.float64, device=device)
    with torch.no_grad():
        for start in range(0, samples, _BATCH):
            z = torch.randn([min(_BATCH, samples - start), mapping.z_dim], generator=generator).to(device)
            c = torch.zeros([len(z), mapping.c_dim], device=device)
            total += unbroadcast(z, c).to(torch.float64).sum(dim=0)  # (w_dim,)
    return (total / samples).to(torch.float32)
