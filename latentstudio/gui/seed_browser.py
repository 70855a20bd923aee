"""Seed browser: thumbnails of the seeds around the current one, rendered in the background.

Click a thumbnail to make it seed A; right-click to use it as seed B (the mixing seed).
Thumbnails are requested from the render thread as one low-priority batch, only while the
browser is visible, and re-requested (debounced) when the seed, class or truncation change.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QMenu, QWidget
from superqt.utils import qdebounced

from latentstudio.engine.recipe import EditRecipe
from latentstudio.gui.document import EditorDocument
from latentstudio.gui.render_worker import RenderController
from latentstudio.gui.widgets import SEED_MAX

BATCH_KEY = "seed-browser"


def to_pixmap(image: np.ndarray) -> QPixmap:
    """H x W x 3 uint8 -> QPixmap (copied, so the array may be freed)."""
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    qimage = QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimage.copy())


class SeedBrowser(QListWidget):
    """A grid of seed thumbnails centred on the current seed."""

    seedPicked = Signal(int)
    mixSeedPicked = Signal(int)

    def __init__(self, document: EditorDocument, controller: RenderController, count: int = 12, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.controller = controller
        self.count_ = count
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setIconSize(QSize(64, 64))
        self.setGridSize(QSize(76, 88))
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setMovement(QListWidget.Movement.Static)
        self.setUniformItemSizes(True)
        self.setWrapping(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setToolTip("Click: use as seed A.  Right-click: use as seed B (mixing).")
        self.customContextMenuRequested.connect(self._context_menu)
        self.itemClicked.connect(lambda item: self.seedPicked.emit(item.data(Qt.ItemDataRole.UserRole)))
        self._requested: tuple | None = None
        self.ready = False  # True once the thumbnails of the current request are shown
        controller.batchReady.connect(self._on_batch)
        document.recipeChanged.connect(lambda _: self.refresh())
        document.modelChanged.connect(lambda _: self._forget())

    def _forget(self) -> None:
        self._requested = None
        self.ready = False
        self.clear()

    def seeds_around(self, seed: int) -> list[int]:
        first = max(0, min(seed - self.count_ // 3, SEED_MAX - self.count_))
        return list(range(first, first + self.count_))

    def thumbnail_recipes(self, recipe: EditRecipe) -> list[EditRecipe]:
        """Plain versions of nearby seeds: same class and truncation, no mixing or edits."""
        base = EditRecipe(
            class_index=recipe.class_index,
            truncation_psi=recipe.truncation_psi,
            truncation_cutoff=recipe.truncation_cutoff,
            model=recipe.model,
        )
        return [base.replace(seed=seed) for seed in self.seeds_around(recipe.seed)]

    @qdebounced(timeout=150)
    def refresh(self) -> None:
        """Request thumbnails for the current recipe if they are visible and out of date."""
        if self.document.model is None or not self.isVisible():
            return
        recipes = self.thumbnail_recipes(self.document.recipe)
        key = tuple(recipes)
        if key == self._requested:
            self._mark_current()
            return
        self._requested = key
        self.ready = False
        self.controller.request_batch(BATCH_KEY, recipes)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.refresh()

    def _on_batch(self, key: str, frames: list) -> None:
        if key != BATCH_KEY:
            return
        self.clear()
        for frame in frames:
            item = QListWidgetItem(str(frame.recipe.seed))
            item.setData(Qt.ItemDataRole.UserRole, frame.recipe.seed)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            if frame.ok:
                item.setIcon(QIcon(to_pixmap(frame.image)))
            else:
                item.setToolTip(frame.error)
            self.addItem(item)
        self.ready = True
        self._mark_current()

    def _mark_current(self) -> None:
        seed = self.document.recipe.seed
        for row in range(self.count()):
            item = self.item(row)
            item.setSelected(item.data(Qt.ItemDataRole.UserRole) == seed)

    def _context_menu(self, position) -> None:
        item = self.itemAt(position)
        if item is None:
            return
        seed = item.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction(f"Use seed {seed} as seed A", lambda: self.seedPicked.emit(seed))
        menu.addAction(f"Use seed {seed} as mixing seed B", lambda: self.mixSeedPicked.emit(seed))
        menu.exec(self.mapToGlobal(position))
