"""The editor on a StyleGAN3 model: transform controls, undo, and export / re-open."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings  # noqa: E402

from latentstudio.engine.renderer import Renderer  # noqa: E402
from latentstudio.gui.main_window import MainWindow  # noqa: E402
from conftest import lively_copy  # noqa: E402
from test_gui_editor import WAIT_MS, drop_file_on, wait_for_current_frame  # noqa: E402


@pytest.fixture(scope="module")
def lively_sg3(tmp_path_factory, fixtures_dir):
    """sg3t_32 with a mapping network spread like a trained one."""
    return lively_copy(fixtures_dir / "sg3t_32.pkl", tmp_path_factory.mktemp("models") / "lively_sg3.safetensors")


@pytest.fixture
def window(qtbot, tmp_path, lively_sg3):
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.directionsReady, timeout=WAIT_MS):
        win.open_model(lively_sg3)
    wait_for_current_frame(qtbot, win)
    yield win
    win.shutdown()


def test_transform_controls_only_for_stylegan3(window):
    panel = window.latent_panel
    assert panel._form.isRowVisible(panel.rotate) and panel._form.isRowVisible(panel.translate_x)
    assert not panel._form.isRowVisible(panel.noise_mode)
    assert "stylegan3 T" in window.device_label.text()  # the model kind is in the status bar


def test_rotate_translate_undo_and_reopen(qtbot, window, tmp_path):
    panel = window.latent_panel
    before = wait_for_current_frame(qtbot, window)
    panel.rotate.setValue(30.0)
    panel.translate_x.setValue(0.25)
    window.document.end_merge()
    recipe = window.document.recipe
    assert recipe.rotate == 30.0 and recipe.translate == (0.25, 0.0)
    qtbot.waitUntil(lambda: not np.array_equal(wait_for_current_frame(qtbot, window), before), timeout=WAIT_MS)
    moved = wait_for_current_frame(qtbot, window)
    expected = Renderer(window.document.model).render(recipe)
    np.testing.assert_array_equal(moved, expected.image)

    path = window.export_image(str(tmp_path / "sg3.png"))
    window.document.undo_stack.undo()
    window.document.undo_stack.undo()
    assert window.document.recipe.rotate == 0.0 and window.document.recipe.translate == (0.0, 0.0)
    qtbot.waitUntil(lambda: np.array_equal(wait_for_current_frame(qtbot, window), before), timeout=WAIT_MS)

    drop_file_on(window, path)
    assert window.document.recipe == recipe
    assert panel.rotate.value() == 30.0 and panel.translate_x.value() == 0.25
    np.testing.assert_array_equal(wait_for_current_frame(qtbot, window), np.asarray(Image.open(path).convert("RGB")))
