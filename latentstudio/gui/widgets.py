"""Small shared widget helpers: labelled float sliders and quiet write-backs."""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, QSignalBlocker, Qt
from PySide6.QtWidgets import QLabel, QMenu, QWidget
from superqt import QLabeledDoubleSlider

SEED_MAX = 2**31 - 1  # QSpinBox holds a C int; recipes allow up to 2^32 - 1


def float_slider(minimum: float, maximum: float, value: float = 0.0, decimals: int = 2, step: float = 0.01) -> QLabeledDoubleSlider:
    """A horizontal superqt float slider with an editable value label."""
    slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
    slider.setRange(minimum, maximum)
    slider.setDecimals(decimals)
    slider.setSingleStep(step)
    slider.setValue(value)
    return slider


def set_quietly(widget: QWidget, setter: str, *args) -> None:
    """Call ``widget.<setter>(*args)`` without emitting signals (model -> view write-back)."""
    with QSignalBlocker(widget):
        getattr(widget, setter)(*args)


def caption(text: str) -> QLabel:
    """A small, dimmed section caption."""
    label = QLabel(text)
    label.setObjectName("caption")
    return label


def on_right_click(widget: QWidget, actions: Callable[[], list[tuple[str, Callable[[], None]]]]) -> None:
    """Give ``widget`` a context menu of ``(text, slot)`` pairs, made when it is asked for.

    The open menu is kept as ``widget.context_menu`` (and shown without blocking), so tests
    can find and trigger its actions.
    """
    widget.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def show(position: QPoint) -> None:
        menu = QMenu(widget)
        for text, slot in actions():
            menu.addAction(text).triggered.connect(lambda _=False, s=slot: s())
        widget.context_menu = menu
        menu.popup(widget.mapToGlobal(position))

    widget.customContextMenuRequested.connect(show)
