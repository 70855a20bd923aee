"""Mixing view: the StyleGAN style-mixing figure as a live tool.

Sources A run down the left column, sources B along the top row, and each cell is A with the
chosen layer group taken from B (exactly :meth:`EditRecipe.with_layers_from_b`). The grid is
rendered as one background batch and can be exported as a single PNG.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from latentstudio.engine.ranges import RangeSyntaxError, parse_int_list
from latentstudio.engine.export import make_grid
from latentstudio.engine.recipe import EditRecipe
from latentstudio.gui.document import EditorDocument
from latentstudio.gui.image_view import ImageView
from latentstudio.gui.render_worker import RenderController
from latentstudio.nets.layout import layer_groups, ws_layout

BATCH_KEY = "mixing-grid"
MAX_SOURCES = 8


def mixing_recipes(base: EditRecipe, seeds_a: list[int], seeds_b: list[int], layers: list[int], num_ws: int) -> list[EditRecipe]:
    """Recipes of the figure, row by row: top row B sources, then for each A its source and
    one cell per B. ``base`` supplies class, truncation and noise."""
    plain = EditRecipe(class_index=base.class_index, truncation_psi=base.truncation_psi, truncation_cutoff=base.truncation_cutoff, noise_mode=base.noise_mode, noise_seed=base.noise_seed, model=base.model)
    recipes = [plain.replace(seed=b) for b in seeds_b]
    for a in seeds_a:
        recipes.append(plain.replace(seed=a))
        recipes.extend(plain.replace(seed=a).with_layers_from_b(layers, num_ws, mix_seed=b) for b in seeds_b)
    return recipes


def mixing_figure(images: list[np.ndarray], rows: int, columns: int) -> np.ndarray:
    """Lay out the rendered figure: a blank top-left corner, B along the top, A down the side."""
    blank = np.full_like(images[0], 24)
    tiles = [blank, *images]
    assert len(tiles) == (rows + 1) * (columns + 1)
    return make_grid(tiles, columns + 1, padding=2, background=24)


class MixingView(QWidget):
    """Edit the source seeds and group, see the whole mixing figure, export it."""

    def __init__(self, document: EditorDocument, controller: RenderController, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.controller = controller
        self.figure: np.ndarray | None = None
        self.figure_recipes: list[EditRecipe] = []
        self._shape = (0, 0)

        self.seeds_a = QLineEdit("1-4")
        self.seeds_a.setToolTip(f"Seeds of the sources A (rows), e.g. 1-4,10; at most {MAX_SOURCES}")
        self.seeds_b = QLineEdit("10-14")
        self.seeds_b.setToolTip(f"Seeds of the sources B (columns); at most {MAX_SOURCES}")
        self.group = QComboBox()
        self.group.addItems(["coarse", "middle", "fine"])
        self.group.setToolTip("Which layers each cell takes from its B source")
        self.status = QLabel()
        self.status.setObjectName("caption")
        render = QPushButton("Render")
        render.clicked.connect(self.refresh)
        self.export_button = QPushButton("Export…")
        self.export_button.setEnabled(False)
        for editor in (self.seeds_a, self.seeds_b):
            editor.setMinimumWidth(70)
            editor.editingFinished.connect(self.refresh)
        self.group.currentIndexChanged.connect(lambda _: self.refresh())

        seeds = QHBoxLayout()
        seeds.addWidget(QLabel("A seeds (rows)"))
        seeds.addWidget(self.seeds_a, 1)
        seeds.addWidget(QLabel("B seeds (columns)"))
        seeds.addWidget(self.seeds_b, 1)
        actions = QHBoxLayout()
        actions.addWidget(QLabel("Take from B"))
        actions.addWidget(self.group)
        actions.addStretch(1)
        actions.addWidget(render)
        actions.addWidget(self.export_button)
        self.view = ImageView()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(seeds)
        layout.addLayout(actions)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.status)

        controller.batchReady.connect(self._on_batch)
        document.modelChanged.connect(lambda _: self._clear())

    def _clear(self) -> None:
        self.figure = None
        self.figure_recipes = []
        self.view.clear()
        self.export_button.setEnabled(False)
        if self.isVisible():
            self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self.figure is None:
            self.refresh()

    def refresh(self) -> None:
        """Request the figure for the current seeds, group and recipe (class, truncation)."""
        model = self.document.model
        if model is None:
            return
        try:
            seeds_a = parse_int_list(self.seeds_a.text())[:MAX_SOURCES]
            seeds_b = parse_int_list(self.seeds_b.text())[:MAX_SOURCES]
        except RangeSyntaxError as error:
            self.status.setText(str(error))
            return
        info = model.info
        layers = layer_groups(ws_layout(model), info.resolution)[self.group.currentText()]
        self._shape = (len(seeds_a), len(seeds_b))
        self.status.setText(f"Rendering {len(seeds_a)} × {len(seeds_b)} mixing grid ({self.group.currentText()} layers {layers[0]}–{layers[-1]} from B)…")
        self.controller.request_batch(BATCH_KEY, mixing_recipes(self.document.recipe, seeds_a, seeds_b, layers, info.num_ws))

    def _on_batch(self, key: str, frames: list) -> None:
        if key != BATCH_KEY:
            return
        failed = next((f for f in frames if not f.ok), None)
        if failed is not None:
            self.status.setText(f"Mixing grid failed: {failed.error}")
            return
        rows, columns = self._shape
        self.figure = mixing_figure([f.image for f in frames], rows, columns)
        self.figure_recipes = [f.recipe for f in frames]
        self.view.set_image(self.figure)
        self.export_button.setEnabled(True)
        self.status.setText(f"{rows} × {columns} grid: rows are sources A, columns sources B, {self.group.currentText()} layers from B.")
