"""The Training tab: start, stop and resume a trainer process and watch it live.

The trainer is its own process (``python -m latentstudio.train ... --events``) in its own
session, with its stdout (JSON progress events) and stderr (log) going to ``events.jsonl``
and ``log.txt`` in the run folder. The editor never waits on it, and closing the window can
leave it running (:meth:`TrainingTab.confirm_close`): a ``QProcess`` kills its process when it
is destroyed and a detached one gives no process id with redirected output in PySide6, so it
is started with ``subprocess.Popen``, which does neither. Everything the
tab shows comes from the run folder, read incrementally on a timer: curves from
``stats.jsonl`` (created once, ``setData`` per update), the latest sample grid and checkpoint
from the events. Stop sends SIGTERM: the trainer finishes its step, writes a checkpoint and
exits, and Resume continues from that checkpoint. Run-folder files are read as hostile
(:mod:`latentstudio.untrusted`): regular files only, bounded reads, sample grids through
:func:`~latentstudio.untrusted.read_image`; a damaged ``run.json`` or grid is one line in the
status, never a dead tab.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from latentstudio import bounded_json
from latentstudio.train.checkpoints import latest_network
from latentstudio.train.config import DEFAULT_PRESET, LOSSES, PRESETS
from latentstudio.train.stats import MAX_READ_BYTES, STATS_FILE, read_stats
from latentstudio.untrusted import open_regular_file, prefixed, read_image, read_regular_file

EVENTS_FILE = "events.jsonl"
LOG_FILE = "log.txt"
RESOLUTIONS = (16, 32, 64, 128, 256, 512, 1024)
REFRESH_MS = 1000
CURVE_POINTS = 200  # at least this many stats records over a run, up to one per 0.5 kimg
MAX_RUN_FILE_BYTES = 16 << 20  # run.json: the options and a list of skipped files
MAX_GRID_BYTES = 256 << 20  # a sample grid PNG (8 x 1024 px images: 4096 x 2048, about 20 MB)
MAX_GRID_PIXELS = 1 << 26  # 8192 x 8192
CURVES = (("G_loss", "G loss", "#e8a33c", 0), ("D_loss", "D loss", "#4aa3df", 0),
          ("D_real_acc", "D acc real", "#5cc26b", 1), ("D_fake_acc", "D acc fake", "#d9534f", 1))


class RunFolderError(ValueError):
    """A file of a run folder (``run.json``, a sample grid) cannot be used; the message is one line."""


def run_options(run_file: Path) -> dict:
    """The ``options`` of a ``run.json``, each of the type the form needs; :class:`RunFolderError` otherwise."""
    text = read_regular_file(run_file, MAX_RUN_FILE_BYTES, prefixed(RunFolderError), "run file")
    try:
        data = bounded_json.loads(text, max_chars=MAX_RUN_FILE_BYTES, max_depth=8)
    except bounded_json.JSONError as error:
        raise RunFolderError(f"{run_file}: not a run file ({error})") from None
    options = data.get("options") if isinstance(data, dict) else None
    if not isinstance(options, dict):
        raise RunFolderError(f"{run_file}: not a run file (no 'options' object)")
    for key, kinds in (("data", str), ("cfg", str), ("loss", str), ("resolution", int), ("batch", int), ("kimg", (int, float))):
        value = options.get(key)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise RunFolderError(f"{run_file}: option {key} is {type(value).__name__}, not {getattr(kinds, '__name__', 'a number')}")
    if not 0 <= (options.get("batch") or 0) <= 4096 or not 0 <= (options.get("kimg") or 0) <= 1e6:
        raise RunFolderError(f"{run_file}: batch or kimg out of range (batch 0..4096, kimg up to 1e6)")
    return options


class _Tail:
    """New complete JSON lines of a growing file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[dict]:
        records, self.offset = read_stats(self.path, self.offset)
        return records


class TrainingTab(QWidget):
    """Settings, Start / Stop / Resume, live curves, the latest sample grid and the log."""

    openModelRequested = Signal(str)  # a checkpoint to open in the editor
    runStateChanged = Signal(bool)  # True while a trainer process is running

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self.latest_checkpoint: str | None = None
        self.latest_grid: str | None = None
        self.kimg_total: float | None = None
        self.last_record: dict | None = None
        self.finished_state = ""
        self._series: dict[str, tuple[list[float], list[float]]] = {key: ([], []) for key, *_ in CURVES}
        self._stats = self._events = self._log = None
        self._build()
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self._update_buttons()

    # -- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        self.data_edit = QLineEdit()
        self.data_edit.setPlaceholderText("image folder or zip archive")
        folder_button, zip_button = QPushButton("Folder…"), QPushButton("Zip…")
        folder_button.clicked.connect(self._choose_folder)
        zip_button.clicked.connect(self._choose_zip)
        self.portraits_check = QCheckBox("Portraits")
        self.portraits_check.setToolTip("Procedural portraits, drawn on the fly (no files needed)")
        self.portraits_check.toggled.connect(lambda on: self.data_edit.setEnabled(not on))
        data_row = QHBoxLayout()
        for widget in (folder_button, zip_button, self.portraits_check):
            data_row.addWidget(widget)

        self.res_combo = QComboBox()
        self.res_combo.addItems([str(r) for r in RESOLUTIONS])
        self.res_combo.setCurrentText("64")
        self.cfg_combo = QComboBox()
        self.cfg_combo.addItems(list(PRESETS))
        self.cfg_combo.setCurrentText(DEFAULT_PRESET)
        self.kimg_spin = QDoubleSpinBox(decimals=3, minimum=0.001, maximum=1e6, value=500.0)
        self.batch_spin = QSpinBox(minimum=0, maximum=4096, value=0)
        self.batch_spin.setSpecialValueText("from preset")
        self.loss_combo = QComboBox()
        self.loss_combo.addItems(list(LOSSES))
        self.outdir_edit = QLineEdit(str(Path.cwd() / "runs" / "run"))
        outdir_button = QPushButton("…")
        outdir_button.clicked.connect(self._choose_outdir)
        out_row = QHBoxLayout()
        out_row.addWidget(self.outdir_edit)
        out_row.addWidget(outdir_button)

        form = QFormLayout()
        form.addRow("Data", self.data_edit)
        form.addRow("", data_row)
        form.addRow("Resolution", self.res_combo)
        form.addRow("Preset", self.cfg_combo)
        form.addRow("kimg", self.kimg_spin)
        form.addRow("Batch", self.batch_spin)
        form.addRow("Loss", self.loss_combo)
        form.addRow("Run folder", out_row)

        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.open_button = QPushButton("Open latest snapshot in editor")
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.resume_button.clicked.connect(self.resume)
        self.open_button.clicked.connect(self._open_latest)
        buttons = QGridLayout()
        buttons.addWidget(self.start_button, 0, 0)
        buttons.addWidget(self.stop_button, 0, 1)
        buttons.addWidget(self.resume_button, 0, 2)
        buttons.addWidget(self.open_button, 1, 0, 1, 3)

        self.status_label = QLabel("No run")
        self.status_label.setWordWrap(True)
        self.progress_label = QLabel("")
        self.log_view = QPlainTextEdit(readOnly=True)
        self.log_view.setMaximumBlockCount(500)

        left = QVBoxLayout()
        left.addLayout(form)
        left.addLayout(buttons)
        left.addWidget(self.status_label)
        left.addWidget(self.progress_label)
        left.addWidget(self.log_view, 1)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(360)  # the plots and the grid get the rest

        self.plots = pg.GraphicsLayoutWidget()
        self.loss_plot = self.plots.addPlot(row=0, col=0, title="Loss")
        self.acc_plot = self.plots.addPlot(row=1, col=0, title="D accuracy")
        self.acc_plot.setYRange(0, 1)
        for plot in (self.loss_plot, self.acc_plot):
            plot.addLegend(offset=(-5, 5))  # top right
            plot.setLabel("bottom", "kimg")
            plot.getAxis("bottom").enableAutoSIPrefix(False)
            plot.showGrid(x=True, y=True, alpha=0.2)
        self.curves = {key: (self.loss_plot, self.acc_plot)[row].plot(name=name, pen=pg.mkPen(color, width=2))
                       for key, name, color, row in CURVES}
        self.grid_view = pg.GraphicsLayoutWidget()
        self.grid_box = self.grid_view.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.grid_image = pg.ImageItem(axisOrder="row-major")
        self.grid_box.addItem(self.grid_image)

        right = QSplitter()
        right.setMinimumWidth(320)
        right.setOrientation(pg.QtCore.Qt.Orientation.Vertical)
        right.addWidget(self.plots)
        right.addWidget(self.grid_view)
        splitter = QSplitter()
        splitter.addWidget(left_widget)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Image folder")
        if path:
            self.data_edit.setText(path)
            self.portraits_check.setChecked(False)

    def _choose_zip(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Image archive", filter="Zip archives (*.zip)")
        if path:
            self.data_edit.setText(path)
            self.portraits_check.setChecked(False)

    def _choose_outdir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run folder")
        if path:
            self.outdir_edit.setText(path)

    # -- the process -----------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def training_arguments(self) -> list[str]:
        """``latentstudio.train`` arguments for the current settings."""
        data = "portraits" if self.portraits_check.isChecked() else self.data_edit.text().strip()
        kimg = self.kimg_spin.value()
        args = ["--data", data, "--res", self.res_combo.currentText(), "--cfg", self.cfg_combo.currentText(),
                "--kimg", repr(kimg), "--loss", self.loss_combo.currentText(),
                "--outdir", self.outdir_edit.text().strip(),
                "--tick", repr(min(0.5, kimg / CURVE_POINTS))]  # short runs get enough points to plot
        if self.batch_spin.value():
            args += ["--batch", str(self.batch_spin.value())]
        return args

    def start(self) -> bool:
        """Start a new run with the settings in the form."""
        if not self.portraits_check.isChecked() and not self.data_edit.text().strip():
            self._set_status("Choose a data set (a folder, a zip archive or procedural portraits) first.")
            return False
        run_dir = Path(self.outdir_edit.text().strip())
        if latest_network(run_dir) is not None:
            self._set_status(f"{run_dir} already holds a run: Resume it, or choose another run folder.")
            return False
        self.kimg_total = self.kimg_spin.value()
        return self._launch(run_dir, self.training_arguments())

    def resume(self) -> bool:
        """Continue the run in the run folder from its latest checkpoint."""
        run_dir = Path(self.outdir_edit.text().strip())
        if latest_network(run_dir) is None:
            self._set_status(f"{run_dir} has no checkpoint to resume from.")
            return False
        return self._launch(run_dir, ["--resume", str(run_dir), "--kimg", repr(self.kimg_spin.value())])

    def _launch(self, run_dir: Path, args: list[str]) -> bool:
        if self.is_running():
            self._set_status("A trainer is already running.")
            return False
        run_dir.mkdir(parents=True, exist_ok=True)
        self.watch_run(run_dir)
        command = [sys.executable, "-m", "latentstudio.train", *args, "--events"]
        try:
            with open(run_dir / EVENTS_FILE, "ab") as events, open(run_dir / LOG_FILE, "ab") as log:
                self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=events, stderr=log,
                                                start_new_session=True)  # Ctrl+C in a terminal must not reach it
        except OSError as error:
            self._set_status(f"Could not start {sys.executable}: {error}")
            return False
        self.finished_state = ""
        self._set_status(f"Training in {run_dir} (process {self.process.pid})")
        self._update_buttons()
        self.runStateChanged.emit(True)
        return True

    def stop(self) -> None:
        """Ask the trainer to stop: it writes a checkpoint first (Resume continues from it)."""
        if self.is_running():
            self.process.send_signal(signal.SIGTERM)
            self._set_status("Stopping: the trainer finishes its step and writes a checkpoint…")

    def confirm_close(self) -> bool:
        """Called by the window before it closes: may it close? Asks while a trainer runs
        whether to keep it running in the background (it does not need the window)."""
        if not self.is_running():
            return True
        answer = QMessageBox.question(
            self, "Training is running",
            "A training run is in progress. Keep it running in the background?\n\n"
            "Yes: it goes on; reopen its run folder here to watch it. No: stop it now (a checkpoint "
            "is written, Resume continues from it).",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Yes)
        if answer == QMessageBox.StandardButton.Cancel:
            return False
        if answer == QMessageBox.StandardButton.No:
            self.stop()
        self.timer.stop()
        return True

    # -- watching --------------------------------------------------------------------------
    def watch_run(self, run_dir: str | os.PathLike) -> None:
        """Show the run in ``run_dir`` (running or finished) and follow it from now on."""
        self.run_dir = Path(run_dir)
        self.outdir_edit.setText(str(self.run_dir))
        self._stats, self._events, self._log = (_Tail(self.run_dir / STATS_FILE), _Tail(self.run_dir / EVENTS_FILE),
                                                self.run_dir / LOG_FILE)
        self._log_offset = 0
        for xs, ys in self._series.values():
            xs.clear()
            ys.clear()
        self.latest_checkpoint = str(latest_network(self.run_dir) or "") or None
        if not self.is_running():
            self._set_status(f"Run {self.run_dir.name}")
            self.status_label.setToolTip(str(self.run_dir))
        grids = sorted(self.run_dir.glob("fakes*.png"))
        self.latest_grid = None
        if grids:
            self._show_grid(str(grids[-1]))
        self._show_settings(self.run_dir / "run.json")
        self.refresh()
        self.timer.start()

    def _show_settings(self, run_file: Path) -> None:
        """Fill the form with the settings a run was started with (``run.json``), if known;
        a damaged file is one line in the status and changes nothing."""
        if not os.path.lexists(run_file):
            return
        try:
            options = run_options(run_file)
        except RunFolderError as error:
            self._set_status(str(error))
            return
        portraits = options.get("data") == "portraits"
        self.portraits_check.setChecked(portraits)
        if not portraits:
            self.data_edit.setText(str(options.get("data", "")))
        self.res_combo.setCurrentText(str(options.get("resolution", 64)))
        self.cfg_combo.setCurrentText(str(options.get("cfg", DEFAULT_PRESET)))
        self.loss_combo.setCurrentText(str(options.get("loss", "ns")))
        self.batch_spin.setValue(int(options.get("batch") or 0))
        if self.kimg_total is None and options.get("kimg"):
            self.kimg_total = float(options["kimg"])
            self.kimg_spin.setValue(self.kimg_total)

    def refresh(self) -> None:
        """Read what the trainer wrote since the last call and update curves, grid and labels."""
        if self.run_dir is None:
            return
        records = [numbers for numbers in map(_numbers, self._stats.read()) if "kimg" in numbers]
        for record in records:
            for key, (xs, ys) in self._series.items():
                if record.get(key) is not None:
                    xs.append(record["kimg"])
                    ys.append(record[key])
        if records:
            self.last_record = records[-1]
            for key, curve in self.curves.items():
                curve.setData(*self._series[key])
        for event in self._events.read():
            self._on_event(event)
        self._read_log()
        self._update_progress()
        self._update_buttons()

    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "start":
            self.kimg_total = _numbers(event).get("kimg_total", self.kimg_total)
            if event.get("skipped"):
                self._set_status(f"Training on {event.get('images')} images ({event['skipped']} unreadable files skipped)")
        elif kind == "snapshot":
            if event.get("grid"):
                self._show_grid(event["grid"])
            if isinstance(event.get("checkpoint"), str) and event["checkpoint"]:
                self.latest_checkpoint = event["checkpoint"]
        elif kind in ("done", "stopped"):
            self.finished_state = kind
            kimg = _numbers(event).get("kimg")
            at = f" at {kimg:.3f} kimg" if kimg is not None else ""
            self._set_status(f"Training {'finished' if kind == 'done' else 'stopped'}{at}")
            self.runStateChanged.emit(False)

    def _read_log(self) -> None:
        try:
            with open_regular_file(self._log, prefixed(RunFolderError), "log file") as (stream, _):
                stream.seek(self._log_offset)
                data = stream.read(MAX_READ_BYTES)  # a huge log arrives over several refreshes
        except (RunFolderError, OSError):
            return  # not there yet (or a pipe, a folder: never a hang)
        self._log_offset += len(data)
        if data:
            self.log_view.appendPlainText(data.decode(errors="replace").rstrip("\n"))

    def _show_grid(self, path: str) -> None:
        if not isinstance(path, str) or path == self.latest_grid:
            return
        try:
            with read_image(path, MAX_GRID_BYTES, MAX_GRID_PIXELS, prefixed(RunFolderError), "sample grid", ("PNG",)) as picture:
                image = np.asarray(picture.convert("RGB"))
        except RunFolderError as error:
            self._set_status(str(error))  # or not fully written yet: the next snapshot brings another
            return
        self.latest_grid = path
        self.grid_image.setImage(image, autoLevels=False, levels=(0, 255))
        self.grid_box.autoRange(padding=0.02)

    def _update_progress(self) -> None:
        record = self.last_record
        if record is None:
            self.progress_label.setText("")
            return
        text = f"kimg {record['kimg']:.3f}"
        if self.kimg_total:
            text += f" / {self.kimg_total:g}"
            if record.get("sec_per_kimg") and self.is_running():
                remaining = max(self.kimg_total - record["kimg"], 0.0) * record["sec_per_kimg"]
                text += f"   ETA {_duration(remaining)}"
        if record.get("img_per_s"):
            text += f"   {record['img_per_s']:.1f} img/s"
        self.progress_label.setText(text)

    def _update_buttons(self) -> None:
        running = self.is_running()
        if self.process is not None and not running and not self.finished_state:
            self.finished_state = "exited"
            self._set_status(f"The trainer exited without finishing; see {self._log}")
            self.runStateChanged.emit(False)
        self.start_button.setEnabled(not running)
        self.resume_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.open_button.setEnabled(self.latest_checkpoint is not None)

    def _open_latest(self) -> None:
        if self.latest_checkpoint:
            self.openModelRequested.emit(self.latest_checkpoint)

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def curve_data(self, key: str) -> tuple[list[float], list[float]]:
        """The points of one curve (``G_loss``, ``D_loss``, ``D_real_acc``, ``D_fake_acc``)."""
        return self._series[key]


def _numbers(record: dict) -> dict[str, float]:
    """The finite numeric fields of a stats record or event (anything else a file holds is ignored)."""
    return {key: value for key, value in record.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300}  # not NaN, inf, 10**400


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
