"""First launch: a model's companion direction set is loaded with it, and the quick tour."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from latentstudio.engine.directions import pca_directions  # noqa: E402
from latentstudio.gui.main_window import MainWindow  # noqa: E402
from latentstudio.io import load_model, load_networks, save_native  # noqa: E402
from test_gui_editor import WAIT_MS  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    yield win
    win.shutdown()


def test_companion_direction_set_is_loaded_with_the_model(qtbot, window, tmp_path, fixtures_dir):
    model = save_native(tmp_path / "mymodel.safetensors", {"G_ema": load_networks(fixtures_dir / "sg2_skip32.pkl")["G_ema"]})
    shipped = pca_directions(load_model(model, device="cpu"), num=4, samples=500, seed=7)
    shipped.names[0] = "smile"
    shipped.save(tmp_path / "mymodel_pca.npz")
    with qtbot.waitSignal(window.directionsReady, timeout=WAIT_MS) as ready:
        window.open_model(str(model))
    dset = ready.args[0]
    assert dset.names == ["smile", *shipped.names[1:]] and len(dset) == 4
    assert window.document.direction_sets == [dset]


def test_quick_tour_explains_three_things_and_is_remembered(qtbot, window):
    window.show_tour()
    boxes = [box for box in window.findChildren(QMessageBox) if box.isVisible()]
    assert boxes and "Three things to try" in boxes[0].text() and boxes[0].text().count("<li>") == 3
    assert window.settings.value("tour_shown", False, type=bool)
