"""The editor window: image view, Latent / Styles / History docks, Mixing tab, menus.

The window wires widgets to one :class:`EditorDocument` and one :class:`RenderController`:
widgets edit the document, the document's ``recipeChanged`` goes to the render thread, frames
come back to the image view. Model loading and PCA run in superqt workers, so the GUI thread
never runs the network.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QToolButton,
    QUndoView,
    QVBoxLayout,
    QHBoxLayout,
    QWidget,
)
from superqt.utils import create_worker

from latentstudio import __version__
from latentstudio.engine.recipe import EditRecipe, RecipeError
from latentstudio.engine.renderer import Frame
from latentstudio.gui import session
from latentstudio.io.errors import MAX_MESSAGE, one_line
from latentstudio.gui.directions_panel import DirectionsPanel
from latentstudio.gui.document import EditorDocument
from latentstudio.gui.drag_tool import DragTool
from latentstudio.gui.image_view import ImageView
from latentstudio.gui.latent_panel import LatentPanel
from latentstudio.gui.mixing_view import MixingView
from latentstudio.gui.projection_panel import ProjectionPanel, is_photo
from latentstudio.gui.render_worker import RenderController
from latentstudio.gui.styles_panel import StylesPanel
from latentstudio.gui.timeline_panel import TimelinePanel
from latentstudio.gui.training_tab import TrainingTab
from latentstudio.io.rosinality_checkpoint import W_AVG_COMPUTED

ORGANIZATION = "latentstudio"
APPLICATION = "latentstudio"
MAX_RECENT = 8
MODEL_SUFFIXES = (".pkl", ".safetensors", ".pt", ".pth")
PCA_COMPONENTS = 10
PCA_SAMPLES = 5000


def app_settings() -> QSettings:
    """The user's settings (window layout, recent files)."""
    return QSettings(ORGANIZATION, APPLICATION)


def load_generator(path: str):
    """Load a model for the editor (runs in a worker thread)."""
    from latentstudio.io import load_model

    return load_model(path)


def quick_directions(G, class_index: int | None):
    """Principal directions of W for the per-layer offset sliders (runs in a worker thread)."""
    from latentstudio.engine.directions import pca_directions

    return pca_directions(G, num=min(PCA_COMPONENTS, G.w_dim), samples=PCA_SAMPLES, seed=0, class_index=class_index)


TOUR = (
    "<h3>Three things to try</h3>"
    "<ol>"
    "<li><b>Browse faces.</b> Click a thumbnail under <i>Nearby seeds</i>, or press Page Up / "
    "Page Down. Lower <i>Truncation ψ</i> towards 0.5 for more typical faces.</li>"
    "<li><b>Drag a style.</b> In <i>Styles</i>, move an <i>Offset (σ)</i> slider: the row's "
    "direction (PC1, PC2, …) changes only that layer. Coarse rows move pose and shape, fine rows "
    "colour and texture. Ctrl+Z undoes a whole drag.</li>"
    "<li><b>Mix two faces.</b> Pick a <i>Seed B</i> and press <i>Coarse from B</i>, <i>Middle "
    "from B</i> or <i>Fine from B</i>, or open the <i>Mixing</i> tab for the whole grid. "
    "File &gt; Export image saves a PNG you can drop back in to keep editing.</li>"
    "</ol>"
)


class MainWindow(QMainWindow):
    """The latentstudio editor.

    ``settings`` defaults to the user's QSettings (tests pass their own); ``notice`` is shown
    above the image (e.g. that a stand-in model is open).
    """

    frameShown = Signal(object)  # the Frame now on screen
    modelLoaded = Signal(object)  # G
    modelFailed = Signal(str)  # the loader's message
    directionsReady = Signal(object)  # the quick PCA DirectionSet

    def __init__(self, settings: QSettings | None = None, notice: str | None = None):
        super().__init__()
        self.settings = settings if settings is not None else app_settings()
        self.document = EditorDocument(self)
        self.controller = RenderController(self)
        self.frame: Frame | None = None
        self.last_error: str | None = None
        self._workers: list = []
        self._loading: str | None = None
        self.setWindowTitle("latentstudio")
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self.setTabPosition(Qt.DockWidgetArea.AllDockWidgetAreas, QTabWidget.TabPosition.North)

        self.document.modelChanged.connect(self.controller.set_model)
        self.document.recipeChanged.connect(self.controller.request)
        self.document.modelChanged.connect(self._on_model)
        self.controller.frameReady.connect(self._on_frame)
        self.controller.busyChanged.connect(self._on_busy)

        self.image_view = ImageView()
        self.notice = QLabel(notice or "")
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.setVisible(bool(notice))
        editor = QWidget()
        editor_layout = QVBoxLayout(editor)
        editor_layout.setContentsMargins(0, 0, 0, 0)
        editor_layout.setSpacing(0)
        editor_layout.addWidget(self.notice)
        editor_layout.addWidget(self.image_view, 1)
        editor_layout.addLayout(self._view_buttons())
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.add_tab("Editor", editor)
        self.mixing_view = MixingView(self.document, self.controller)
        self.mixing_view.export_button.clicked.connect(lambda: self.export_grid())
        self.add_tab("Mixing", self.mixing_view)
        self.training_tab = TrainingTab()
        self.training_tab.openModelRequested.connect(self.open_model)
        self.add_tab("Training", self.training_tab)
        self.projection_panel = ProjectionPanel(self.document)
        self.projection_panel.projected.connect(lambda _: self.tabs.setCurrentIndex(0))
        self.add_tab("Projection", self.projection_panel)

        self.latent_panel = LatentPanel(self.document, self.controller)
        self.styles_panel = StylesPanel(self.document)
        self.history = QUndoView(self.document.undo_stack)
        self.history.setEmptyLabel("Opened")
        self.latent_dock = self.add_dock("Latent", self.latent_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.history_dock = self.add_dock("History", self.history, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.styles_dock = self.add_dock("Styles", self.styles_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.directions_panel = DirectionsPanel(self.document)
        self.directions_dock = self.add_dock("Directions", self.directions_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.timeline_panel = TimelinePanel(self.document, self.controller, self.settings)
        self.timeline_panel.message.connect(lambda text: self.statusBar().showMessage(text, 10_000))
        self.directions_panel.animateDirection.connect(self.timeline_panel.animate_direction)
        self.styles_panel.animateDirection.connect(self.timeline_panel.animate_direction)
        self.timeline_dock = self.add_dock("Timeline", self.timeline_panel, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.drag_tool = DragTool(self.document, self.image_view)
        self.drag_dock = self.add_dock("Drag", self.drag_tool, Qt.DockWidgetArea.RightDockWidgetArea)
        self.drag_tool.action.toggled.connect(lambda active: active and (self.drag_dock.show(), self.drag_dock.raise_()))
        self.tools = self.addToolBar("Tools")
        self.tools.setObjectName("toolbar-tools")
        self.tools.addAction(self.drag_tool.action)

        self._build_status_bar()
        self._build_menus()
        self.resize(1440, 880)
        self._restore_layout()

    # -- plug-in points for other panels -------------------------------------------------
    def add_dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea = Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Add ``widget`` as a dock (tabbed with an existing dock in the same area)."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower().replace(' ', '-')}")
        dock.setWidget(widget)
        others = [d for d in self.findChildren(QDockWidget) if d is not dock and self.dockWidgetArea(d) == area]
        self.addDockWidget(area, dock)
        if others and area == Qt.DockWidgetArea.RightDockWidgetArea:
            self.tabifyDockWidget(others[0], dock)
            others[0].raise_()
        if hasattr(self, "view_menu"):
            self.view_menu.insertAction(self._view_separator, dock.toggleViewAction())
        return dock

    def add_tab(self, title: str, widget: QWidget) -> int:
        """Add a page to the central tabs (the Editor is first)."""
        return self.tabs.addTab(widget, title)

    # -- chrome --------------------------------------------------------------------------
    def _view_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setContentsMargins(8, 4, 8, 4)
        for text, tip, slot in (("Fit", "Fit the image to the view (Ctrl+0)", self.image_view.fit), ("1:1", "One image pixel per screen pixel (Ctrl+1)", self.image_view.actual_size)):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            row.addWidget(button)
        hint = QLabel("Wheel: zoom   Drag: pan")
        hint.setObjectName("caption")
        row.addWidget(hint)
        row.addStretch(1)
        return row

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.model_label = QLabel("No model")
        self.device_label = QLabel("")
        self.time_label = QLabel("")
        self.time_label.setMinimumWidth(110)
        self.time_label.setToolTip("Render time of the frame on screen, and how many synthesis layers it re-ran "
                                   "when an edit reached only the last ones")
        for label in (self.model_label, self.device_label, self.time_label):
            bar.addPermanentWidget(label)

    def _action(self, menu, text: str, slot, shortcut=None, tip: str | None = None) -> QAction:
        action = menu.addAction(text)
        action.triggered.connect(lambda _=False: slot())
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        return action

    def _build_menus(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        self._action(file_menu, "&Open model…", self.choose_model, QKeySequence.StandardKey.Open, "Open a model, recipe (.json) or latentstudio PNG")
        self._action(file_menu, "&Project photo…", self.choose_photo, "Ctrl+P", "Find the latent of a photo, then edit it like any image")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        self._action(file_menu, "&Export image…", self.export_image, "Ctrl+E", "Save the image as PNG with its recipe embedded")
        scale_menu = file_menu.addMenu("Export &scale")
        self._scale_actions = {}
        for factor in (1, 2, 4):
            action = scale_menu.addAction(f"{factor}x" + (" (model resolution)" if factor == 1 else ""))
            action.setStatusTip("Upscaled smoothly (Lanczos), or in pixel blocks when View > Pixel-exact view is on")
            action.setCheckable(True)
            action.setChecked(factor == self.export_scale)
            action.triggered.connect(lambda _=False, f=factor: self._set_export_scale(f))
            self._scale_actions[factor] = action
        self._action(file_menu, "Export &grid…", self.export_grid, "Ctrl+Shift+E", "Save the mixing grid as one PNG")
        self._action(file_menu, "&Save recipe…", self.save_recipe, QKeySequence.StandardKey.Save, "Save the recipe as JSON")
        self._action(file_menu, "Export &video…", self.timeline_panel.export_video, "Ctrl+Alt+E", "Render the timeline to MP4, GIF, WebP or PNG frames")
        file_menu.addSeparator()
        self._action(file_menu, "Open sess&ion…", self.choose_session, tip="Open a session: model, recipe and timeline")
        self._action(file_menu, "Save sessio&n…", self.choose_session_path, tip="Save the model, recipe and timeline")
        self._action(file_menu, "Restore &last session", lambda: self.open_path(str(session.last_session_path(self.settings))),
                     tip="The session this window had when it was last closed")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        edit_menu = menus.addMenu("&Edit")
        undo = self.document.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.StandardKey.Undo)
        redo = self.document.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence.StandardKey.Redo, QKeySequence("Ctrl+Y")])
        edit_menu.addAction(undo)
        edit_menu.addAction(redo)
        edit_menu.addSeparator()
        self._action(edit_menu, "&Copy image", self.copy_image, QKeySequence.StandardKey.Copy)
        self._action(edit_menu, "Add &keyframe", self.timeline_panel.add_keyframe, "Ctrl+K", "Add the image to the timeline")
        edit_menu.addSeparator()
        self._action(edit_menu, "&Previous seed", lambda: self.latent_panel.step_seed(-1), "PgUp")
        self._action(edit_menu, "&Next seed", lambda: self.latent_panel.step_seed(1), "PgDown")
        self._action(edit_menu, "R&andom seed", self.latent_panel.random_seed, "Ctrl+R")

        self.view_menu = menus.addMenu("&View")
        for dock in self.findChildren(QDockWidget):
            self.view_menu.addAction(dock.toggleViewAction())
        self._view_separator = self.view_menu.addSeparator()
        self._action(self.view_menu, "&Fit image", self.image_view.fit, "Ctrl+0")
        self._action(self.view_menu, "&Actual size (1:1)", self.image_view.actual_size, "Ctrl+1")
        self.pixel_exact_action = self.view_menu.addAction("&Pixel-exact view")
        self.pixel_exact_action.setCheckable(True)
        self.pixel_exact_action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self.pixel_exact_action.setStatusTip("Magnify and export-upscale in pixel blocks (nearest neighbour) instead of smoothly")
        self.pixel_exact_action.toggled.connect(self.set_pixel_exact)
        self.pixel_exact_action.setChecked(self.pixel_exact)
        self.set_pixel_exact(self.pixel_exact)

        help_menu = menus.addMenu("&Help")
        self._action(help_menu, "&Quick tour", self.show_tour, "F1")
        self._action(help_menu, "&About latentstudio", self.about)

    # -- settings ------------------------------------------------------------------------
    @property
    def export_scale(self) -> int:
        return int(self.settings.value("export/scale", 1))

    @property
    def pixel_exact(self) -> bool:
        """Nearest-neighbour magnification and export upscaling (the default is smooth)."""
        return str(self.settings.value("view/pixel_exact", "false")).lower() == "true"

    def set_pixel_exact(self, exact: bool) -> None:
        """Switch every image view (editor, mixing grid, projection) and export upscaling."""
        self.settings.setValue("view/pixel_exact", "true" if exact else "false")
        for view in self.findChildren(ImageView):
            view.set_smooth(not exact)
        if self.pixel_exact_action.isChecked() != bool(exact):
            self.pixel_exact_action.setChecked(bool(exact))

    def _set_export_scale(self, factor: int) -> None:
        self.settings.setValue("export/scale", factor)
        for other, action in self._scale_actions.items():
            action.setChecked(other == factor)

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in value or []]

    def _remember(self, path: str) -> None:
        recent = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", recent[:MAX_RECENT])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            self.recent_menu.addAction(Path(path).name, lambda p=path: self.open_path(p)).setStatusTip(path)
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _restore_layout(self) -> None:
        """The saved window layout, or the default proportions on first start."""
        geometry = self.settings.value("window/geometry")
        state = self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        else:
            self.latent_dock.setMinimumWidth(300)
            self.styles_dock.setMinimumWidth(540)
            QTimer.singleShot(0, self._relax_default_widths)

    def _relax_default_widths(self) -> None:
        # Minimum widths give the first layout its proportions; afterwards the user decides.
        self.latent_dock.setMinimumWidth(0)
        self.styles_dock.setMinimumWidth(0)
        self.styles_dock.raise_()
        self.resizeDocks([self.latent_dock, self.styles_dock], [300, 540], Qt.Orientation.Horizontal)
        self.resizeDocks([self.latent_dock, self.history_dock], [620, 200], Qt.Orientation.Vertical)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if not self.training_tab.confirm_close():  # a running trainer: keep it, stop it, or cancel
            event.ignore()
            return
        session.keep_last_session(self)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the render thread, cancel a running drag or direction computation, and wait
        for the loading / PCA workers to finish."""
        self.controller.shutdown()
        self.projection_panel.shutdown()
        self.timeline_panel.shutdown()  # cancels a running video export
        self.drag_tool.cancel()
        self.directions_panel.cancel()  # a 1M-sample PCA would otherwise hold the exit for its full run
        QThreadPool.globalInstance().waitForDone(30_000)

    # -- opening -------------------------------------------------------------------------
    def choose_model(self) -> None:
        patterns = " ".join(f"*{suffix}" for suffix in (*MODEL_SUFFIXES, ".json", ".png", ".npz", ".mp4", ".gif", ".webp", ".lsession"))
        path, _ = QFileDialog.getOpenFileName(self, "Open model, recipe or image", "", f"Models, recipes, images, latents and videos ({patterns});;All files (*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> None:
        """Open whatever ``path`` is: a recipe ``.json``, a latentstudio PNG, a
        ``projected_w.npz``, a video or session latentstudio wrote, a photo to project, or a model."""
        suffix = Path(path).suffix.lower()
        if session.is_animation_file(path):
            session.open_animation(self, path)
        elif suffix == ".json":
            self._open_recipe_json(path)
        elif suffix == ".png":
            self._open_png(path)
        elif suffix == ".npz":
            self._open_projected_w(path)
        elif is_photo(path):
            self.project_photo(path)
        else:
            self.open_model(path)

    def choose_photo(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Project photo", "", "Photos (*.jpg *.jpeg *.png *.webp *.tif *.tiff *.bmp *.gif);;All files (*)")
        if path:
            self.project_photo(path)

    def project_photo(self, path: str) -> None:
        """Open ``path`` in the Projection tab (File > Project photo…, or a dropped photo)."""
        self.tabs.setCurrentWidget(self.projection_panel)
        self.projection_panel.open_photo(path)

    def _open_projected_w(self, path: str) -> None:
        from latentstudio.engine.projected_w import ProjectedWError, recipes_from_projected_w

        if self.document.model is None:
            self.show_error("No model", "Open a model first, then the latents.")
            return
        try:
            recipe = recipes_from_projected_w(path, self.document.model)[0]
        except ProjectedWError as error:
            self.show_error("Cannot open latents", str(error))
            return
        self.apply_recipe(recipe, f"Open {Path(path).name}")

    def choose_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", f"Sessions (*{session.SESSION_SUFFIX});;All files (*)")
        if path:
            session.open_session(self, path)

    def choose_session_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session", f"session{session.SESSION_SUFFIX}", f"Sessions (*{session.SESSION_SUFFIX})")
        if path and session.save_session(self, path):
            self.statusBar().showMessage(f"Saved {path}", 5000)

    def open_model(self, path: str, recipe: EditRecipe | None = None) -> None:
        """Load a model in a worker; on success it replaces the current one, on failure an
        error dialog shows the loader's message and the current model stays."""
        path = str(path)
        self._loading = path
        self.statusBar().showMessage(f"Loading {Path(path).name}…")
        worker = create_worker(load_generator, path, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda G: self._on_loaded(path, G, recipe))
        worker.errored.connect(lambda error: self._on_load_failed(path, error))
        self._run_worker(worker)

    def _run_worker(self, worker) -> None:
        self._workers.append(worker)
        worker.finished.connect(lambda: self._workers.remove(worker) if worker in self._workers else None)
        worker.start()

    def _on_loaded(self, path: str, G, recipe: EditRecipe | None) -> None:
        self._loading = None
        self._remember(str(Path(path).resolve()))
        computed = G.info.format.startswith("rosinality") and G.info.provenance["w_avg"]["G_ema"] == W_AVG_COMPUTED
        note = " · its average latent was computed: the file stores none (latentstudio convert keeps it)" if computed else ""
        self.statusBar().showMessage(f"Opened {Path(path).name}: {G.info.format_name}{note}", 10_000)
        if recipe is not None and G.c_dim and recipe.class_index is None:
            recipe = recipe.replace(class_index=0)
        self.document.set_model(G, str(path), recipe)
        self.modelLoaded.emit(G)

    def _on_load_failed(self, path: str, error: BaseException) -> None:
        self._loading = None
        self.statusBar().clearMessage()
        message = str(error) if error.__class__.__name__ == "ModelLoadError" else one_line(f"{path}: {type(error).__name__}: {error}", MAX_MESSAGE)
        self.show_error("Cannot open model", message)
        self.modelFailed.emit(message)

    def _open_recipe_json(self, path: str) -> None:
        try:
            recipe = EditRecipe.from_file(path)
        except RecipeError as error:
            self.show_error("Cannot open recipe", one_line(error, MAX_MESSAGE))
            return
        self.apply_recipe(recipe, "Open recipe")

    def _open_png(self, path: str) -> None:
        from latentstudio.engine.export import read_png_recipe

        try:
            recipe, model_path = read_png_recipe(path)
        except RecipeError as error:
            if "carries no latentstudio recipe" in str(error):  # a plain photo: project it
                self.project_photo(path)
                return
            self.show_error("Cannot open image", one_line(error, MAX_MESSAGE))
            return
        current = self.document.model
        same_model = current is not None and (recipe.model is None or recipe.model == current.info.fingerprint)
        if not same_model and model_path and Path(model_path).exists():
            self.open_model(model_path, recipe)
            return
        self.apply_recipe(recipe, "Open image recipe")

    def apply_recipe(self, recipe: EditRecipe, text: str) -> None:
        """Make an opened recipe current (undoable); warn if it was made on other weights."""
        model = self.document.model
        if model is None:
            self.show_error("No model", "Open a model first, then the recipe.")
            return
        if recipe.model is not None and recipe.model != model.info.fingerprint:
            self.statusBar().showMessage(f"Note: this recipe was made on another model ({recipe.model}); results differ.", 10_000)
        self.document.set_recipe(recipe, text)

    def show_error(self, title: str, message: str) -> None:
        """An error dialog that does not block the event loop (and is easy to find in tests)."""
        self.last_error = message
        box = QMessageBox(QMessageBox.Icon.Critical, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt's name
        files = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    # -- model and frames ----------------------------------------------------------------
    def _on_model(self, G) -> None:
        self.frame = None
        if G is None:
            self.model_label.setText("No model")
            self.device_label.setText("")
            return
        info = G.info
        device = next(G.parameters()).device
        self.setWindowTitle(f"{info.name} — latentstudio")
        self.model_label.setText(f"{info.name}")
        self.model_label.setToolTip(f"{info.path}\n{info.format_name}")
        conditional = f", {info.c_dim} classes" if info.c_dim else ""
        self.device_label.setText(f"{info.kind} {info.config} · {info.resolution}×{info.resolution}{conditional} · {device.type.upper()}")
        self.time_label.setText("rendering…")
        if self._load_companion_directions(G):
            return
        worker = create_worker(quick_directions, G, 0 if info.c_dim else None, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda dset: self._on_directions(G, dset))
        worker.errored.connect(lambda error: self.statusBar().showMessage(f"Principal directions failed: {error}", 10_000))
        self._run_worker(worker)

    def _load_companion_directions(self, G) -> bool:
        """Load ``<model>_pca.npz`` shipped next to the model file (the default model has one)
        instead of computing quick principal directions. False when there is none or it does
        not fit this model."""
        from latentstudio.engine.directions import DirectionSet, DirectionSetError

        companion = Path(G.info.path).with_name(f"{G.info.name}_pca.npz")
        if not companion.exists():
            return False
        try:
            dset = DirectionSet.load(companion, expect_w_dim=G.w_dim, expect_fingerprint=G.info.fingerprint)
        except (DirectionSetError, OSError) as error:
            self.statusBar().showMessage(f"Ignored {companion.name}: {error}", 10_000)
            return False
        self._on_directions(G, dset)
        return True

    def _on_directions(self, G, dset) -> None:
        if G is self.document.model:
            self.document.add_direction_set(dset)
            self.directionsReady.emit(dset)

    def _on_frame(self, frame: Frame) -> None:
        if not frame.ok:
            self.statusBar().showMessage(f"Render error: {frame.error}", 10_000)
            self.time_label.setText("error")
            return
        self.image_view.set_image(frame.image)
        if frame.preview:
            self.time_label.setText(f"preview {frame.timings.get('total_ms', 0):.0f} ms")
            return
        self.frame = frame
        text = f"{frame.timings.get('total_ms', 0):.0f} ms"
        if frame.layers_run is not None and frame.layers_run < frame.num_layers:
            text += f" · {frame.layers_run}/{frame.num_layers} layers"
        self.time_label.setText(text)
        self.frameShown.emit(frame)

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self.time_label.setText("rendering…")

    def current_frame(self) -> Frame | None:
        """The frame on screen if it shows the current recipe, else ``None`` (still rendering)."""
        if self.frame is not None and self.frame.recipe == self.document.recipe:
            return self.frame
        return None

    # -- export --------------------------------------------------------------------------
    def export_image(self, path: str | None = None, scale: int | None = None) -> Path | None:
        """Save the current image as PNG with its recipe (and the model path) embedded."""
        from latentstudio.engine.export import save_png

        frame = self.current_frame()
        if frame is None:
            self.statusBar().showMessage("The image is still rendering; export again in a moment.", 5000)
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export image", f"seed{frame.recipe.seed:04d}.png", "PNG images (*.png)")
            if not path:
                return None
        model_path = str(Path(self.document.model_path).resolve()) if self.document.model_path else None
        saved = save_png(path, frame.raw, frame.recipe, model=model_path, scale=scale or self.export_scale,
                         smooth=not self.pixel_exact)
        self.statusBar().showMessage(f"Saved {saved}", 5000)
        return saved

    def export_grid(self, path: str | None = None) -> Path | None:
        """Save the mixing figure (rendering it first if needed) as one PNG."""
        from latentstudio.engine.export import save_png

        figure = self.mixing_view.figure
        if figure is None:
            self.tabs.setCurrentWidget(self.mixing_view)
            self.statusBar().showMessage("Rendering the mixing grid; export again when it shows.", 5000)
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export grid", "mixing.png", "PNG images (*.png)")
            if not path:
                return None
        saved = save_png(path, figure, scale=self.export_scale, smooth=not self.pixel_exact)
        self.statusBar().showMessage(f"Saved {saved}", 5000)
        return saved

    def save_recipe(self, path: str | None = None) -> Path | None:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save recipe", f"seed{self.document.recipe.seed:04d}.json", "Recipes (*.json)")
            if not path:
                return None
        saved = Path(path)
        saved.write_text(self.document.recipe.to_json(indent=2) + "\n", encoding="utf-8")
        self.statusBar().showMessage(f"Saved {saved}", 5000)
        return saved

    def copy_image(self) -> None:
        frame = self.current_frame() or self.frame
        if frame is None:
            return
        image = frame.image
        height, width = image.shape[:2]
        QGuiApplication.clipboard().setImage(QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy())
        self.statusBar().showMessage("Image copied", 3000)

    def show_tour(self) -> None:
        """The three things to try first (Help > Quick tour; shown once on first launch)."""
        self.settings.setValue("tour_shown", True)
        box = QMessageBox(QMessageBox.Icon.Information, "Quick tour", TOUR, QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def about(self) -> None:
        QMessageBox.about(
            self,
            "About latentstudio",
            f"<b>latentstudio {__version__}</b><p>An interactive studio for style-based generators "
            "(StyleGAN2, StyleGAN3): per-layer styles, mixing, directions, export.</p>",
        )
