"""The render thread: the only place the editor runs the network.

One ``QThread`` owns the :class:`~latentstudio.engine.renderer.Renderer`. The GUI hands it
requests and gets :class:`~latentstudio.engine.renderer.Frame` objects back by signal:

- the editor frame is *latest wins*: a new request replaces the pending one, so dragging a
  slider never builds a backlog; requests equal to the last one are skipped;
- background batches (seed thumbnails, the mixing grid) are keyed, latest wins per key, and
  run in small chunks between editor frames so they never delay what the person is dragging;
- every request carries a stamp (model generation + request number); results from an older
  model or older than the frame already delivered are dropped as stale.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal

from latentstudio.engine.animation_sampler import AnimationFrame
from latentstudio.engine.recipe import EditRecipe
from latentstudio.engine.renderer import Frame, Renderer

BATCH_CHUNK = 4  # thumbnails rendered per chunk before checking for a newer editor frame


@dataclass
class _Batch:
    key: str
    stamp: int
    recipes: list[EditRecipe]
    frames: list[Frame]


class _RenderThread(QThread):
    """Waits for work, renders it, emits results. All state shared with the GUI thread sits
    behind one condition variable; the renderer itself is touched only by this thread."""

    frameDone = Signal(object, int, int)  # Frame, generation, request stamp
    batchDone = Signal(str, object, int, int)  # key, frames, generation, stamp

    def __init__(self) -> None:
        super().__init__()
        self._wake = threading.Condition()
        self._stopping = False
        self._model = None  # (generation, G) waiting to be installed
        self._frame: tuple[int, int, EditRecipe | AnimationFrame] | None = None  # generation, stamp, request
        self._batches: dict[str, _Batch] = {}
        self._generation = 0
        self._renderer: Renderer | None = None

    # -- called from the GUI thread ------------------------------------------------------
    def post_model(self, generation: int, model) -> None:
        with self._wake:
            self._model = (generation, model)
            self._frame = None
            self._batches.clear()
            self._wake.notify()

    def post_frame(self, generation: int, stamp: int, recipe: EditRecipe | AnimationFrame) -> None:
        with self._wake:
            self._frame = (generation, stamp, recipe)
            self._wake.notify()

    def post_batch(self, key: str, stamp: int, recipes: Sequence[EditRecipe]) -> None:
        with self._wake:
            self._batches[key] = _Batch(key, stamp, list(recipes), [])
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()

    # -- the thread ----------------------------------------------------------------------
    def run(self) -> None:  # noqa: D401 - Qt's name
        # Leave one core to the GUI thread: a render using every core starves the event loop.
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
        while True:
            with self._wake:
                while not (self._stopping or self._model or self._frame or self._batches):
                    self._wake.wait()
                if self._stopping:
                    break
                model, self._model = self._model, None
                frame = None
                if model is None:
                    frame, self._frame = self._frame, None
                batch = None if (model or frame) else next(iter(self._batches.values()))
            if model is not None:
                self._generation, G = model
                self._renderer = None if G is None else Renderer(G)
            elif frame is not None:
                self._render_frame(*frame)
            elif batch is not None:
                self._render_chunk(batch)
        self._renderer = None

    def _render_frame(self, generation: int, stamp: int, recipe: EditRecipe | AnimationFrame) -> None:
        if self._renderer is None or generation != self._generation:
            return
        started = time.perf_counter()

        def send_preview(preview: Frame) -> None:
            with self._wake:
                superseded = self._frame is not None or self._model is not None
            if not superseded:  # a newer request is waiting: its frame matters, not this preview
                self.frameDone.emit(preview, generation, stamp)

        if isinstance(recipe, AnimationFrame):  # a timeline frame: the same renderer and caches as an edit
            result = recipe.render(self._renderer)
        else:
            result = self._renderer.render(recipe, on_preview=send_preview)
        result.timings["wall_ms"] = 1e3 * (time.perf_counter() - started)
        self.frameDone.emit(result, generation, stamp)

    def _render_chunk(self, batch: _Batch) -> None:
        generation = self._generation
        if self._renderer is not None:
            start = len(batch.frames)
            batch.frames.extend(self._renderer.render_many(batch.recipes[start : start + BATCH_CHUNK]))
        with self._wake:
            superseded = self._batches.get(batch.key) is not batch
            finished = self._renderer is None or len(batch.frames) >= len(batch.recipes)
            if finished and not superseded:
                del self._batches[batch.key]
        if finished and not superseded and self._renderer is not None:
            self.batchDone.emit(batch.key, batch.frames, generation, batch.stamp)


class RenderController(QObject):
    """GUI-side handle of the render thread: stamps requests, drops stale results.

    ``frameReady(frame)`` delivers editor frames in order (intermediate frames of a drag are
    shown, so the image follows the slider), preceded by a low-resolution ``frame.preview``
    when the renderer makes one; ``batchReady(key, frames)`` delivers finished
    background batches; ``busyChanged(bool)`` says whether an editor frame is outstanding.
    """

    frameReady = Signal(object)
    batchReady = Signal(str, object)
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread = _RenderThread()
        self._thread.frameDone.connect(self._on_frame)
        self._thread.batchDone.connect(self._on_batch)
        self._generation = 0
        self._stamp = 0  # last editor-frame request
        self._shown_stamp = 0  # last editor frame delivered
        self._batch_counter = 0
        self._last_recipe: EditRecipe | None = None
        self._batch_stamps: dict[str, int] = {}
        self._has_model = False
        self._thread.start()
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)  # never leave the thread running at exit

    @property
    def busy(self) -> bool:
        return self._shown_stamp < self._stamp

    def set_model(self, model) -> None:
        """Hand a new generator (or ``None``) to the thread; results of the old one are dropped."""
        self._generation += 1
        self._last_recipe = None
        self._has_model = model is not None
        self._shown_stamp = self._stamp
        self._thread.post_model(self._generation, model)
        self.busyChanged.emit(False)

    def request(self, recipe: EditRecipe | AnimationFrame) -> None:
        """Render ``recipe`` for the editor (replacing any request not yet started); an
        :class:`AnimationFrame` shows a frame of the Timeline (its ``frame.frame_index`` set)."""
        if not self._has_model or recipe == self._last_recipe:
            return
        self._last_recipe = recipe
        self._stamp += 1
        self._thread.post_frame(self._generation, self._stamp, recipe)
        self.busyChanged.emit(True)

    def request_batch(self, key: str, recipes: Sequence[EditRecipe]) -> None:
        """Render ``recipes`` in the background; ``batchReady(key, frames)`` when all are done."""
        if not self._has_model:
            return
        self._batch_counter += 1
        self._batch_stamps[key] = self._batch_counter
        self._thread.post_batch(key, self._batch_counter, recipes)

    def shutdown(self) -> None:
        """Stop the thread (waits for the frame in progress to finish)."""
        if self._thread.isRunning():
            self._thread.stop()
            self._thread.wait()

    def _on_frame(self, frame: Frame, generation: int, stamp: int) -> None:
        if generation != self._generation or stamp <= self._shown_stamp:
            return  # stale: an older model, or older than what is already shown
        if frame.preview:
            if stamp == self._stamp:  # only a preview of the newest request is worth showing
                self.frameReady.emit(frame)
            return
        self._shown_stamp = stamp
        self.frameReady.emit(frame)
        if not self.busy:
            self.busyChanged.emit(False)

    def _on_batch(self, key: str, frames: list[Frame], generation: int, stamp: int) -> None:
        if generation == self._generation and self._batch_stamps.get(key) == stamp:
            self.batchReady.emit(key, frames)
