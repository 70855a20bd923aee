"""Incremental re-synthesis: re-run only the synthesis blocks that a new ``ws`` affects.

While a person drags a fine-style slider, only the last few ``ws`` rows change, yet a plain
renderer re-runs the whole network. A StyleGAN2 synthesis network is a chain of blocks
carrying ``(x, img)``; block i reads a contiguous slice of ``ws`` (see
``SynthesisNetwork.split_ws``). So we keep every block's inputs from the previous frame and,
when the first changed ``ws`` row is k, restart at the first block whose slice contains k.
Restarting repeats the same arithmetic on the same inputs, so the pixels are identical to a
full render of the same path. By default the blocks run the lean batch-1 modulated
convolution (``fused_modconv="auto"``, see ``latentstudio.nets.ops``), equal to the
reference path up to float rounding.

Random noise stays exact too: noise is drawn layer by layer from one generator, so we also
keep the generator's state at each block boundary and restore it on restart.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

BlockCallback = Callable[[int, int, torch.Tensor | None], None]


@dataclass
class _BlockInput:
    x: torch.Tensor | None
    img: torch.Tensor | None
    noise_state: torch.Tensor | None

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.x, self.img, self.noise_state) if t is not None)


@dataclass
class CacheStats:
    """What the last call did: where it restarted and how much memory the cache holds."""

    restart_block: int = 0
    blocks_run: int = 0
    num_blocks: int = 0
    cached_bytes: int = 0


class IncrementalSynthesis:
    """Batch-1 StyleGAN2 synthesis that reuses the previous frame's block inputs.

    ``max_bytes`` bounds the cache. When a large model's block inputs do not all fit, they
    are kept greedily from the last block back (the late blocks are the expensive ones to
    recompute, and fine edits restart there); a restart then begins at the nearest cached
    block at or before the needed one.
    """

    def __init__(self, synthesis: nn.Module, max_bytes: int = 512 * 2**20, fused_modconv: bool | str = "auto"):
        self.synthesis = synthesis
        self.fused_modconv = fused_modconv
        self.blocks = list(synthesis.blocks)
        self.max_bytes = max_bytes
        # First ws row past each block's slice: block i reads rows [starts[i], ends[i]).
        self.starts, self.ends = [], []
        w_idx = 0
        for block in self.blocks:
            self.starts.append(w_idx)
            self.ends.append(w_idx + block.num_conv + block.num_torgb)
            w_idx += block.num_conv
        self.stats = CacheStats(num_blocks=len(self.blocks))
        self.clear()

    def clear(self) -> None:
        self._key: tuple | None = None
        self._ws: torch.Tensor | None = None
        self._inputs: dict[int, _BlockInput] = {}
        self._output: torch.Tensor | None = None
        self.stats.cached_bytes = 0

    def first_block_for_row(self, row: int) -> int:
        """The first block whose ``ws`` slice contains ``row``."""
        return next(i for i, end in enumerate(self.ends) if end > row)

    def __call__(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        noise_seed: int = 0,
        on_block: BlockCallback | None = None,
    ) -> torch.Tensor:
        """``ws`` ``[1, num_ws, w_dim]`` -> image ``[1, C, R, R]``, reusing what it can.

        ``on_block(index, resolution, img)`` is called after each block that runs (for
        progressive previews); ``img`` is that block's partial image (None outside ``skip``).
        """
        assert ws.shape[0] == 1, "incremental synthesis is for batch 1"
        key = (noise_mode, noise_seed if noise_mode == "random" else None, ws.device, ws.dtype, ws.shape)
        start = 0
        if key == self._key and self._ws is not None:
            changed = (ws[0] != self._ws[0]).any(dim=1).nonzero()
            if changed.numel() == 0:
                self.stats.restart_block, self.stats.blocks_run = len(self.blocks), 0
                return self._output
            needed = self.first_block_for_row(int(changed[0]))
            start = max((i for i in self._inputs if i <= needed), default=0)
        else:
            self.clear()
            self._key = key

        generator = None
        if noise_mode == "random":
            generator = torch.Generator()
            if start > 0:
                generator.set_state(self._inputs[start].noise_state)
            else:
                generator.manual_seed(noise_seed)
        x, img = (None, None) if start == 0 else (self._inputs[start].x, self._inputs[start].img)

        slices = self.synthesis.split_ws(ws.to(torch.float32))
        for index in range(start, len(self.blocks)):
            self._inputs[index] = _BlockInput(x, img, generator.get_state() if generator is not None else None)
            x, img = self.blocks[index](x, img, slices[index], noise_mode=noise_mode, noise_generator=generator,
                                        fused_modconv=self.fused_modconv)
            if on_block is not None:
                on_block(index, self.blocks[index].resolution, img)
        self._ws, self._output = ws.clone(), img
        self._enforce_budget()
        self.stats.restart_block, self.stats.blocks_run = start, len(self.blocks) - start
        return img

    def _enforce_budget(self) -> None:
        total = 0
        for index in sorted(self._inputs, reverse=True):
            size = self._inputs[index].nbytes
            if total + size > self.max_bytes and index != 0:
                del self._inputs[index]
            else:
                total += size
        self._inputs.setdefault(0, _BlockInput(None, None, None))
        self.stats.cached_bytes = total
