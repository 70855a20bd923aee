"""The image in the centre of the editor: one pyqtgraph ``ImageItem`` in a zoomable ``ViewBox``.

Created once and updated in place (``setImage`` per frame with fixed levels), as the
pyqtgraph examples do. The wheel zooms, dragging pans; :meth:`fit` shows the whole image and
:meth:`actual_size` maps one image pixel to one screen pixel, aligned to the pixel grid.

A tool (:class:`ImageTool`, e.g. the Drag tool's point placing and mask brush) can take the
left mouse button: its presses, drags and releases arrive in image coordinates, while the
wheel still zooms and the middle button pans. Tools draw their own items into ``view_box``.

Magnified images are smooth by default: a 64 px face blown up to a window in nearest-neighbour
blocks looks like a mosaic, not a portrait. Small images are first upscaled with Lanczos
(:data:`PRESCALE_LIMIT`, well under a millisecond at 64 px) and the rest of the way is
bilinear (Qt's smooth pixmap transform); :meth:`set_smooth(False) <ImageView.set_smooth>`
gives the pixel-exact view. Either way the image keeps its own pixel coordinates, so tools,
overlays and :meth:`actual_size` are unaffected.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPainter

from latentstudio.engine.export import to_pil, upscale

PRESCALE_LIMIT = 256  # images up to this size are Lanczos-upscaled (2x or 4x) before Qt scales them


def prescale_factor(height: int, width: int) -> int:
    """How much to Lanczos-upscale an image before display: 4 or 2 while it stays within
    :data:`PRESCALE_LIMIT`, else 1 (larger images are smooth enough bilinear, and cost more)."""
    for factor in (4, 2):
        if max(height, width) * factor <= PRESCALE_LIMIT:
            return factor
    return 1


class ImageTool(Protocol):
    """Receives left-button mouse events in image coordinates: ``(x, y)`` with pixel
    ``(i, j)`` covering ``[i, i + 1) x [j, j + 1)``."""

    def press(self, x: float, y: float, event: QMouseEvent) -> bool:
        """A press; return True to receive the drag that follows (``move``, ``release``)."""

    def move(self, x: float, y: float, event: QMouseEvent) -> None: ...

    def release(self, x: float, y: float, event: QMouseEvent) -> None: ...


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
        self.tool: ImageTool | None = None
        self._tool_drag = False
        self.smooth = True
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)

    def set_smooth(self, smooth: bool) -> None:
        """Smooth (Lanczos, then bilinear) or pixel-exact (nearest-neighbour) magnification."""
        self.smooth = bool(smooth)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
        if self.image is not None:
            self._show(self.image)
        self.viewport().update()

    def set_image(self, image: np.ndarray) -> None:
        """Show ``image`` (H x W x 3 uint8). The first image of a new size is fitted."""
        self.image = image
        self._show(image)
        if self._fitted_shape != image.shape[:2]:
            self._fitted_shape = image.shape[:2]
            self.fit()

    def _show(self, image: np.ndarray) -> None:
        """Put ``image`` on screen (upscaled first when smooth), covering its own pixel rectangle."""
        height, width = image.shape[:2]
        factor = prescale_factor(height, width) if self.smooth and image.ndim == 3 else 1
        shown = np.asarray(upscale(to_pil(image), factor)) if factor > 1 else image  # Lanczos, as export does
        self.image_item.setImage(shown, autoLevels=False, levels=(0, 255))
        self.image_item.setRect(QRectF(0, 0, width, height))

    def clear(self) -> None:
        self.image = None
        self._fitted_shape = None
        self.image_item.clear()

    # -- tools ---------------------------------------------------------------------------
    def set_tool(self, tool: ImageTool | None) -> None:
        """Hand the left mouse button to ``tool`` (None: back to panning)."""
        self.tool = tool
        self._tool_drag = False
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if tool is not None else Qt.CursorShape.ArrowCursor)

    def image_position(self, position: QPointF) -> tuple[float, float]:
        """A position in this widget -> image coordinates (see :class:`ImageTool`)."""
        point = self.view_box.mapSceneToView(self.mapToScene(position.toPoint()))
        return point.x(), point.y()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self.tool is not None and event.button() == Qt.MouseButton.LeftButton and self.image is not None:
            self._tool_drag = bool(self.tool.press(*self.image_position(event.position()), event))
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self._tool_drag and self.tool is not None:
            self.tool.move(*self.image_position(event.position()), event)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's name
        if self.tool is not None and event.button() == Qt.MouseButton.LeftButton:
            if self._tool_drag:
                self.tool.release(*self.image_position(event.position()), event)
            self._tool_drag = False
            event.accept()
            return
        super().mouseReleaseEvent(event)

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
