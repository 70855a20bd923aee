"""Rendering benchmarks: each fast path against the plain reference path, same weights, same run.

The plain path is ``Renderer(G, incremental=False, lean=False)``: the NVlabs computation,
a full synthesis per frame. Every number is a median over repeated frames after warm-up,
and every comparison is a ratio measured in the same process, so results from different
machines can be compared by their ratios.
"""
from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
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


def interleaved_median_ms(runs: Sequence[Callable[[int], object]], device: torch.device, repeats: int,
                          warmup: int = 2) -> list[float]:
    """Median wall time of each ``run(i)`` in milliseconds (``i`` lets each call differ), the
    runs taking turns (a, b, a, b, ...).

    Taking turns matters on a shared or throttling machine: load that drifts during the
    measurement then slows every run alike, so the ratios between them stay honest.
    """
    for i in range(warmup):
        for run in runs:
            run(-1 - i)
    _sync(device)
    times: list[list[float]] = [[] for _ in runs]
    for i in range(repeats):
        for run, series in zip(runs, times):
            start = time.perf_counter()
            run(i)
            _sync(device)
            series.append(1e3 * (time.perf_counter() - start))
    return [statistics.median(series) for series in times]


@dataclass
class RenderBench:
    label: str
    plain_ms: float
    fast_ms: float
    top_rows_edit_ms: float  # the top two ws rows
    wider_edit_ms: float  # the last two blocks (StyleGAN3, which has no blocks: the last four layers)
    preview_ms: float | None
    wider_edit_label: str = "edit, last 2 blocks"
    no_preview_reason: str = ""

    @property
    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ("full frame, plain", f"{self.plain_ms:8.1f} ms   ({1e3 / self.plain_ms:.1f} frames/s)"),
            ("full frame, fast", f"{self.fast_ms:8.1f} ms   plain/fast = {self.plain_ms / self.fast_ms:5.2f}x   ({1e3 / self.fast_ms:.1f} frames/s)"),
            ("edit, top 2 ws (last 2 layers)", f"{self.top_rows_edit_ms:8.1f} ms   full plain/edit = {self.plain_ms / self.top_rows_edit_ms:5.2f}x"),
            (self.wider_edit_label, f"{self.wider_edit_ms:8.1f} ms   full plain/edit = {self.plain_ms / self.wider_edit_ms:5.2f}x"),
        ]
        if self.preview_ms is not None:
            rows.append(("first preview", f"{self.preview_ms:8.1f} ms   preview/full fast = {self.preview_ms / self.fast_ms:5.2f}"))
        else:
            rows.append(("first preview", self.no_preview_reason))
        return rows


def bench_renderer(G: nn.Module, label: str, repeats: int = 5, class_index: int | None = None) -> RenderBench:
    """Full frame (plain vs fast), fine-layer edits and first preview for one generator.

    The four measurements take turns frame by frame (see :func:`interleaved_median_ms`).
    """
    device = next(G.parameters()).device
    base = EditRecipe(seed=0, class_index=class_index if G.c_dim else None, truncation_psi=0.7)
    plain = Renderer(G, incremental=False, lean=False)
    fast = Renderer(G)
    editors = [Renderer(G), Renderer(G)]  # one per fine edit, each keeping its own cache

    def check(frame):
        if not frame.ok:
            raise RuntimeError(frame.error)
        return frame

    # Full frames: a new seed every frame, so nothing can be reused and both paths run
    # everything. The fast path's frames also time their first progressive preview.
    preview_times: list[float] = []

    def fast_frame(i: int) -> None:
        start = time.perf_counter()
        got: list[float] = []
        check(fast.render(base.replace(seed=200 + i), on_preview=lambda frame: got.append(time.perf_counter() - start)))
        if got and i >= 0:
            preview_times.append(1e3 * got[0])

    # Fine edits, as while dragging a slider: the top two ws rows (read by the last conv1
    # and toRGB only; StyleGAN3: the last layer and ToRGB) and the rows read only by the
    # last two blocks (StyleGAN3: the last four layers).
    vector = np.random.RandomState(0).randn(G.w_dim)
    vector = tuple(vector / np.linalg.norm(vector))
    blocks = getattr(G.synthesis, "blocks", None)
    if blocks and len(blocks) >= 2:  # the rows read only by the last two blocks
        wider_first_row = list(itertools.accumulate((b.num_conv for b in blocks[:-1]), initial=0))[-2] + 1
        wider_label = "edit, last 2 blocks"
    elif blocks:  # a 4 px network: one block
        wider_first_row, wider_label = 0, "edit, every layer"
    else:  # a chain of layers (StyleGAN3)
        wider_first_row, wider_label = G.num_ws - 4, "edit, last 4 layers"
    for editor in editors:
        check(editor.render(base))

    def edit_from(editor: Renderer, first_row: int):
        def run(i: int):
            edit = DirectionEdit("bench", vector, strength=0.1 * (i + 3), first_layer=first_row, last_layer=G.num_ws - 1)
            return check(editor.render(base.replace(edits=(edit,))))
        return run

    plain_ms, fast_ms, top_rows_ms, wider_ms = interleaved_median_ms(
        [lambda i: check(plain.render(base.replace(seed=100 + i))), fast_frame,
         edit_from(editors[0], G.num_ws - 2), edit_from(editors[1], wider_first_row)],
        device, repeats)
    preview_ms = statistics.median(preview_times) if preview_times else None
    if blocks and blocks[-1].architecture == "skip" and G.img_resolution >= 32:
        no_preview = f"none (sent only when a full frame takes {Renderer.PREVIEW_MIN_FRAME_MS:.0f} ms or more)"
    else:
        no_preview = "none (previews need StyleGAN2's skip architecture, 32 px or more)"
    return RenderBench(label, plain_ms, fast_ms, top_rows_ms, wider_ms, preview_ms, wider_label, no_preview)


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
