"""Rendering benchmarks: each fast path against the plain reference path, same weights, same run.

The plain path is ``Renderer(G, incremental=False, lean=False)``: the NVlabs computation,
a full synthesis per frame. Every number is a median over repeated frames after warm-up,
and every comparison is a ratio measured in the same process, so results from different
machines can be compared by their ratios.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from latentstudio.engine.recipe import DirectionEdit, EditRecipe
from latentstudio.engine.renderer import Renderer


def config_f_generator(resolution: int, device: str | torch.device = "cpu", fp16: bool = False) -> nn.Module:
    """A randomly initialised StyleGAN2 with the paper's config-f widths (512-dim W, 8-layer mapping)."""
    from latentstudio.nets.stylegan2 import Generator

    kwargs = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                  mapping_kwargs={"num_layers": 8}, channel_base=32768, channel_max=512,
                  num_fp16_res=4 if fp16 else 0, conv_clamp=256 if fp16 else None)
    G = Generator(**kwargs).eval().requires_grad_(False).to(device)
    G.kind, G.init_kwargs = "stylegan2", kwargs
    return G


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(run: Callable[[int], object], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``run(i)`` in milliseconds (``i`` lets each call differ)."""
    for i in range(warmup):
        run(-1 - i)
    _sync(device)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        run(i)
        _sync(device)
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


@dataclass
class RenderBench:
    label: str
    plain_ms: float
    fast_ms: float
    last_block_edit_ms: float
    last_two_blocks_edit_ms: float
    preview_ms: float | None

    @property
    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ("full frame, plain", f"{self.plain_ms:8.1f} ms"),
            ("full frame, fast", f"{self.fast_ms:8.1f} ms   plain/fast = {self.plain_ms / self.fast_ms:5.2f}x"),
            ("edit, top 2 ws (last block)", f"{self.last_block_edit_ms:8.1f} ms   full plain/edit = {self.plain_ms / self.last_block_edit_ms:5.2f}x"),
            ("edit, last 2 blocks", f"{self.last_two_blocks_edit_ms:8.1f} ms   full plain/edit = {self.plain_ms / self.last_two_blocks_edit_ms:5.2f}x"),
        ]
        if self.preview_ms is not None:
            rows.append(("first preview", f"{self.preview_ms:8.1f} ms   preview/full fast = {self.preview_ms / self.fast_ms:5.2f}"))
        return rows


def bench_renderer(G: nn.Module, label: str, repeats: int = 5, class_index: int | None = None) -> RenderBench:
    """Full frame (plain vs fast), fine-layer edit and first preview for one generator."""
    device = next(G.parameters()).device
    base = EditRecipe(seed=0, class_index=class_index if G.c_dim else None, truncation_psi=0.7)
    plain = Renderer(G, incremental=False, lean=False)
    fast = Renderer(G)

    def check(frame):
        if not frame.ok:
            raise RuntimeError(frame.error)
        return frame

    # A new seed every frame: nothing can be reused, both paths run everything.
    plain_ms = median_ms(lambda i: check(plain.render(base.replace(seed=100 + i))), device, repeats)
    fast_ms = median_ms(lambda i: check(fast.render(base.replace(seed=200 + i))), device, repeats)

    # Fine edits, as while dragging a slider: on the rows read only by the last block (the
    # top two ws rows at any resolution) and on the rows of the last two blocks.
    vector = np.random.RandomState(0).randn(G.w_dim)
    vector = tuple(vector / np.linalg.norm(vector))
    starts = fast.incremental.starts if fast.incremental is not None else [G.num_ws - 2] * 2
    check(fast.render(base))

    def edit_from(first_row: int):
        def run(i: int):
            edit = DirectionEdit("bench", vector, strength=0.1 * (i + 3), first_layer=first_row, last_layer=G.num_ws - 1)
            return check(fast.render(base.replace(edits=(edit,))))
        return run

    last_block_ms = median_ms(edit_from(starts[-1] + 1), device, repeats)
    last_two_blocks_ms = median_ms(edit_from(starts[-2] + 1), device, repeats)

    preview_ms = None
    times: list[float] = []

    def with_preview(i: int):
        start = time.perf_counter()
        got: list[float] = []
        check(fast.render(base.replace(seed=300 + i), on_preview=lambda frame: got.append(time.perf_counter() - start)))
        if got and i >= 0:
            times.append(1e3 * got[0])

    median_ms(with_preview, device, repeats)
    if times:
        preview_ms = statistics.median(times)
    return RenderBench(label, plain_ms, fast_ms, last_block_ms, last_two_blocks_ms, preview_ms)


def cold_start_ms(model: str) -> float:
    """Wall time of a fresh process that imports latentstudio, loads ``model`` and renders one frame."""
    import subprocess
    import sys

    code = (
        "import latentstudio as ls;"
        f"G = ls.load_model({model!r});"
        "f = ls.Renderer(G).render(ls.EditRecipe(seed=0, class_index=0 if G.c_dim else None));"
        "assert f.ok, f.error"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return 1e3 * (time.perf_counter() - start)
