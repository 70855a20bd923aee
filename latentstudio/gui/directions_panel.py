"""Directions panel: compute, browse, apply, tag-and-fit, import and export directions.

- Compute PCA or SeFa directions in a superqt worker with a progress bar and Cancel; the
  engine's ``progress`` / ``should_stop`` callbacks are bridged to Qt (a queued signal, a
  thread-safe flag), so the GUI thread never waits on torch.
- The chosen set's directions are listed with their share of W variance, also drawn as a
  pyqtgraph bar chart; double-click (or "Add edit") puts a direction in the recipe.
- Every edit of the recipe is a row: enable, strength in sigma, layer range, remove.
- Tag the current seed positive / negative and fit a supervised (InterFaceGAN) direction.
All recipe changes go through ``document.set_recipe`` (undoable); slider drags merge.
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QObject, QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledRangeSlider
from superqt.utils import create_worker

from latentstudio.engine.directions import (
    Cancelled,
    DirectionSet,
    DirectionSetError,
    DirectionSetWarning,
    direction_set_from_vectors,
    display_name,
    pca_directions,
    sefa_directions,
    supervised_direction,
)
from latentstudio.engine.recipe import DirectionEdit, EditRecipe, map_seed
from latentstudio.gui.document import EditorDocument
from latentstudio.gui.widgets import on_right_click

STRENGTH_RANGE = 5.0  # sigma
FIT_SAMPLES = 5000  # sampled W to calibrate a fitted direction's sigma
METHODS = {"PCA (GANSpace)": "pca", "SeFa (closed form)": "sefa"}


class _ProgressBridge(QObject):
    """Carries ``progress(done, total)`` from a worker thread to the GUI thread (queued)."""

    progress = Signal(int, int)


def compute_directions(G, method: str, num: int, samples: int, layers: tuple[int, int], progress, should_stop) -> DirectionSet:
    """The worker's job: PCA or SeFa with the panel's settings."""
    if method == "pca":
        return pca_directions(G, num=num, samples=samples, layer_range=layers, progress=progress, should_stop=should_stop)
    return sefa_directions(G, num=num, layers=layers, samples=min(samples, 20_000), progress=progress, should_stop=should_stop)


def fit_tagged(G, latents: np.ndarray, labels: np.ndarray, method: str, name: str, progress, should_stop) -> DirectionSet:
    """The worker's job: a supervised direction from tagged latents, with its sigma calibrated."""
    vector, stats = supervised_direction(latents, labels, method=method)
    return direction_set_from_vectors(G, vector[None], [name], method, samples=FIT_SAMPLES, progress=progress,
                                      should_stop=should_stop, stats={**stats, "labelled": int(len(labels))})


class _EditRow(QWidget):
    """One direction edit of the recipe: enable, strength (sigma), layer range, remove."""

    def __init__(self, label: str, num_ws: int):
        super().__init__()
        self.enabled = QCheckBox(label)
        self.enabled.setToolTip("Apply this edit")
        self.remove = QToolButton()
        self.remove.setText("✕")
        self.remove.setToolTip("Remove this edit")
        self.strength = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(-STRENGTH_RANGE, STRENGTH_RANGE)
        self.strength.setDecimals(2)
        self.strength.setSingleStep(0.05)
        self.strength.setValue(0.0)
        self.strength.setToolTip("Strength in standard deviations of W along the direction")
        self.layers = QLabeledRangeSlider(Qt.Orientation.Horizontal)
        self.layers.setRange(0, max(num_ws - 1, 0))
        self.layers.setToolTip("ws layers the edit applies to (inclusive)")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.enabled, 1)
        top.addWidget(self.remove)
        form = QFormLayout()
        form.setContentsMargins(18, 0, 0, 0)
        form.addRow("σ", self.strength)
        form.addRow("layers", self.layers)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 6)
        layout.addLayout(top)
        layout.addLayout(form)


class DirectionsPanel(QWidget):
    """Find directions for the document's model and apply them as recipe edits."""

    computed = Signal(object)  # a DirectionSet was added (computed or fitted)
    animateDirection = Signal(object)  # a DirectionEdit to sweep on the Timeline (right-click a strength slider)
    failed = Signal(str)  # a computation failed or was cancelled (message)

    def __init__(self, document: EditorDocument, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.positives: dict[int, np.ndarray] = {}
        self.negatives: dict[int, np.ndarray] = {}
        self.rows: list[_EditRow] = []
        self._row_keys: list[tuple[str, tuple[float, ...]]] = []
        self._worker = None
        self._stop = threading.Event()
        self._bridge = _ProgressBridge(self)
        self._bridge.progress.connect(self._on_progress)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self._build_compute())
        layout.addWidget(self._build_browser(), 1)
        layout.addWidget(self._build_edits(), 1)
        layout.addWidget(self._build_tagging())
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        document.modelChanged.connect(self._on_model)
        document.directionsChanged.connect(self._refresh_sets)
        document.recipeChanged.connect(self._show_recipe)
        self._on_model(document.model)
        self._refresh_sets()
        self._show_recipe(document.recipe)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.cancel)  # the window waits for the thread pool on quit

    # -- building ------------------------------------------------------------------------
    def _build_compute(self) -> QGroupBox:
        box = QGroupBox("Compute")
        self.method = QComboBox()
        self.method.addItems(list(METHODS))
        self.count = QSpinBox()
        self.count.setRange(1, 512)
        self.count.setValue(20)
        self.samples = QSpinBox()
        self.samples.setRange(1000, 1_000_000)
        self.samples.setSingleStep(10_000)
        self.samples.setValue(100_000)
        self.samples.setToolTip("Sampled W: PCA fits on them; SeFa uses them only for slider units")
        self.compute_layers = QLabeledRangeSlider(Qt.Orientation.Horizontal)
        self.compute_layers.setToolTip("PCA: default layer range of the edits. SeFa: the layers factorised (and edited)")
        self.compute_button = QPushButton("Compute")
        self.compute_button.clicked.connect(self.compute)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        form = QFormLayout(box)
        form.addRow("Method", self.method)
        numbers = QHBoxLayout()
        numbers.addWidget(self.count)
        numbers.addWidget(QLabel("samples"))
        numbers.addWidget(self.samples, 1)
        form.addRow("Count", numbers)
        form.addRow("Layers", self.compute_layers)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        form.addRow(buttons)
        return box

    def _build_browser(self) -> QGroupBox:
        box = QGroupBox("Directions")
        self.set_choice = QComboBox()
        self.set_choice.currentIndexChanged.connect(self._show_set)
        import_button = QPushButton("Import…")
        import_button.clicked.connect(self._choose_import)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._choose_export)
        row = QHBoxLayout()
        row.addWidget(self.set_choice, 1)
        row.addWidget(import_button)
        row.addWidget(self.export_button)
        self.chart = pg.PlotWidget()
        self.chart.setBackground(None)
        self.chart.setMinimumHeight(110)
        self.chart.setMouseEnabled(x=False, y=False)
        self.chart.hideButtons()
        self.chart.setLabel("left", "% of W var.")
        self.chart.setLabel("bottom", "direction")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=(59, 117, 175))
        self.chart.addItem(self.bars)
        self.direction_list = QListWidget()
        self.direction_list.itemActivated.connect(lambda _item: self.add_selected())
        self.direction_list.setToolTip("Double-click a direction to add it to the image")
        self.add_button = QPushButton("Add edit")
        self.add_button.clicked.connect(self.add_selected)
        layout = QVBoxLayout(box)
        layout.addLayout(row)
        layout.addWidget(self.chart)
        layout.addWidget(self.direction_list, 1)
        layout.addWidget(self.add_button)
        return box

    def _build_edits(self) -> QGroupBox:
        box = QGroupBox("Edits on this image")
        self._rows_host = QWidget()
        self._rows_layout = QVBoxLayout(self._rows_host)
        self._rows_layout.setContentsMargins(0, 0, 0, 0)
        self._rows_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self._rows_host)
        layout = QVBoxLayout(box)
        layout.addWidget(scroll)
        return box

    def _build_tagging(self) -> QGroupBox:
        box = QGroupBox("Supervised direction from tagged seeds")
        self.tag_positive = QPushButton("Tag seed +")
        self.tag_positive.setToolTip("The current seed shows the attribute")
        self.tag_positive.clicked.connect(lambda: self.tag_current(True))
        self.tag_negative = QPushButton("Tag seed −")
        self.tag_negative.setToolTip("The current seed lacks the attribute")
        self.tag_negative.clicked.connect(lambda: self.tag_current(False))
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear_tags)
        self.tag_count = QLabel()
        self.fit_method = QComboBox()
        self.fit_method.addItems(["svm", "logistic"])
        self.fit_name = QLineEdit("attribute")
        self.fit_button = QPushButton("Fit")
        self.fit_button.clicked.connect(self.fit)
        tags = QHBoxLayout()
        for widget in (self.tag_positive, self.tag_negative, clear):
            tags.addWidget(widget)
        tags.addWidget(self.tag_count, 1)
        fitting = QHBoxLayout()
        fitting.addWidget(self.fit_name, 1)
        fitting.addWidget(self.fit_method)
        fitting.addWidget(self.fit_button)
        layout = QVBoxLayout(box)
        layout.addLayout(tags)
        layout.addLayout(fitting)
        self._show_tags()
        return box

    # -- model and sets ------------------------------------------------------------------
    @property
    def num_ws(self) -> int:
        return 0 if self.document.model is None else int(self.document.model.num_ws)

    def _on_model(self, model) -> None:
        self.cancel()
        self.clear_tags()
        last = max(self.num_ws - 1, 0)
        self.compute_layers.setRange(0, last)
        self.compute_layers.setValue((0, last))
        for widget in (self.compute_button, self.tag_positive, self.tag_negative):
            widget.setEnabled(model is not None)
        self.status.setText("" if model is not None else "Open a model to find directions.")

    def _refresh_sets(self) -> None:
        sets = self.document.direction_sets
        with QSignalBlocker(self.set_choice):
            previous = self.set_choice.currentIndex()
            self.set_choice.clear()
            for number, dset in enumerate(sets, start=1):
                self.set_choice.addItem(f"#{number} {dset.method}: {len(dset)} direction{'s' if len(dset) != 1 else ''}")
            self.set_choice.setCurrentIndex(min(max(previous, 0), len(sets) - 1) if sets else -1)
        self._show_set()

    def current_set(self) -> DirectionSet | None:
        index = self.set_choice.currentIndex()
        sets = self.document.direction_sets
        return sets[index] if 0 <= index < len(sets) else None

    def _show_set(self) -> None:
        dset = self.current_set()
        self.direction_list.clear()
        self.export_button.setEnabled(dset is not None)
        self.add_button.setEnabled(dset is not None)
        if dset is None:
            self.bars.setOpts(x=[], height=[])
            return
        shares = dset.explained_variance if dset.explained_variance is not None else np.full(len(dset), np.nan)
        for k, name in enumerate(dset.names):
            first, last = dset.layer_ranges[k]
            share = "" if np.isnan(shares[k]) else f"  {100 * shares[k]:.1f}% of W variance"
            self.direction_list.addItem(f"{display_name(name)}{share}  · layers {first}–{'end' if last == -1 else last}")
        self.direction_list.setCurrentRow(0)
        self.bars.setOpts(x=np.arange(1, len(dset) + 1), height=np.nan_to_num(100 * shares), width=0.7)
        self.chart.getPlotItem().enableAutoRange()

    # -- computing -----------------------------------------------------------------------
    def compute(self) -> None:
        """Start PCA / SeFa in a worker with the form's settings."""
        G = self.document.model
        if G is None:
            return
        first, last = (int(v) for v in self.compute_layers.value())
        layers = (first, -1 if last == self.num_ws - 1 else last)
        method = METHODS[self.method.currentText()]
        self._start(compute_directions, G, method, self.count.value(), self.samples.value(), layers,
                    total=self.samples.value() if method == "pca" else min(self.samples.value(), 20_000),
                    label=f"Computing {method.upper()} directions")

    def fit(self) -> None:
        """Fit a supervised direction on the tagged seeds (needs both kinds of tag)."""
        G = self.document.model
        if G is None:
            return
        if not self.positives or not self.negatives:
            self.status.setText("Tag at least one seed positive and one negative first.")
            return
        latents = np.stack(list(self.positives.values()) + list(self.negatives.values()))
        labels = np.array([1] * len(self.positives) + [0] * len(self.negatives))
        name = self.fit_name.text().strip() or "attribute"
        self._start(fit_tagged, G, latents, labels, self.fit_method.currentText(), name, total=FIT_SAMPLES,
                    label=f"Fitting '{name}'")

    def _start(self, job, *args, total: int, label: str) -> None:
        self.cancel()
        self._stop = threading.Event()
        stop, bridge = self._stop, self._bridge
        worker = create_worker(job, *args, bridge.progress.emit, stop.is_set, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self._on_computed)
        worker.errored.connect(self._on_failed)
        worker.finished.connect(lambda: self._on_finished(worker))
        self._worker = worker
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.compute_button.setEnabled(False)
        self.fit_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"{label}…")
        worker.start()

    @property
    def busy(self) -> bool:
        return self._worker is not None

    @property
    def worker(self):
        """The running computation's superqt worker (``None`` when idle)."""
        return self._worker

    def cancel(self) -> None:
        """Ask a running computation to stop at its next batch."""
        self._stop.set()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _on_computed(self, dset: DirectionSet) -> None:
        if self.document.model is None or dset.fingerprint != self.document.model.info.fingerprint:
            return  # the model changed while computing
        self.document.add_direction_set(dset)
        self.set_choice.setCurrentIndex(len(self.document.direction_sets) - 1)
        self.progress.setValue(self.progress.maximum())
        self.status.setText(f"Added {len(dset)} {dset.method} direction{'s' if len(dset) != 1 else ''}.")
        self.computed.emit(dset)

    def _on_failed(self, error: BaseException) -> None:
        message = "Cancelled." if isinstance(error, Cancelled) else f"Failed: {error}"
        self.progress.setValue(0)
        self.status.setText(message)
        self.failed.emit(message)

    def _on_finished(self, worker) -> None:
        if worker is self._worker:
            self._worker = None
            self.compute_button.setEnabled(self.document.model is not None)
            self.cancel_button.setEnabled(False)
            self._show_tags()

    # -- import / export -----------------------------------------------------------------
    def _choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import directions", "", "Direction sets (*.npz);;All files (*)")
        if path:
            self.import_file(path)

    def _choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export directions", "directions.npz", "Direction sets (*.npz)")
        if path:
            self.export_file(path)

    def import_file(self, path: str | Path) -> bool:
        """Load a set for the current model; refusals and warnings go to the status line."""
        G = self.document.model
        if G is None:
            self.status.setText("Open a model before importing directions.")
            return False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DirectionSetWarning)
            try:
                dset = DirectionSet.load(path, expect_w_dim=G.w_dim, expect_fingerprint=G.info.fingerprint)
            except DirectionSetError as error:
                self.status.setText(f"Not imported: {error}")
                return False
        self.document.add_direction_set(dset)
        self.set_choice.setCurrentIndex(len(self.document.direction_sets) - 1)
        notes = [str(w.message) for w in caught if issubclass(w.category, DirectionSetWarning)]
        self.status.setText(f"Warning: {notes[0]}" if notes else f"Imported {len(dset)} directions from {Path(path).name}.")
        return True

    def export_file(self, path: str | Path) -> Path | None:
        dset = self.current_set()
        if dset is None:
            return None
        written = dset.save(path)
        self.status.setText(f"Exported {len(dset)} directions to {written.name}.")
        return written

    # -- edits ---------------------------------------------------------------------------
    def add_selected(self) -> None:
        """Add the selected direction of the shown set to the recipe at strength 0."""
        dset, row = self.current_set(), self.direction_list.currentRow()
        if dset is None or row < 0:
            return
        edit = dset.edit(row, 0.0)
        recipe = self.document.recipe
        self.document.set_recipe(recipe.replace(edits=recipe.edits + (edit,)), f"Add direction {display_name(edit.direction)}")

    def _replace_edit(self, index: int, text: str, merge_key: str | None = None, **changes) -> None:
        recipe = self.document.recipe
        if index >= len(recipe.edits):
            return
        edits = list(recipe.edits)
        edits[index] = replace(edits[index], **changes)
        self.document.set_recipe(recipe.replace(edits=tuple(edits)), text, merge_key)

    def remove_edit(self, index: int) -> None:
        recipe = self.document.recipe
        edits = recipe.edits[:index] + recipe.edits[index + 1 :]
        self.document.set_recipe(recipe.replace(edits=edits), f"Remove direction {display_name(recipe.edits[index].direction)}")

    def _show_recipe(self, recipe: EditRecipe) -> None:
        keys = [(edit.direction, edit.vector) for edit in recipe.edits]
        if keys != self._row_keys:
            # Keep the rows of the unchanged prefix: building a row costs ~12 ms of GUI time
            # (two labeled sliders), and a per-layer style drag appends one edit at a time.
            kept = next((i for i, (new, old) in enumerate(zip(keys, self._row_keys)) if new != old),
                        min(len(keys), len(self._row_keys)))
            self._rebuild_rows(recipe.edits, kept)
            self._row_keys = keys
        for row, edit in zip(self.rows, recipe.edits):
            last = self.num_ws - 1 if edit.last_layer == -1 else min(edit.last_layer, self.num_ws - 1)
            with QSignalBlocker(row.enabled), QSignalBlocker(row.strength), QSignalBlocker(row.layers):
                row.enabled.setChecked(edit.enabled)
                row.strength.setValue(edit.strength)
                row.layers.setValue((min(edit.first_layer, last), last))

    def _rebuild_rows(self, edits: tuple[DirectionEdit, ...], kept: int) -> None:
        """Replace the rows from ``kept`` on with rows for ``edits[kept:]``."""
        for row in self.rows[kept:]:
            self._rows_layout.removeWidget(row)
            row.hide()  # deleteLater waits for the event loop; a stale row must not show meanwhile
            row.deleteLater()
        del self.rows[kept:]
        for index, edit in enumerate(edits[kept:], start=kept):
            row = _EditRow(display_name(edit.direction), self.num_ws)
            label = display_name(edit.direction)
            row.enabled.toggled.connect(lambda on, i=index, n=label: self._replace_edit(i, f"{'Enable' if on else 'Disable'} {n}", enabled=on))
            row.strength.valueChanged.connect(lambda value, i=index, n=label: self._replace_edit(i, f"Strength {n}", f"direction-strength-{i}", strength=float(value)))
            row.layers.valueChanged.connect(lambda value, i=index, n=label: self._set_layers(i, n, value))
            for signal in (row.strength.sliderReleased, row.strength.editingFinished, row.layers.sliderReleased):
                signal.connect(self.document.end_merge)
            row.remove.clicked.connect(lambda _=False, i=index: self.remove_edit(i))
            on_right_click(row.strength, lambda i=index: [("Animate this direction", lambda: self._animate(i))])
            self._rows_layout.insertWidget(index, row)
            self.rows.append(row)

    def _animate(self, index: int) -> None:
        edits = self.document.recipe.edits
        if index < len(edits):
            self.animateDirection.emit(edits[index])

    def _set_layers(self, index: int, label: str, value) -> None:
        first, last = (int(round(v)) for v in value)
        last = -1 if last >= self.num_ws - 1 else last
        self._replace_edit(index, f"Layers {label}", f"direction-layers-{index}", first_layer=first, last_layer=last)

    # -- tagging -------------------------------------------------------------------------
    def tag_current(self, positive: bool) -> None:
        """Tag the current seed (its untruncated W) as showing / lacking the attribute."""
        G, recipe = self.document.model, self.document.recipe
        if G is None:
            return
        import torch

        with torch.inference_mode():
            w = map_seed(G, recipe.seed, recipe.class_index, G.mapping.w_avg.device)[0, 0].cpu().numpy()
        (self.positives if positive else self.negatives)[recipe.seed] = w
        (self.negatives if positive else self.positives).pop(recipe.seed, None)
        self._show_tags()

    def clear_tags(self) -> None:
        self.positives.clear()
        self.negatives.clear()
        self._show_tags()

    def _show_tags(self) -> None:
        self.tag_count.setText(f"{len(self.positives)} +, {len(self.negatives)} −")
        self.fit_button.setEnabled(bool(self.positives) and bool(self.negatives) and not self.busy)


