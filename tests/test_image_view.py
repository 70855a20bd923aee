"""Magnified images: smooth by default (Lanczos, then bilinear), pixel-exact on request, in every
view of the editor and in export upscaling, with image coordinates unchanged."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPointF, QSettings  # noqa: E402
from PySide6.QtGui import QPainter  # noqa: E402

from latentstudio.engine.export import save_png, upscale  # noqa: E402
from latentstudio.gui.image_view import ImageView, prescale_factor  # noqa: E402
from latentstudio.gui.main_window import MainWindow  # noqa: E402
from test_gui_editor import lively_model, settings, wait_for_current_frame, window  # noqa: E402,F401


def checkerboard(size: int = 16, block: int = 4) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return np.repeat((((yy // block + xx // block) % 2) * 255).astype(np.uint8)[..., None], 3, axis=-1)


def smooth_hint(view: ImageView) -> bool:
    return bool(view.renderHints() & QPainter.RenderHint.SmoothPixmapTransform)


def shown_grey_levels(view: ImageView, qtbot) -> int:
    """Distinct grey levels inside the image on screen (2 for a sharp black-and-white board)."""
    view.fit()
    qtbot.wait(20)
    picture = view.grab().toImage()
    rect = view.image_item.mapRectToScene(view.image_item.boundingRect())
    top_left = view.mapFromScene(rect.topLeft())
    bottom_right = view.mapFromScene(rect.bottomRight())
    pixels = np.array([[picture.pixelColor(x, y).red() for x in range(top_left.x() + 3, bottom_right.x() - 3, 2)]
                       for y in range(top_left.y() + 3, bottom_right.y() - 3, 2)])
    return len(np.unique(pixels))


def test_small_images_are_smooth_by_default_and_pixel_exact_on_request(qtbot):
    view = ImageView()
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.show()
    board = checkerboard()
    view.set_image(board)
    assert view.smooth and smooth_hint(view)
    assert view.image_item.image.shape[:2] == (64, 64)  # 16 px Lanczos-upscaled 4x before Qt scales it
    assert view.image_item.mapRectToParent(view.image_item.boundingRect()).width() == 16  # image coordinates kept
    on_screen = QPointF(view.mapFromScene(view.view_box.mapViewToScene(QPointF(8, 4))))
    assert view.image_position(on_screen) == pytest.approx((8, 4), abs=0.1)
    levels = shown_grey_levels(view, qtbot)
    assert levels > 20

    view.set_smooth(False)
    assert view.image_item.image.shape[:2] == (16, 16) and not smooth_hint(view)
    levels = shown_grey_levels(view, qtbot)
    assert levels == 2
    assert (prescale_factor(64, 64), prescale_factor(128, 100), prescale_factor(256, 256)) == (4, 2, 1)


def test_export_upscaling_follows_the_same_choice(tmp_path):
    board = Image.fromarray(checkerboard())
    exact = np.asarray(upscale(board, 4, smooth=False))
    assert np.array_equal(exact, np.repeat(np.repeat(np.asarray(board), 4, axis=0), 4, axis=1))
    smooth = np.asarray(upscale(board, 4))
    assert smooth.shape == exact.shape and len(np.unique(smooth)) > 10
    path = save_png(tmp_path / "exact.png", np.asarray(board), scale=2, smooth=False)
    assert len(np.unique(np.asarray(Image.open(path)))) == 2


def test_the_view_menu_toggle_switches_every_view_and_export_and_is_remembered(qtbot, window, tmp_path):
    views = window.findChildren(ImageView)
    assert len(views) >= 4 and all(view.smooth for view in views)  # editor, mixing, projection target and result
    assert not window.pixel_exact_action.isChecked()
    window.pixel_exact_action.trigger()
    assert window.pixel_exact and not any(view.smooth for view in views)
    frame = wait_for_current_frame(qtbot, window)
    exported = np.asarray(Image.open(window.export_image(str(tmp_path / "exact.png"), scale=2)))
    assert np.array_equal(exported, np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1))

    second = MainWindow(settings=QSettings(window.settings.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(second)
    assert second.pixel_exact_action.isChecked() and not second.image_view.smooth
    second.shutdown()
    window.pixel_exact_action.trigger()
    assert all(view.smooth for view in views)
    smooth = np.asarray(Image.open(window.export_image(str(tmp_path / "smooth.png"), scale=2)))
    assert not np.array_equal(smooth, exported)
