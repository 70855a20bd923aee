"""What the Drag tool draws over the image: handle and target points, arrows, the mask.

pyqtgraph items in the image view's ``ViewBox``, created once and updated in place. Points
are image pixel indices ``(x, y)``; pixel ``(x, y)`` covers the scene square from ``(x, y)``
to ``(x + 1, y + 1)``, so markers sit at ``+ 0.5``. Markers and arrow heads keep their
screen size at every zoom (``pxMode``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor

HANDLE_COLOR = QColor(235, 64, 52)  # red
TARGET_COLOR = QColor(52, 120, 246)  # blue
ARROW_COLOR = QColor(255, 255, 255, 220)
MASK_DIM = 0.45  # opacity of the darkening over the region the mask keeps
POINT_SIZE = 11  # screen pixels
Z_OVERLAY = 10  # above the image item
Z_MASK, Z_ARROWS, Z_POINTS = 0, 1, 2  # within the overlay


class DragOverlay:
    """The Drag tool's markers in ``view_box``: red handles, blue targets, white arrows
    from each handle to its target, and the area outside the mask dimmed."""

    def __init__(self, view_box: pg.ViewBox):
        self.group = pg.ItemGroup()  # one parent: shown, hidden and stacked above the image together
        self.group.setZValue(Z_OVERLAY)
        view_box.addItem(self.group, ignoreBounds=True)
        self.mask_item = pg.ImageItem(axisOrder="row-major")
        self.mask_item.setZValue(Z_MASK)
        self.lines = pg.PlotCurveItem(pen=pg.mkPen(ARROW_COLOR, width=2), connect="pairs")
        self.lines.setZValue(Z_ARROWS)
        self.handles = self._scatter(HANDLE_COLOR)
        self.targets = self._scatter(TARGET_COLOR)
        self.heads: list[pg.ArrowItem] = []
        self._segments = (np.zeros((0, 2)), np.zeros((0, 2)))  # arrow starts and ends, scene units
        self.view_box = view_box
        view_box.sigRangeChanged.connect(lambda *_: self._place_heads())  # heads keep off the targets at any zoom
        for item in (self.mask_item, self.lines, self.handles, self.targets):
            item.setParentItem(self.group)

    @staticmethod
    def _scatter(color: QColor) -> pg.ScatterPlotItem:
        item = pg.ScatterPlotItem(size=POINT_SIZE, pen=pg.mkPen("w", width=1.5), brush=pg.mkBrush(color), pxMode=True)
        item.setZValue(Z_POINTS)
        return item

    def set_points(self, handles: Sequence[Sequence[float]], targets: Sequence[Sequence[float]]) -> None:
        """Draw ``handles`` (one more than ``targets`` while a target is being placed)."""
        handles = np.asarray(handles, dtype=float).reshape(-1, 2) + 0.5
        targets = np.asarray(targets, dtype=float).reshape(-1, 2) + 0.5
        self.handles.setData(pos=handles)
        self.targets.setData(pos=targets)
        pairs = min(len(handles), len(targets))
        if pairs:
            ends = np.empty((2 * pairs, 2))
            ends[0::2], ends[1::2] = handles[:pairs], targets[:pairs]
            self.lines.setData(ends[:, 0], ends[:, 1])
        else:
            self.lines.setData([], [])
        self._segments = (handles[:pairs], targets[:pairs])
        self._place_heads()

    def _place_heads(self) -> None:
        """One arrow head per pair, its tip at the rim of the target's dot."""
        starts, ends = self._segments
        while len(self.heads) < len(ends):
            head = pg.ArrowItem(headLen=13, tipAngle=40, tailLen=None, pen=pg.mkPen(ARROW_COLOR),
                                brush=pg.mkBrush(ARROW_COLOR), pxMode=True)
            head.setZValue(Z_ARROWS)
            head.setParentItem(self.group)
            self.heads.append(head)
        pixel = self.view_box.viewPixelSize()[0] or 1.0  # scene units per screen pixel
        for index, head in enumerate(self.heads):
            (x0, y0), (x1, y1) = (starts[index], ends[index]) if index < len(ends) else ((0, 0), (0, 0))
            # A head only where the dots leave room for one: not on an arrived handle.
            visible = index < len(ends) and math.hypot(x1 - x0, y1 - y0) > (POINT_SIZE + 4) * pixel
            head.setVisible(visible)
            if not visible:
                continue
            angle = math.atan2(y1 - y0, x1 - x0)
            back = (POINT_SIZE / 2 + 1) * pixel
            # ArrowItem's angle 0 points left; the view's y axis points down the screen.
            head.setStyle(angle=180 + math.degrees(angle))
            head.setPos(x1 - back * math.cos(angle), y1 - back * math.sin(angle))

    def set_mask(self, mask: np.ndarray | None) -> None:
        """Dim what the mask keeps (``mask`` True where the image may change); None clears it."""
        if mask is None or not mask.any():
            self.mask_item.clear()
            self.mask_item.setVisible(False)
            return
        rgba = np.zeros(mask.shape + (4,), dtype=np.uint8)
        rgba[..., 3] = np.where(mask, 0, round(255 * MASK_DIM))
        self.mask_item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.mask_item.setRect(QRectF(0, 0, mask.shape[1], mask.shape[0]))
        self.mask_item.setVisible(True)

    def set_visible(self, visible: bool) -> None:
        self.group.setVisible(visible)
