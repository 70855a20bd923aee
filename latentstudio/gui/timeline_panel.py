"""Timeline dock: keyframes with thumbnails, interpolation settings, a scrubber, Play, Export video.

- "Add keyframe" appends the document's current recipe; the strip shows each key's thumbnail
  (rendered in the background by the render thread); drag a key to reorder it; double-click
  one to edit it in the editor ("Update key" writes the edited recipe back).
- Every change is an undoable :class:`TimelineState` pushed on the document's undo stack,
  so Ctrl+Z undoes keyframes and settings like any slider.
- The scrubber and Play send :class:`AnimationFrame` requests to the same render controller
  (latest wins) and renderer as a slider drag, so the main view shows the frame as fast as
  an edit renders. Play paces frames at the animation's fps and, when the model renders
  slower than that, shows every frame as soon as it is ready; the achieved rate is shown.
- Export video... renders in a worker thread with a copy of the model, behind a progress
  dialog that does not block the editor; Cancel leaves no file behind.
"""
from __future__ import annotations

import copy
import threading
import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QSignalBlocker, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressDialog,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import create_worker

from latentstudio.engine.animation import (
    DEFAULT_FRAMES_PER_KEY,
    Animation,
    AnimationError,
    Keyframe,
    check_model,
    direction_sweep,
)
from latentstudio.engine.animation_sampler import AnimationFrame
from latentstudio.engine.directions import Cancelled, display_name
from latentstudio.engine.recipe import DirectionEdit
from latentstudio.engine.renderer import Frame
from latentstudio.gui.document import EditorDocument
from latentstudio.gui.render_worker import RenderController
from latentstudio.gui.seed_browser import to_pixmap
from latentstudio.gui.timeline_state import TimelineState

BATCH_KEY = "timeline-thumbnails"
THUMBNAIL = 64
SWEEP_SIGMA = 3.0  # "Animate this direction": from -3 to +3 standard deviations and back
INTERPOLATION_LABELS = {"cubic": "Cubic (through every key)", "linear": "Linear"}
SPACE_LABELS = {"w": "W (composed styles)", "z": "z, spherical (plain seeds)"}
EASING_LABELS = {"linear": "None", "ease-in-out": "Ease in and out", "ease-in": "Ease in", "ease-out": "Ease out"}
VIDEO_FILTERS = "MP4 video (*.mp4);;Animated GIF (*.gif);;Animated WebP (*.webp);;PNG frames (a folder name) (*)"


def export_job(G, animation: Animation, path: str, scale: int, model_path: str | None, progress, should_stop) -> Path:
    """The worker's job: render the video with a private copy of the model (the render thread
    keeps using the editor's copy meanwhile, and StyleGAN3 transforms are per model)."""
    from latentstudio.engine.renderer import Renderer
    from latentstudio.engine.video_export import export_video

    renderer = Renderer(copy.deepcopy(G), incremental=False)
    return export_video(renderer, animation, path, scale=scale, model_path=model_path, progress=progress, should_stop=should_stop)


class _ProgressBridge(QObject):
    progress = Signal(int, int)


class KeyStrip(QListWidget):
    """The keyframe thumbnails, left to right; dragging one emits ``keyMoved(from, to)``
    and leaves the actual reordering to the document (the strip is rebuilt from it)."""

    keyMoved = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setFlow(QListWidget.Flow.LeftToRight)
        self.setWrapping(False)
        self.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.setGridSize(QSize(THUMBNAIL + 22, THUMBNAIL + 34))
        self.setFixedHeight(THUMBNAIL + 44)
        self.setMovement(QListWidget.Movement.Snap)
        self.setDragDropMode(QListWidget.DragDropMode.InternalMove)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setToolTip("Keyframes. Drag to reorder; double-click to edit a key in the editor.")

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        source = self.currentRow()
        target_item = self.itemAt(event.position().toPoint())
        target = self.row(target_item) if target_item is not None else self.count() - 1
        event.setDropAction(Qt.DropAction.IgnoreAction)
        event.accept()
        if source >= 0 and target != source:
            self.keyMoved.emit(source, target)


class TimelinePanel(QWidget):
    """The Timeline of the document: keys, settings, scrubbing, playback and export.

    ``exported(path)`` / ``exportFailed(message)`` report the end of an export;
    ``message(text)`` carries one-line notices for the status bar.
    """

    exported = Signal(object)
    exportFailed = Signal(str)
    message = Signal(str)

    def __init__(self, document: EditorDocument, controller: RenderController, settings=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.controller = controller
        self.settings = settings
        self._thumbnails: dict = {}  # recipe -> QIcon
        self._requested_thumbnails: tuple = ()
        self._pending: int | None = None  # the frame index requested and not yet shown
        self._playing = False
        self._shown_times: deque[float] = deque(maxlen=24)
        self._last_request = 0.0
        self._export_worker = None
        self._export_stop = threading.Event()
        self.progress_dialog: QProgressDialog | None = None
        self._bridge = _ProgressBridge(self)
        self._bridge.progress.connect(self._on_export_progress)
        self._play_timer = QTimer(self)
        self._play_timer.setSingleShot(True)
        self._play_timer.timeout.connect(self._advance)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(self._build_key_buttons())
        self.strip = KeyStrip()
        self.strip.keyMoved.connect(self.move_key)
        self.strip.currentRowChanged.connect(self._on_key_selected)
        self.strip.itemDoubleClicked.connect(lambda item: self.edit_key(self.strip.row(item)))
        layout.addWidget(self.strip)
        layout.addLayout(self._build_settings())
        layout.addLayout(self._build_transport())

        document.timelineChanged.connect(self._show_timeline)
        document.modelChanged.connect(lambda _model: self._on_model())
        document.recipeChanged.connect(lambda _recipe: self._on_recipe())
        controller.frameReady.connect(self._on_frame)
        controller.batchReady.connect(self._on_thumbnails)
        self._show_timeline(document.timeline)

    # -- building ------------------------------------------------------------------------
    def _build_key_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.add_button = QPushButton("Add keyframe")
        self.add_button.setToolTip("Add the image in the editor as the next keyframe (Ctrl+K)")
        self.add_button.clicked.connect(self.add_keyframe)
        self.update_button = QPushButton("Update key")
        self.update_button.setToolTip("Replace the selected keyframe with the image in the editor")
        self.update_button.clicked.connect(self.update_key)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_key)
        self.frames_spin = QSpinBox()
        self.frames_spin.setRange(1, 10_000)
        self.frames_spin.setValue(DEFAULT_FRAMES_PER_KEY)
        self.frames_spin.setSuffix(" frames")
        self.frames_spin.setToolTip("Frames from the selected key to the next one (to the first when looping)")
        self.frames_spin.valueChanged.connect(self._set_key_frames)
        for widget in (self.add_button, self.update_button, self.remove_button):
            row.addWidget(widget)
        row.addStretch(1)
        row.addWidget(QLabel("To next key"))
        row.addWidget(self.frames_spin)
        return row

    def _build_settings(self) -> QHBoxLayout:
        self.interpolation = QComboBox()
        self.space = QComboBox()
        self.easing = QComboBox()
        for combo, labels, name in ((self.interpolation, INTERPOLATION_LABELS, "interpolation"), (self.space, SPACE_LABELS, "space"),
                                    (self.easing, EASING_LABELS, "easing")):
            for value, label in labels.items():
                combo.addItem(label, value)
            combo.currentIndexChanged.connect(lambda _i, c=combo, n=name: self._set_setting(n, c.currentData()))
        self.loop = QCheckBox("Loop")
        self.loop.setToolTip("Go from the last key back to the first, so the video repeats seamlessly")
        self.loop.toggled.connect(lambda on: self._set_setting("loop", bool(on)))
        self.fps = QDoubleSpinBox()
        self.fps.setRange(1, 120)
        self.fps.setDecimals(0)
        self.fps.setSuffix(" fps")
        self.fps.valueChanged.connect(lambda value: self._set_setting("fps", float(value), merge="timeline-fps"))
        row = QHBoxLayout()
        for label, widget in (("Interpolation", self.interpolation), ("Space", self.space), ("Easing", self.easing), ("Rate", self.fps)):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
            row.addSpacing(8)
        row.addWidget(self.loop)
        row.addStretch(1)
        return row

    def _build_transport(self) -> QHBoxLayout:
        self.play_button = QPushButton("Play")
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play the animation in the editor's view")
        self.play_button.toggled.connect(lambda on: self.play() if on else self.stop())
        self.scrubber = QSlider(Qt.Orientation.Horizontal)
        self.scrubber.setToolTip("Drag to show any frame in the editor's view")
        self.scrubber.valueChanged.connect(self.show_frame)
        self.position = QLabel("")
        self.position.setMinimumWidth(150)
        self.rate = QLabel("")
        self.rate.setObjectName("caption")
        self.rate.setMinimumWidth(90)
        self.export_button = QPushButton("Export video…")
        self.export_button.clicked.connect(lambda: self.export_video())
        row = QHBoxLayout()
        row.addWidget(self.play_button)
        row.addWidget(self.scrubber, 1)
        row.addWidget(self.position)
        row.addWidget(self.rate)
        row.addWidget(self.export_button)
        return row

    # -- the document's timeline -> widgets ----------------------------------------------
    @property
    def timeline(self) -> TimelineState:
        return self.document.timeline

    def animation(self) -> Animation | None:
        return self.timeline.animation()

    def _show_timeline(self, timeline: TimelineState) -> None:
        self.stop()
        selected = self.strip.currentRow()
        with QSignalBlocker(self.strip):
            self.strip.clear()
            times = [0]
            for key in timeline.keyframes:
                times.append(times[-1] + key.frames)
            for index, key in enumerate(timeline.keyframes):
                item = QListWidgetItem(f"{index + 1} · {self._key_label(key)}")
                item.setToolTip(f"Key {index + 1}: frame {times[index]}, {key.frames} frames to the next key")
                item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
                icon = self._thumbnails.get(key.recipe)
                if icon is not None:
                    item.setIcon(icon)
                self.strip.addItem(item)
            if timeline.keyframes:
                self.strip.setCurrentRow(min(max(selected, 0), len(timeline.keyframes) - 1))
        for combo, value in ((self.interpolation, timeline.interpolation), (self.space, timeline.space), (self.easing, timeline.easing)):
            with QSignalBlocker(combo):
                combo.setCurrentIndex(combo.findData(value))
        with QSignalBlocker(self.loop):
            self.loop.setChecked(timeline.loop)
        with QSignalBlocker(self.fps):
            self.fps.setValue(timeline.fps)
        animation = self.animation()
        frames = animation.num_frames if animation is not None else 0
        with QSignalBlocker(self.scrubber):
            self.scrubber.setRange(0, max(frames - 1, 0))
        has_keys = bool(timeline.keyframes)
        for widget in (self.update_button, self.remove_button, self.frames_spin, self.play_button, self.scrubber, self.export_button):
            widget.setEnabled(has_keys)
        self.play_button.setEnabled(frames > 1)
        self._on_key_selected(self.strip.currentRow())
        self._show_position()
        self._request_thumbnails()

    @staticmethod
    def _key_label(key: Keyframe) -> str:
        recipe = key.recipe
        if recipe.latent is not None:
            return "photo" if not recipe.edits else "photo+"
        return f"seed {recipe.seed}" + ("+" if recipe.edits or any(recipe.mix) else "")

    def _show_position(self) -> None:
        animation = self.animation()
        if animation is None:
            self.position.setText("no keyframes")
            return
        frame = self.scrubber.value()
        self.position.setText(f"{frame + 1}/{animation.num_frames} · {frame / animation.fps:.2f}/{animation.duration_s:.1f} s")

    def _on_key_selected(self, row: int) -> None:
        keys = self.timeline.keyframes
        if 0 <= row < len(keys):
            with QSignalBlocker(self.frames_spin):
                self.frames_spin.setValue(keys[row].frames)

    def _on_model(self) -> None:
        self.stop()
        self._thumbnails.clear()
        self._requested_thumbnails = ()
        self.add_button.setEnabled(self.document.model is not None)

    def _on_recipe(self) -> None:
        if self._playing:
            self.stop()  # an edit takes the view back

    # -- widgets -> the document's timeline ----------------------------------------------
    def _push(self, timeline: TimelineState, text: str, merge: str | None = None) -> bool:
        """Make ``timeline`` current (undoable) if it makes a valid animation."""
        try:
            timeline.animation()
        except AnimationError as error:
            self.message.emit(f"Timeline: {error}")
            self._show_timeline(self.timeline)  # put the widgets back
            return False
        self.document.set_timeline(timeline, text, merge)
        return True

    def _set_setting(self, name: str, value, merge: str | None = None) -> None:
        changes = {name: value}
        # z is interpolated spherically between neighbouring keys only: the two choices go together.
        if name == "space" and value == "z":
            changes["interpolation"] = "linear"
        if name == "interpolation" and value == "cubic" and self.timeline.space == "z":
            changes["space"] = "w"
        self._push(self.timeline.replace(**changes), f"Timeline {name}", merge)

    def add_keyframe(self) -> None:
        """The editor's current recipe as the last key."""
        if self.document.model is None:
            return
        keys = self.timeline.keyframes
        frames = keys[-1].frames if keys else DEFAULT_FRAMES_PER_KEY
        if self._push(self.timeline.with_keys(keys + (Keyframe(self.document.recipe, frames),)), f"Add keyframe {len(keys) + 1}"):
            self.strip.setCurrentRow(len(keys))

    def update_key(self) -> None:
        row = self.strip.currentRow()
        keys = list(self.timeline.keyframes)
        if 0 <= row < len(keys):
            keys[row] = Keyframe(self.document.recipe, keys[row].frames)
            self._push(self.timeline.with_keys(keys), f"Update keyframe {row + 1}")

    def remove_key(self, row: int | None = None) -> None:
        row = self.strip.currentRow() if row is None else row
        keys = list(self.timeline.keyframes)
        if 0 <= row < len(keys):
            del keys[row]
            self._push(self.timeline.with_keys(keys), f"Remove keyframe {row + 1}")

    def move_key(self, source: int, target: int) -> None:
        """Move key ``source`` to position ``target`` (what dragging a thumbnail does)."""
        keys = list(self.timeline.keyframes)
        if not (0 <= source < len(keys) and 0 <= target < len(keys)) or source == target:
            return
        keys.insert(target, keys.pop(source))
        if self._push(self.timeline.with_keys(keys), f"Move keyframe {source + 1} to {target + 1}"):
            self.strip.setCurrentRow(target)

    def _set_key_frames(self, frames: int) -> None:
        row = self.strip.currentRow()
        keys = list(self.timeline.keyframes)
        if 0 <= row < len(keys):
            keys[row] = Keyframe(keys[row].recipe, int(frames))
            self._push(self.timeline.with_keys(keys), f"Keyframe {row + 1} duration", f"timeline-frames-{row}")

    def edit_key(self, row: int) -> None:
        """Load key ``row`` into the editor (undoable); "Update key" writes edits back."""
        keys = self.timeline.keyframes
        if 0 <= row < len(keys):
            self.document.set_recipe(keys[row].recipe, f"Edit keyframe {row + 1}")
            self.strip.setCurrentRow(row)

    def animate_direction(self, edit: DirectionEdit) -> None:
        """Replace the timeline with a sweep of the current image along ``edit``'s direction
        (on its layers) from -3 to +3 sigma and back, looping."""
        if self.document.model is None:
            return
        recipe = self.document.recipe
        same = lambda e: (e.direction, e.vector, e.first_layer, e.last_layer) == (edit.direction, edit.vector, edit.first_layer, edit.last_layer)
        base = recipe.replace(edits=tuple(e for e in recipe.edits if not same(e)))
        frames = self.timeline.keyframes[0].frames if self.timeline.keyframes else DEFAULT_FRAMES_PER_KEY
        sweep = direction_sweep(base, edit, -SWEEP_SIGMA, SWEEP_SIGMA, frames, loop=True, easing="ease-in-out", fps=self.timeline.fps)
        self._push(TimelineState.from_animation(sweep), f"Animate {display_name(edit.direction)}")
        self.message.emit(f"Timeline: {display_name(edit.direction)} from -{SWEEP_SIGMA:g} to +{SWEEP_SIGMA:g} σ; press Play")

    def set_animation(self, animation: Animation, text: str = "Open animation") -> bool:
        """Put an animation (opened from a video or file) on the timeline; a grid's first cell."""
        model = self.document.model
        try:
            check_model(animation, None if model is None else model.info.fingerprint)
        except AnimationError as error:
            self.message.emit(str(error))
            return False
        if len(animation.tracks) > 1:
            self.message.emit(f"This is a {animation.columns}x{animation.rows} grid video: the timeline holds its first cell")
        return self._push(TimelineState.from_animation(animation), text)

    # -- thumbnails ----------------------------------------------------------------------
    def _request_thumbnails(self) -> None:
        missing = tuple(dict.fromkeys(key.recipe for key in self.timeline.keyframes if key.recipe not in self._thumbnails))
        if missing and missing != self._requested_thumbnails:
            self._requested_thumbnails = missing
            self.controller.request_batch(BATCH_KEY, list(missing))

    def _on_thumbnails(self, key: str, frames: list[Frame]) -> None:
        if key != BATCH_KEY:
            return
        for frame in frames:
            if frame.ok:
                pixmap = to_pixmap(frame.image).scaled(THUMBNAIL, THUMBNAIL, Qt.AspectRatioMode.KeepAspectRatio,
                                                       Qt.TransformationMode.SmoothTransformation)
                self._thumbnails[frame.recipe] = QIcon(pixmap)
        self._requested_thumbnails = ()
        for row, keyframe in enumerate(self.timeline.keyframes):
            icon = self._thumbnails.get(keyframe.recipe)
            if icon is not None and self.strip.item(row) is not None:
                self.strip.item(row).setIcon(icon)

    def has_thumbnails(self) -> bool:
        return all(key.recipe in self._thumbnails for key in self.timeline.keyframes)

    # -- scrubbing and playback ----------------------------------------------------------
    def show_frame(self, index: int) -> None:
        """Show frame ``index`` in the editor's view (latest wins, like a slider drag)."""
        animation = self.animation()
        if animation is None:
            return
        index = min(max(int(index), 0), animation.num_frames - 1)
        if self.scrubber.value() != index:
            with QSignalBlocker(self.scrubber):
                self.scrubber.setValue(index)
        self._show_position()
        self._pending = index
        self._last_request = time.monotonic()
        self.controller.request(AnimationFrame(animation, index))

    def play(self) -> None:
        """Play from the frame after the scrubber's (the one on screen is already shown)."""
        animation = self.animation()
        if animation is None or animation.num_frames < 2:
            self.stop()
            return
        self._playing = True
        self._shown_times.clear()
        self._show_playing(True)
        self.show_frame((self.scrubber.value() + 1) % animation.num_frames)

    def stop(self) -> None:
        if self._playing:
            self._playing = False
            self._play_timer.stop()
            self._show_playing(False)

    def _show_playing(self, playing: bool) -> None:
        with QSignalBlocker(self.play_button):
            self.play_button.setChecked(playing)
            self.play_button.setText("Stop" if playing else "Play")

    @property
    def playing(self) -> bool:
        return self._playing

    def achieved_fps(self) -> float | None:
        """Frames shown per second over the last frames of playback."""
        if len(self._shown_times) < 2:
            return None
        span = self._shown_times[-1] - self._shown_times[0]
        return (len(self._shown_times) - 1) / span if span > 0 else None

    def _on_frame(self, frame: Frame) -> None:
        if frame.frame_index is None or frame.preview or frame.frame_index != self._pending:
            return
        self._pending = None
        if not frame.ok:
            self.stop()
            self.message.emit(f"Timeline: {frame.error}")
            return
        if not self._playing:
            return
        self._shown_times.append(time.monotonic())
        rate = self.achieved_fps()
        if rate is not None:
            self.rate.setText(f"{rate:.1f} fps")
        animation = self.animation()
        if animation is None:
            self.stop()
            return
        if frame.frame_index + 1 >= animation.num_frames and not animation.loop:
            self.stop()
            return
        # Real time when rendering keeps up; otherwise the next frame as soon as this one is shown.
        delay = self._last_request + 1.0 / animation.fps - time.monotonic()
        self._play_timer.start(max(0, int(1000 * delay)))

    def _advance(self) -> None:
        animation = self.animation()
        if not self._playing or animation is None:
            return
        self.show_frame((self.scrubber.value() + 1) % animation.num_frames)

    # -- export --------------------------------------------------------------------------
    @property
    def exporting(self) -> bool:
        return self._export_worker is not None

    def export_video(self, path: str | None = None) -> bool:
        """Choose a file (unless ``path`` is given) and export in the background."""
        animation, G = self.animation(), self.document.model
        if animation is None or G is None:
            self.message.emit("Add keyframes first: the timeline is empty.")
            return False
        if self.exporting:
            self.message.emit("A video is already being exported.")
            return False
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export video", "animation.mp4", VIDEO_FILTERS)
            if not path:
                return False
        scale = int(self.settings.value("export/scale", 1)) if self.settings is not None else 1
        model_path = str(Path(self.document.model_path).resolve()) if self.document.model_path else None
        self._export_stop = threading.Event()
        stop = self._export_stop
        worker = create_worker(export_job, G, animation, str(path), scale, model_path, self._bridge.progress.emit, stop.is_set,
                               _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._on_exported)
        worker.errored.connect(self._on_export_failed)
        worker.finished.connect(lambda: self._on_export_finished(worker))
        self._export_worker = worker
        dialog = QProgressDialog(f"Exporting {Path(path).name}…", "Cancel", 0, animation.num_frames, self)
        dialog.setWindowTitle("Export video")
        dialog.setWindowModality(Qt.WindowModality.NonModal)  # the editor keeps working
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(stop.set)
        dialog.show()
        self.progress_dialog = dialog
        self.export_button.setEnabled(False)
        worker.start()
        return True

    def cancel_export(self) -> None:
        self._export_stop.set()

    def _on_export_progress(self, done: int, total: int) -> None:
        if self.progress_dialog is not None:
            self.progress_dialog.setMaximum(total)
            self.progress_dialog.setValue(done)

    def _on_exported(self, path: Path) -> None:
        self.message.emit(f"Saved {path}")
        self.exported.emit(path)

    def _on_export_failed(self, error: BaseException) -> None:
        text = "Export cancelled: no file was written." if isinstance(error, Cancelled) else f"Export failed: {error}"
        self.message.emit(text)
        self.exportFailed.emit(text)

    def _on_export_finished(self, worker) -> None:
        if worker is self._export_worker:
            self._export_worker = None
            self.export_button.setEnabled(bool(self.timeline.keyframes))
            if self.progress_dialog is not None:
                self.progress_dialog.close()
                self.progress_dialog.deleteLater()
                self.progress_dialog = None

    def shutdown(self) -> None:
        """Stop playback and ask a running export to stop (the window waits for the pool)."""
        self.stop()
        self.cancel_export()
