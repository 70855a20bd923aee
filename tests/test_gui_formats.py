"""The editor opens rosinality checkpoints and NVlabs TensorFlow pickles the ways people open
files: drag and drop, File > Open, and Open recent."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

pytest.importorskip("pytestqt")
from PySide6.QtWidgets import QFileDialog  # noqa: E402

from latentstudio.gui.main_window import MainWindow  # noqa: E402
from test_gui_editor import WAIT_MS, drop_file_on, settings, wait_for_current_frame  # noqa: E402, F401

FIXTURES = Path(__file__).parent / "fixtures"
ROSINALITY = FIXTURES / "ros_train32.pt"
TENSORFLOW = FIXTURES / "tf_sg2ada_cond32.pkl"


@pytest.fixture
def window(qtbot, settings):  # noqa: F811 - the settings fixture imported above
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    yield win
    win.shutdown()


def test_drop_open_and_recent_files_load_both_formats(qtbot, window, monkeypatch, tmp_path):
    with qtbot.waitSignal(window.modelLoaded, timeout=WAIT_MS) as loaded:
        drop_file_on(window, ROSINALITY)
    assert loaded.args[0].info.format_name == "rosinality checkpoint (train.py)"
    assert "average latent was computed" in window.statusBar().currentMessage()
    wait_for_current_frame(qtbot, window)

    chosen = {}
    def choose(parent, caption, folder, filters):
        chosen["filters"] = filters
        return str(TENSORFLOW), ""
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(choose))
    with qtbot.waitSignal(window.modelLoaded, timeout=WAIT_MS) as loaded:
        next(a for a in window.menuBar().actions()[0].menu().actions() if a.text().startswith("&Open model")).trigger()
    assert "*.pt " in chosen["filters"] and "*.pkl" in chosen["filters"] and "*.pth" in chosen["filters"]
    G = loaded.args[0]
    assert (G.info.format_name, G.c_dim) == ("NVlabs TensorFlow pickle (StyleGAN2-ADA)", 4)
    assert window.statusBar().currentMessage() == f"Opened {TENSORFLOW.name}: NVlabs TensorFlow pickle (StyleGAN2-ADA)"
    assert "NVlabs TensorFlow pickle (StyleGAN2-ADA)" in window.model_label.toolTip()
    wait_for_current_frame(qtbot, window)
    window.grab().save(str(tmp_path / "tf_model.png"))

    assert window.recent_files()[:2] == [str(TENSORFLOW.resolve()), str(ROSINALITY.resolve())]
    window._fill_recent_menu()
    recent = next(a for a in window.recent_menu.actions() if a.text() == ROSINALITY.name)
    with qtbot.waitSignal(window.modelLoaded, timeout=WAIT_MS) as loaded:
        recent.trigger()
    assert loaded.args[0].info.format == "rosinality-train" and window.document.model is loaded.args[0]
