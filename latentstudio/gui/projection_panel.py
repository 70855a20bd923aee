"""The Projection tab: a photo in, a latent out, as one undoable edit of the document.

File > Project photo… (or dropping a photo that carries no recipe) opens the photo here. The
crop box starts on the detected face (FFHQ alignment) or the centred square, and can be moved,
scaled (corner handle) and turned (top handle). Start runs :func:`latentstudio.engine.projection.project`
in a ``QThread`` on a private copy of the model, so the editor's render thread keeps serving
the editor; target and reconstruction update side by side with a loss curve, progress and
time left. The result becomes the document's recipe as one step ("Projected portrait.jpg"),
so every slider, direction and mixing control then edits the photo.
"""
from __future__ import annotations

import copy
import threading
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import create_worker

from latentstudio.engine.face_align import Alignment, CropBox, align_portrait, centered_box, extract_crop
from latentstudio.engine.photo import PHOTO_SUFFIXES, PhotoError, read_photo
from latentstudio.engine.projection import DEFAULT_SPACE, DEFAULT_STEPS, SPACES, project
from latentstudio.engine.projection_losses import LOSSES, LossUnavailable, choose_loss
from latentstudio.gui.document import EditorDocument
from latentstudio.gui.image_view import ImageView
from latentstudio.gui.widgets import caption

DISPLAY_SIDE = 1024  # the crop view shows (and previews from) a copy at most this large
REPORT_EVERY = 5  # steps between live updates


def is_photo(path: str) -> bool:
    """A file the editor should project rather than open (PNGs only when they carry no recipe)."""
    return Path(path).suffix.lower() in PHOTO_SUFFIXES


def open_photo(path: str) -> tuple[np.ndarray, Alignment]:
    """Read and align a photo (runs in a worker thread: decoding and detection take time)."""
    photo = read_photo(path)
    return photo, align_portrait(photo, 64)  # the box is what matters; the crop is made per model


class _ProjectionThread(QThread):
    """Runs one projection on a private copy of the model, reporting every few steps."""

    progressed = Signal(object)  # latent_optimization.Progress
    succeeded = Signal(object)  # Projection
    failed = Signal(str)

    def __init__(self, G, model_path: str | None, photo: np.ndarray, box: CropBox, settings: dict):
        super().__init__()
        self.G, self.model_path, self.photo, self.box, self.settings = G, model_path, photo, box, settings
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:  # noqa: D401 - Qt's name
        try:
            G = copy.deepcopy(self.G)  # the render thread keeps using the document's model
            crop = extract_crop(self.photo, self.box, G.img_resolution)
            D = None
            if self.settings["loss"] in ("auto", "discriminator") and "D" in G.info.networks and self.model_path:
                from latentstudio.io import load_networks

                D = load_networks(self.model_path, device=next(G.parameters()).device)["D"]
            result = project(G, crop, space=self.settings["space"], steps=self.settings["steps"], loss=self.settings["loss"],
                             D=D, callback=self.progressed.emit, every=REPORT_EVERY, should_stop=self._stop.is_set)
        except Exception as error:  # noqa: BLE001 - every failure becomes a message
            self.failed.emit(f"{type(error).__name__}: {error}" if not isinstance(error, (LossUnavailable, ValueError)) else str(error))
            return
        self.succeeded.emit(result)


class ProjectionPanel(QWidget):
    """Photo, crop box, settings, Start / Stop and the live run."""

    projected = Signal(object)  # the Projection, after the document took its recipe
    photoOpened = Signal(str)
    runningChanged = Signal(bool)

    def __init__(self, document: EditorDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.photo: np.ndarray | None = None  # full resolution
        self.display: np.ndarray | None = None  # at most DISPLAY_SIDE, what the crop view shows
        self.display_scale = 1.0
        self.photo_path: str | None = None
        self.alignment: Alignment | None = None
        self.result = None
        self.history: list[float] = []
        self.last_error: str | None = None
        self._thread: _ProjectionThread | None = None
        self._loader = None
        self._build()
        self._preview_timer = QTimer(self, singleShot=True, interval=120)
        self._preview_timer.timeout.connect(self._update_target_preview)
        document.modelChanged.connect(self._on_model)
        self._on_model(document.model)

    # -- layout --------------------------------------------------------------------------
    def _build(self) -> None:
        self.crop_view = pg.GraphicsView(background="#1b1d21")
        self.crop_box_view = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.crop_view.setCentralItem(self.crop_box_view)
        self.photo_item = pg.ImageItem(axisOrder="row-major")
        self.crop_box_view.addItem(self.photo_item)
        self.roi = pg.ROI([0, 0], [100, 100], pen=pg.mkPen("#f0c040", width=2), movable=True, rotatable=True, resizable=False)
        self.roi.addScaleHandle([1, 1], [0.5, 0.5], lockAspect=True)
        self.roi.addScaleHandle([0, 0], [0.5, 0.5], lockAspect=True)
        self.roi.addRotateHandle([0.5, 0], [0.5, 0.5])
        self.roi.setVisible(False)
        self.crop_box_view.addItem(self.roi)
        self.roi.sigRegionChanged.connect(lambda *_: self._preview_timer.start())

        self.crop_label = QLabel("Open a photo: File > Project photo…, or drop one on the window.")
        self.crop_label.setWordWrap(True)
        self.detect_button = QPushButton("Detect face")
        self.detect_button.setToolTip("Put the crop box back on the detected face (FFHQ alignment)")
        self.detect_button.clicked.connect(self.reset_to_detected)
        self.center_button = QPushButton("Centred square")
        self.center_button.clicked.connect(lambda: self.set_box(centered_box(self.photo)) if self.photo is not None else None)
        crop_buttons = QHBoxLayout()
        crop_buttons.addWidget(self.detect_button)
        crop_buttons.addWidget(self.center_button)
        crop_buttons.addStretch(1)
        crop_group = QGroupBox("Photo and crop (drag to move, corner handles scale, top handle turns)")
        crop_layout = QVBoxLayout(crop_group)
        crop_layout.addWidget(self.crop_view, 1)
        crop_layout.addWidget(self.crop_label)
        crop_layout.addLayout(crop_buttons)

        self.target_view = ImageView()
        self.reconstruction_view = ImageView()
        pair = QGridLayout()
        pair.addWidget(caption("Target (aligned crop)"), 0, 0)
        pair.addWidget(caption("Reconstruction"), 0, 1)
        pair.addWidget(self.target_view, 1, 0)
        pair.addWidget(self.reconstruction_view, 1, 1)
        pair.setRowStretch(1, 1)

        self.plot = pg.PlotWidget(background="#1b1d21")
        self.plot.setLogMode(y=True)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setMinimumHeight(150)
        self.curve = self.plot.plot(pen=pg.mkPen("#5fb3f0", width=2))

        self.space = QComboBox()
        self.space.addItems(SPACES)
        self.space.setCurrentText(DEFAULT_SPACE)
        self.space.setToolTip("w: one latent for every layer (most editable); w+: one per layer (closest); "
                              "w-then-w+: w first, then per-layer refinement")
        self.steps = QSpinBox()
        self.steps.setRange(1, 20_000)
        self.steps.setValue(DEFAULT_STEPS)
        self.loss = QComboBox()
        self.loss.addItems(LOSSES)
        self.loss.currentTextChanged.connect(self._explain_loss)
        self.loss_label = QLabel("")
        self.loss_label.setObjectName("caption")
        self.loss_label.setWordWrap(True)
        form = QGridLayout()
        for column, (text, widget) in enumerate((("Latent space", self.space), ("Steps", self.steps), ("Loss", self.loss))):
            form.addWidget(QLabel(text), 0, 2 * column)
            form.addWidget(widget, 0, 2 * column + 1)
        form.addWidget(self.loss_label, 1, 0, 1, 6)

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop now and keep the latent reached so far")
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        run_row = QHBoxLayout()
        run_row.addWidget(self.start_button)
        run_row.addWidget(self.stop_button)
        run_row.addWidget(self.progress, 1)

        settings = QGroupBox("Projection")
        settings_layout = QVBoxLayout(settings)
        settings_layout.addLayout(form)
        settings_layout.addLayout(run_row)
        settings_layout.addWidget(self.status)

        right = QVBoxLayout()
        right.addLayout(pair, 3)
        right.addWidget(self.plot, 2)
        right.addWidget(settings)
        layout = QHBoxLayout(self)
        layout.addWidget(crop_group, 1)
        layout.addLayout(right, 1)
        self._update_buttons()

    # -- photo and crop ------------------------------------------------------------------
    def open_photo(self, path: str) -> None:
        """Read and align ``path`` in a worker; errors become a message, the old photo stays."""
        if self.is_running():
            self.status.setText("A projection is running: stop it before opening another photo.")
            return
        self.crop_label.setText(f"Reading {Path(path).name}…")
        worker = create_worker(open_photo, path, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda result: self._show_photo(path, *result))
        worker.errored.connect(self._on_photo_error)
        self._loader = worker
        worker.finished.connect(lambda: setattr(self, "_loader", None) if self._loader is worker else None)
        worker.start()

    def _on_photo_error(self, error: BaseException) -> None:
        self.last_error = str(error) if isinstance(error, PhotoError) else f"{type(error).__name__}: {error}"
        self.crop_label.setText(f"Cannot open: {self.last_error}")

    def _show_photo(self, path: str, photo: np.ndarray, alignment: Alignment) -> None:
        self.photo, self.photo_path, self.alignment = photo, path, alignment
        self.display_scale = min(1.0, DISPLAY_SIDE / max(photo.shape[:2]))
        if self.display_scale < 1:
            from PIL import Image

            size = (round(photo.shape[1] * self.display_scale), round(photo.shape[0] * self.display_scale))
            self.display = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS))
        else:
            self.display = photo
        self.photo_item.setImage(self.display, autoLevels=False, levels=(0, 255))
        self.crop_box_view.autoRange(padding=0.02)
        self.roi.setVisible(True)
        self.set_box(alignment.box)
        self.crop_label.setText(f"{Path(path).name}: {alignment.message}")
        self.result = None
        self.reconstruction_view.clear()
        self.photoOpened.emit(path)
        self._update_buttons()

    def reset_to_detected(self) -> None:
        if self.alignment is not None:
            self.set_box(self.alignment.box)

    def set_box(self, box: CropBox) -> None:
        """Place the crop handle on ``box`` (full-resolution photo pixels)."""
        shown = box.scaled(self.display_scale)
        corner = shown.corners()[0]
        self.roi.setPos(QPointF(*corner), update=False, finish=False)
        self.roi.setSize([shown.size, shown.size], update=False, finish=False)
        self.roi.setAngle(shown.angle, update=False, finish=False)
        self.roi.stateChanged(finish=True)
        self._update_target_preview()

    def box(self) -> CropBox | None:
        """The crop box as the handle shows it, in full-resolution photo pixels."""
        if self.photo is None:
            return None
        width, height = self.roi.size()
        corners = [self.roi.mapToParent(QPointF(x, y)) for x, y in ((0, 0), (0, height), (width, height), (width, 0))]
        return CropBox.from_corners(*[(p.x(), p.y()) for p in corners]).scaled(1 / self.display_scale)

    def _update_target_preview(self) -> None:
        box = self.box()
        if box is None or self.is_running():
            return
        size = self.document.model.img_resolution if self.document.model is not None else 256
        try:
            self.target_view.set_image(extract_crop(self.display, box.scaled(self.display_scale), size))
        except ValueError as error:
            self.crop_label.setText(str(error))

    # -- running -------------------------------------------------------------------------
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def start(self) -> bool:
        """Start projecting the current crop (False, with a message, when it cannot)."""
        G = self.document.model
        if G is None or self.photo is None or self.is_running():
            self.status.setText("Open a model and a photo first." if not self.is_running() else "Already running.")
            return False
        box = self.box()
        settings = {"space": self.space.currentText(), "steps": self.steps.value(), "loss": self.loss.currentText()}
        try:
            choose_loss(settings["loss"], "D" in G.info.networks, None)
        except LossUnavailable as error:
            self.last_error = str(error)
            self.status.setText(str(error))
            return False
        self.history = []
        self.curve.setData([], [])
        self.progress.setRange(0, settings["steps"])
        self.progress.setValue(0)
        self.status.setText("Starting…")
        self.target_view.set_image(extract_crop(self.display, box.scaled(self.display_scale), G.img_resolution))
        thread = _ProjectionThread(G, self.document.model_path, self.photo, box, settings)
        thread.progressed.connect(self._on_progress)
        thread.succeeded.connect(lambda result, t=thread, g=G: self._on_result(t, g, result))
        thread.failed.connect(self._on_failed)
        thread.finished.connect(self._on_thread_finished)
        self._thread = thread
        thread.start()
        self._update_buttons()
        self.runningChanged.emit(True)
        return True

    def stop(self) -> None:
        """Cancel the run; the latent reached so far still becomes the result."""
        if self._thread is not None:
            self._thread.stop()
            self.status.setText("Stopping…")

    def _on_progress(self, progress) -> None:
        if progress.image is not None:
            self.reconstruction_view.set_image(np.repeat(progress.image, 3, axis=-1) if progress.image.shape[-1] == 1 else progress.image)
        self.history.append((progress.step, progress.values.get("loss", float("nan"))))
        steps, losses = zip(*self.history)
        self.curve.setData(list(steps), list(losses))
        self.progress.setValue(progress.step)
        parts = [f"step {progress.step} / {progress.total}", f"{progress.seconds_left:.0f} s left"]
        if "mse" in progress.values:
            parts.append(f"MSE {progress.values['mse']:.4f}")
        self.status.setText(" · ".join(parts))

    def _on_result(self, thread: _ProjectionThread, G, result) -> None:
        if G is not self.document.model:  # the model changed while this ran: the latent means nothing now
            self.status.setText("The model changed during the projection; result dropped.")
            return
        self.result = result
        shown = result.image if result.image.shape[-1] == 3 else np.repeat(result.image, 3, axis=-1)
        self.reconstruction_view.set_image(shown)
        name = Path(self.photo_path).name if self.photo_path else "photo"
        self.document.set_recipe(result.recipe(), f"Projected {name}")
        stopped = " (stopped early)" if result.reason == "cancelled" else ""
        self.status.setText(f"Done{stopped}: {result.steps} steps in {result.seconds:.1f} s, {result.loss.name} loss · "
                            f"PSNR {result.psnr:.2f} dB · SSIM {result.ssim:.3f}. Every editor control now edits it.")
        self.projected.emit(result)

    def _on_failed(self, message: str) -> None:
        self.last_error = message
        self.status.setText(f"Projection failed: {message}")

    def _on_thread_finished(self) -> None:
        if self._thread is not None:
            self._thread.wait()
            self._thread = None
        self._update_buttons()
        self.runningChanged.emit(False)

    def shutdown(self) -> None:
        """Cancel a running projection and wait for it (window close)."""
        if self._thread is not None:
            self._thread.stop()
            self._thread.wait(30_000)

    # -- model ---------------------------------------------------------------------------
    def _on_model(self, G) -> None:
        if self.is_running():
            self.stop()
        self._explain_loss()
        self._update_target_preview()
        self._update_buttons()

    def _explain_loss(self, *_) -> None:
        G = self.document.model
        if G is None:
            self.loss_label.setText("")
            return
        try:
            choice, _ = choose_loss(self.loss.currentText(), "D" in G.info.networks, None)
            self.loss_label.setText(choice.reason)
        except LossUnavailable as error:
            self.loss_label.setText(f"Not available: {error}")

    def _update_buttons(self) -> None:
        running = self.is_running()
        ready = self.document.model is not None and self.photo is not None
        self.start_button.setEnabled(ready and not running)
        self.stop_button.setEnabled(running)
        for widget in (self.space, self.steps, self.loss, self.detect_button, self.center_button):
            widget.setEnabled(not running)
        self.roi.translatable = not running
