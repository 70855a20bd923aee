"""The image in the centre of the editor: one pyqtgraph ``ImageItem`` in a zoomable ``ViewBox``.

Created once and updated in place (``setImage`` per frame with fixed levels), as the
pyqtgraph examples do. The wheel zooms, dragging pans; :meth:`fit` shows the whole image and
:meth:`actual_size` maps one image pixel to one screen pixel, aligned to the pixel grid.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor


class ImageView(pg.GraphicsView):
    """A pan / zoom view of one RGB uint8 image (row-major, top row first)."""

    def __init__(self, parent=None, background: str = "#1b1d21"):
        super().__init__(parent, background=QColor(background))
        self.view_box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view_box.setMouseMode(pg.ViewBox.PanMode)
        self.setCentralItem(self.view_box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.image: np.ndarray | None = None
        self._fitted_shape: tuple[int, int] | None = None
        self._auto_fit = True  # keep fitting on resize until the person zooms or pans
        self.view_box.sigRangeChangedManually.connect(self._stop_auto_fit)

    def set_image(self, image: np.ndarray) -> None:
        """Show ``image`` (H x W x 3 uint8). The first image of a new size is fitted."""
        self.image = image
        self.image_item.setImage(image, autoLevels=False, levels=(0, 255))
        if self._fitted_shape != image.shape[:2]:
            self._fitted_shape = image.shape[:2]
            self.fit()

    def clear(self) -> None:
        self.image = None
        self._fitted_shape = None
        self.image_item.clear()

    def _stop_auto_fit(self, *_) -> None:
        self._auto_fit = False

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if getattr(self, "_auto_fit", False):  # pyqtgraph resizes during its own __init__
            self.fit()

    def fit(self) -> None:
        """Show the whole image, as large as the view allows (and keep it so on resize)."""
        self._auto_fit = True
        if self.image is not None:
            height, width = self.image.shape[:2]
            self.view_box.setRange(QRectF(0, 0, width, height), padding=0.02)

    def actual_size(self) -> None:
        """One image pixel per screen pixel, centred, with pixel edges on screen pixel edges."""
        if self.image is None:
            return
        self._auto_fit = False
        height, width = self.image.shape[:2]
        view = self.view_box.geometry()
        ratio = self.devicePixelRatioF() or 1.0
        span_x, span_y = view.width() * ratio, view.height() * ratio
        left = round((width - span_x) / 2)
        top = round((height - span_y) / 2)
        self.view_box.setRange(QRectF(left, top, span_x, span_y), padding=0)
