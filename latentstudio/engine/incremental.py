"""Incremental re-synthesis: re-run only the synthesis layers that a new ``ws`` affects.

While a person drags a fine-style slider, only the last few ``ws`` rows change, yet a plain
renderer re-runs the whole network. A synthesis network is a chain of layers, each reading
one ``ws`` row: StyleGAN2's blocks carry ``(x, img)`` through ``conv0``, ``conv1`` and
``torgb`` (``SynthesisBlock.step_rows``); StyleGAN3 is one chain from its Fourier input
through its layers to ToRGB (``SynthesisNetwork.step_rows``). So we keep the inputs of every
layer from the previous frame and, when the first changed ``ws`` row is k, restart at the
first layer that reads row k. Restarting *inside* a StyleGAN2 block matters: the last
block's ``conv0`` is a third of its cost, and an edit of the top two rows (its ``conv1`` and
``torgb``) skips it. Restarting repeats the same arithmetic on the same inputs, so the
pixels are identical to a full render of the same path. By default StyleGAN2 blocks run the
lean batch-1 modulated convolution (``fused_modconv="auto"``, see
``latentstudio.nets.ops``), equal to the reference path up to float rounding.

Random noise (StyleGAN2) stays exact too: noise is drawn layer by layer from one generator,
so we also keep the generator's state before each layer and restore it on restart.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
from torch import nn

BlockCallback = Callable[[int, int, torch.Tensor | None], None]


@dataclass
class _StepInput:
    x: torch.Tensor | None
    img: torch.Tensor | None
    noise_state: torch.Tensor | None


@dataclass(frozen=True)
class _Step:
    block: int  # index into the synthesis blocks
    step: int  # index into that block's steps
    rows: tuple[int, ...]  # the ws rows (of the whole network) it reads


@dataclass
class CacheStats:
    """What the last call did: where it restarted and how much memory the cache holds.

    ``restart_block`` / ``restart_step`` name the first layer re-run (``num_blocks`` / 0
    when nothing re-ran); ``steps_run`` counts the layers re-run out of ``num_steps``.
    """

    restart_block: int = 0
    restart_step: int = 0
    blocks_run: int = 0
    steps_run: int = 0
    num_blocks: int = 0
    num_steps: int = 0
    cached_bytes: int = 0


class IncrementalSynthesis:
    """Batch-1 synthesis (StyleGAN2 or StyleGAN3) that reuses the previous frame's layer inputs.

    ``max_bytes`` bounds the cache. When a large model's layer inputs do not all fit, they
    are kept greedily from the last layer back (the late layers are the expensive ones to
    recompute, and fine edits restart there); a restart then begins at the nearest cached
    layer at or before the needed one.
    """

    def __init__(self, synthesis: nn.Module, max_bytes: int = 512 * 2**20, fused_modconv: bool | str | None = "auto"):
        self.synthesis = synthesis
        self.fused_modconv = fused_modconv
        self.max_bytes = max_bytes
        # StyleGAN2: resumable blocks, each reading its slice of ws; StyleGAN3: the network
        # itself is the one resumable chain, reading all of ws.
        self._chain = not hasattr(synthesis, "blocks")
        self.blocks = [synthesis] if self._chain else list(synthesis.blocks)
        self.steps: list[_Step] = []
        self._first_step_of_block: list[int] = []  # index into steps of each block's first step
        w_idx = 0
        for index, block in enumerate(self.blocks):
            self._first_step_of_block.append(len(self.steps))
            for step, rows in enumerate(block.step_rows):
                self.steps.append(_Step(index, step, tuple(w_idx + row for row in rows)))
            w_idx += 0 if self._chain else block.num_conv
        self.stats = CacheStats(num_blocks=len(self.blocks), num_steps=len(self.steps))
        self.clear()

    def clear(self) -> None:
        self._key: tuple | None = None
        self._ws: torch.Tensor | None = None
        self._inputs: dict[int, _StepInput] = {}
        self._output: torch.Tensor | None = None
        self.stats.cached_bytes = 0

    def first_step_for_row(self, row: int) -> int:
        """Index (into ``steps``) of the first layer that reads ``ws`` row ``row``."""
        return next(i for i, step in enumerate(self.steps) if row in step.rows)

    def __call__(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        noise_seed: int = 0,
        on_block: BlockCallback | None = None,
        context: Hashable = None,
    ) -> torch.Tensor:
        """``ws`` ``[1, num_ws, w_dim]`` -> image ``[1, C, R, R]``, reusing what it can.

        ``on_block(index, resolution, img)`` is called after each StyleGAN2 block that runs
        (for progressive previews); ``img`` is that block's partial image (None outside
        ``skip``). ``context`` names whatever else the synthesis depends on (the StyleGAN3
        input transform): when it changes, nothing is reused.
        """
        assert ws.shape[0] == 1, "incremental synthesis is for batch 1"
        if self._chain:
            noise_mode, noise_seed = "none", 0  # StyleGAN3 has no noise inputs: nothing to key on or draw
        key = (noise_mode, noise_seed if noise_mode == "random" else None, ws.device, ws.dtype, ws.shape, context)
        start = 0
        if key == self._key and self._ws is not None:
            changed = (ws[0] != self._ws[0]).any(dim=1).nonzero()
            if changed.numel() == 0:
                self._record(len(self.steps))
                return self._output
            needed = self.first_step_for_row(int(changed[0]))
            start = max(i for i in self._inputs if i <= needed)
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

        try:
            if self._chain:
                img = self._run_chain(ws, start, x)
            else:
                img = self._run_blocks(ws, start, x, img, noise_mode, generator, on_block)
        except BaseException:
            self.clear()  # the cache now mixes this frame's layer inputs with the last frame's
            raise
        self._ws, self._output = ws.clone(), img
        self._enforce_budget()
        self._record(start)
        return img

    def _run_chain(self, ws: torch.Tensor, start: int, x: torch.Tensor | None) -> torch.Tensor:
        """StyleGAN3: resume the whole network at step ``start``, keeping each layer's input."""
        def keep(step: int, x: torch.Tensor | None, img: None) -> None:
            self._inputs[step] = _StepInput(x, None, None)

        return self.synthesis(ws, first_step=start, x=x, before_step=keep)

    def _run_blocks(self, ws: torch.Tensor, start: int, x: torch.Tensor | None, img: torch.Tensor | None,
                    noise_mode: str, generator: torch.Generator | None, on_block: BlockCallback | None) -> torch.Tensor:
        """StyleGAN2: resume at block/step ``start``, then run the later blocks whole."""
        slices = self.synthesis.split_ws(ws.to(torch.float32))
        first_block = self.steps[start].block
        for index in range(first_block, len(self.blocks)):
            offset = self._first_step_of_block[index]

            def keep(step: int, x: torch.Tensor | None, img: torch.Tensor | None, offset: int = offset) -> None:
                self._inputs[offset + step] = _StepInput(x, img, generator.get_state() if generator is not None else None)

            x, img = self.blocks[index](x, img, slices[index], noise_mode=noise_mode, noise_generator=generator,
                                        fused_modconv=self.fused_modconv, before_step=keep,
                                        first_step=self.steps[start].step if index == first_block else 0)
            if on_block is not None:
                on_block(index, self.blocks[index].resolution, img)
        return img

    def _record(self, start: int) -> None:
        restart = self.steps[start] if start < len(self.steps) else _Step(len(self.blocks), 0, ())
        self.stats.restart_block, self.stats.restart_step = restart.block, restart.step
        self.stats.blocks_run = len(self.blocks) - restart.block
        self.stats.steps_run = len(self.steps) - start

    def _enforce_budget(self) -> None:
        """Keep layer inputs from the last layer back while they fit in ``max_bytes``.

        Adjacent steps share tensors (a toRGB step and the next block's conv0 read the same
        ``x``; several steps the same ``img``), so memory is counted once per tensor.
        """
        total, counted = 0, set()
        for index in sorted(self._inputs, reverse=True):
            tensors = [t for t in (self._inputs[index].x, self._inputs[index].img) if t is not None]
            noise = self._inputs[index].noise_state
            size = sum(t.numel() * t.element_size() for t in tensors if t.data_ptr() not in counted)
            size += noise.numel() if noise is not None else 0
            if total + size > self.max_bytes and index != 0:
                del self._inputs[index]
            else:
                total += size
                counted.update(t.data_ptr() for t in tensors)
        self._inputs.setdefault(0, _StepInput(None, None, None))
        self.stats.cached_bytes = total
