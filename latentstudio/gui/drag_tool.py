"""The Drag tool: place handle / target points (and optionally paint a mask), then drag.

The tool takes the image view's left mouse button while active (toolbar button or D):
a click places a handle (red), the next click its target (blue), and so on for several
pairs; pressing on a point and dragging moves it. With *Mask brush* on, dragging paints the
region that may change (Shift erases); the rest of the image is held by DragGAN's mask term
and shown dimmed.

*Start* runs :func:`latentstudio.engine.drag.drag` in a superqt worker on a private copy of
the model (the render thread keeps serving with the original): every step sends its image
and tracked points to the GUI thread through a queued signal, so the image and the red
dots move live while the window stays responsive. *Stop* ends the drag after the current
step and keeps what it reached. A finished drag is one undo step ("Drag, 2 points, 40
steps") and leaves the handles where they were tracked to, so *Start* again continues.
If the recipe or model changes while a drag runs, the drag stops and is discarded.
"""
from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QMouseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import create_worker

from latentstudio.engine.drag import DragResult, DragSettings, drag
from latentstudio.engine.latent_optimization import Progress
from latentstudio.engine.recipe import EditRecipe
from latentstudio.engine.renderer import as_rgb
from latentstudio.gui.document import EditorDocument
from latentstudio.gui.drag_overlay import DragOverlay
from latentstudio.gui.image_view import ImageView
from latentstudio.gui.widgets import caption

GRAB_RADIUS_PX = 9  # screen pixels within which a press picks up an existing point
DEFAULT_STEPS = 200
DEFAULT_BRUSH = 6  # image pixels


def run_drag(G, recipe: EditRecipe, handles, targets, mask, settings: DragSettings,
             on_step: Callable[[Progress], None], should_stop: Callable[[], bool]) -> DragResult:
    """The worker's job: the drag on a private copy of ``G`` (so nothing it sets, e.g. a
    StyleGAN3 input transform, reaches the render thread's model), reporting every step."""
    return drag(copy.deepcopy(G), recipe, handles, targets, mask=mask, settings=settings,
                callback=on_step, every=1, should_stop=should_stop)


def undo_text(pairs: int, steps: int) -> str:
    """``"Drag, 2 points, 40 steps"``: the History entry of a finished drag."""
    return f"Drag, {pairs} point{'s' if pairs != 1 else ''}, {steps} step{'s' if steps != 1 else ''}"


class _StepBridge(QObject):
    """Carries each step's :class:`Progress` from the worker thread to the GUI thread (queued)."""

    step = Signal(object)


class DragTool(QWidget):
    """The Drag panel and the image-view tool it drives (see the module docstring).

    ``action`` is the checkable toolbar action (shortcut D). ``finished(result)`` fires
    after a drag is committed to the document, ``failed(message)`` when one fails or is
    discarded.
    """

    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, document: EditorDocument, image_view: ImageView, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.image_view = image_view
        self.handles: list[list[float]] = []  # one more than targets while a target is awaited
        self.targets: list[list[float]] = []
        self.mask: np.ndarray | None = None  # True where the image may change
        self.overlay = DragOverlay(image_view.view_box)
        self.overlay.set_visible(False)
        self._grabbed: tuple[str, int] | None = None  # ("handle" | "target" | "paint" | "erase", index)
        self._worker = None
        self._stop = threading.Event()
        self._base: EditRecipe | None = None  # the recipe the running drag started from
        self._discard = False
        self._bridge = _StepBridge(self)
        self._bridge.step.connect(self._on_step)

        self.action = QAction("Drag", self)
        self.action.setCheckable(True)
        self.action.setShortcut(QKeySequence("D"))
        self.action.setToolTip("Drag tool (D): click a handle, then its target; drag the image there")
        self.action.toggled.connect(self._set_active)
        self._build()
        document.modelChanged.connect(self._on_model)
        document.recipeChanged.connect(self._on_recipe)
        self._refresh()

    # -- building ------------------------------------------------------------------------
    def _build(self) -> None:
        self.instructions = QLabel("Click a point to move (red), then where it should go (blue); add more pairs the "
                                   "same way. Press on a point and drag to adjust it. Middle-drag pans.")
        self.instructions.setWordWrap(True)
        self.pair_label = QLabel()
        self.reset_button = QPushButton("Reset points")
        self.reset_button.clicked.connect(self.reset_points)
        points_row = QHBoxLayout()
        points_row.addWidget(self.pair_label, 1)
        points_row.addWidget(self.reset_button)

        self.brush = QCheckBox("Mask brush")
        self.brush.setToolTip("Paint the region that may change (Shift: erase); the rest is kept")
        self.brush_size = QSpinBox()
        self.brush_size.setRange(1, 256)
        self.brush_size.setValue(DEFAULT_BRUSH)
        self.brush_size.setSuffix(" px")
        self.brush_size.setToolTip("Brush radius in image pixels")
        self.clear_mask_button = QPushButton("Clear mask")
        self.clear_mask_button.clicked.connect(self.clear_mask)
        mask_row = QHBoxLayout()
        mask_row.addWidget(self.brush)
        mask_row.addWidget(self.brush_size)
        mask_row.addStretch(1)
        mask_row.addWidget(self.clear_mask_button)

        self.steps = QSpinBox()
        self.steps.setRange(1, 10_000)
        self.steps.setValue(DEFAULT_STEPS)
        self.steps.setToolTip("At most this many optimisation steps; a drag stops earlier when every point arrives")
        form = QFormLayout()
        form.addRow("Max steps", self.steps)

        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Drag every handle to its target")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after this step and keep the result")
        self.stop_button.clicked.connect(self.stop)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, DEFAULT_STEPS)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(caption("Points"))
        layout.addWidget(self.instructions)
        layout.addLayout(points_row)
        layout.addWidget(caption("Mask (optional)"))
        layout.addLayout(mask_row)
        layout.addWidget(caption("Run"))
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # -- state ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def worker(self):
        """The running drag's superqt worker (``None`` when idle)."""
        return self._worker

    @property
    def pairs(self) -> int:
        return len(self.targets)

    def _refresh(self) -> None:
        has_model = self.document.model is not None
        pending = len(self.handles) > len(self.targets)
        text = f"{self.pairs} pair{'s' if self.pairs != 1 else ''}"
        self.pair_label.setText(text + (" · now click the target" if pending else ""))
        self.start_button.setEnabled(has_model and self.pairs > 0 and not self.running)
        self.stop_button.setEnabled(self.running)
        for widget in (self.reset_button, self.clear_mask_button, self.brush, self.brush_size, self.steps):
            widget.setEnabled(has_model and not self.running)
        self.overlay.set_points(self.handles, self.targets)
        self.overlay.set_mask(self.mask)

    def _set_active(self, active: bool) -> None:
        self.image_view.set_tool(self if active else None)
        self.overlay.set_visible(active)

    def reset_points(self) -> None:
        """Forget every handle and target."""
        self.handles, self.targets = [], []
        self._refresh()

    def clear_mask(self) -> None:
        self.mask = None
        self._refresh()

    def add_pair(self, handle: tuple[float, float], target: tuple[float, float]) -> None:
        """Add a handle and its target (image pixel indices), as two clicks would."""
        if len(self.handles) > len(self.targets):
            self.handles.pop()  # a handle still waiting for its target is replaced
        self.handles.append(list(self._pixel(*handle)))
        self.targets.append(list(self._pixel(*target)))
        self._refresh()

    # -- the image-view tool -------------------------------------------------------------
    def _resolution(self) -> int:
        return self.document.model.img_resolution

    def _pixel(self, x: float, y: float) -> tuple[int, int]:
        """Image coordinates -> the index of the pixel under them, inside the image."""
        last = self._resolution() - 1
        return min(max(int(math.floor(x)), 0), last), min(max(int(math.floor(y)), 0), last)

    def press(self, x: float, y: float, event: QMouseEvent) -> bool:
        if self.document.model is None or self.running:
            return False
        if self.brush.isChecked():
            self._grabbed = ("erase" if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else "paint", 0)
            self._paint(x, y)
            return True
        self._grabbed = self._point_near(x, y)
        if self._grabbed is None:
            pixel = list(self._pixel(x, y))
            if len(self.handles) > len(self.targets):
                self.targets.append(pixel)
                self._grabbed = ("target", len(self.targets) - 1)
            else:
                self.handles.append(pixel)
                self._grabbed = ("handle", len(self.handles) - 1)
        self._refresh()
        return True

    def move(self, x: float, y: float, event: QMouseEvent) -> None:
        if self._grabbed is None:
            return
        kind, index = self._grabbed
        if kind in ("paint", "erase"):
            self._paint(x, y)
            return
        points = self.handles if kind == "handle" else self.targets
        points[index] = list(self._pixel(x, y))
        self._refresh()

    def release(self, x: float, y: float, event: QMouseEvent) -> None:
        self._grabbed = None

    def _point_near(self, x: float, y: float) -> tuple[str, int] | None:
        """The point within :data:`GRAB_RADIUS_PX` screen pixels of ``(x, y)``, nearest first."""
        size = self.image_view.view_box.viewPixelSize()[0] or 1.0
        best, best_distance = None, GRAB_RADIUS_PX * size
        for kind, points in (("target", self.targets), ("handle", self.handles)):
            for index, (px, py) in enumerate(points):
                distance = math.hypot(px + 0.5 - x, py + 0.5 - y)
                if distance <= best_distance:
                    best, best_distance = (kind, index), distance
        return best

    def _paint(self, x: float, y: float) -> None:
        resolution = self._resolution()
        if self.mask is None or self.mask.shape != (resolution, resolution):
            self.mask = np.zeros((resolution, resolution), dtype=bool)
        radius = self.brush_size.value()
        yy, xx = np.ogrid[:resolution, :resolution]
        disk = (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= radius**2
        self.mask[disk] = self._grabbed[0] == "paint"
        if not self.mask.any():
            self.mask = None
        self._refresh()

    # -- running -------------------------------------------------------------------------
    def start(self) -> None:
        """Drag every complete pair on the current recipe (in a worker)."""
        G = self.document.model
        if G is None or self.pairs == 0 or self.running:
            if self.pairs == 0:
                self.status.setText("Place a handle and its target first.")
            return
        if len(self.handles) > len(self.targets):
            self.handles.pop()  # a handle without a target takes no part
        self._base = self.document.recipe
        self._discard = False
        self._stop = threading.Event()
        settings = DragSettings(steps=self.steps.value())
        handles = [tuple(p) for p in self.handles]
        targets = [tuple(p) for p in self.targets]
        mask = None if self.mask is None else self.mask.copy()
        worker = create_worker(run_drag, G, self._base, handles, targets, mask, settings, self._bridge.step.emit,
                               self._stop.is_set, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda result: self._on_returned(worker, result))
        worker.errored.connect(lambda error: self._on_errored(worker, error))
        worker.finished.connect(lambda: self._on_worker_finished(worker))
        self._worker = worker
        self.progress.setRange(0, settings.steps)
        self.progress.setValue(0)
        self.status.setText("Dragging…")
        if not self.action.isChecked():
            self.action.setChecked(True)
        self._refresh()
        worker.start()

    def stop(self) -> None:
        """Ask the running drag to stop after its current step (the result is kept)."""
        self._stop.set()

    def cancel(self) -> None:
        """Stop the running drag and throw its result away (model change, shutdown)."""
        self._discard = True
        self._stop.set()

    def _on_step(self, progress: Progress) -> None:
        if not self.running or self._discard:
            return
        if progress.image is not None:
            self.image_view.set_image(as_rgb(progress.image))
        points = progress.state.get("points", [])
        if len(points) == len(self.targets):
            self.handles = [list(p) for p in points]
            self.overlay.set_points(self.handles, self.targets)
        distance = max(progress.state.get("distances", [0.0]))
        rate = progress.step / progress.elapsed_s if progress.elapsed_s > 0 else 0.0
        self.progress.setValue(progress.step)
        self.status.setText(f"Step {progress.step} · farthest point {distance:.1f} px away · {rate:.1f} steps/s")

    def _on_returned(self, worker, result: DragResult) -> None:
        if worker is not self._worker or self._discard:
            return
        self.handles = [list(p) for p in result.points]
        distances = ", ".join(f"{d:.1f}" for d in result.distances)
        ended = {"converged": "Arrived", "done": "Step limit reached", "cancelled": "Stopped"}[result.reason]
        if result.steps == 0:
            self.status.setText(f"Nothing to do: every point is already at its target ({distances} px).")
            return
        self._base = result.recipe  # our own change: not a reason to discard
        self.document.set_recipe(result.recipe, undo_text(len(result.distances), result.steps))
        self.status.setText(f"{ended} after {result.steps} steps ({result.seconds:.1f} s); distance to target: {distances} px.")
        self.finished.emit(result)

    def _on_errored(self, worker, error: BaseException) -> None:
        if worker is not self._worker:
            return
        message = f"Drag failed: {error}"
        self.status.setText(message)
        self.failed.emit(message)

    def _on_worker_finished(self, worker) -> None:
        if worker is not self._worker:
            return
        self._worker = None
        if self._discard:
            message = "Drag discarded: the image changed while it ran."
            self.status.setText(message)
            self.failed.emit(message)
        self.progress.setValue(self.progress.maximum() if not self._discard else 0)
        self._refresh()

    def _on_recipe(self, recipe: EditRecipe) -> None:
        if self.running and recipe != self._base:
            self.cancel()  # the drag started from another recipe: its result no longer applies

    def _on_model(self, G) -> None:
        if self.running:
            self.cancel()
        self.handles, self.targets, self.mask = [], [], None
        self.status.setText("")
        self._refresh()
