"""The Training tab: curves of a finished run, and a real trainer process started, stopped
(with a checkpoint) and resumed from the tab."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QMessageBox  # noqa: E402

from latentstudio.gui.training_tab import TrainingTab  # noqa: E402
from latentstudio.train.checkpoints import latest_network  # noqa: E402
from latentstudio.train.config import TrainOptions  # noqa: E402
from latentstudio.train.run import train  # noqa: E402


def make_images(root, count=16):
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(count):
        image = np.full((16, 16, 3), rng.integers(0, 255, 3), dtype=np.uint8)
        image[4:12, 4:12] = rng.integers(0, 255, 3)
        Image.fromarray(image).save(root / f"{i:02d}.png")
    return root


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for trainer processes: 2 busy shared cores
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_tab_shows_the_curves_and_grid_of_a_finished_run(qtbot, tmp_path, one_thread):
    run_dir = tmp_path / "run"
    options = TrainOptions(data=str(make_images(tmp_path / "images")), outdir=str(run_dir), resolution=16,
                           cfg="tiny", batch=8, kimg=0.064, tick=0.008, workers=0, device="cpu")
    train(options, progress=False)

    tab = TrainingTab()
    qtbot.addWidget(tab)
    tab.resize(1100, 700)
    tab.show()
    qtbot.waitExposed(tab)
    tab.watch_run(run_dir)

    for key in ("G_loss", "D_loss", "D_real_acc", "D_fake_acc"):
        xs, ys = tab.curve_data(key)
        assert xs == pytest.approx([0.008 * i for i in range(1, 9)]) and all(np.isfinite(ys))
        curve_x, curve_y = tab.curves[key].getData()
        assert len(curve_x) == 8
    assert tab.grid_image.image.shape == (4 * 16, 8 * 16, 3)
    assert tab.latest_grid.endswith("fakes000008.png")
    assert "kimg 0.064 / 0.064" in tab.progress_label.text()
    assert tab.open_button.isEnabled() and tab.start_button.isEnabled() and not tab.stop_button.isEnabled()
    with qtbot.waitSignal(tab.openModelRequested) as opened:
        tab.open_button.click()
    assert opened.args == [str(latest_network(run_dir))]

    shot = tab.grab().toImage()
    shot.save(str(tmp_path / "training_tab.png"))
    pixels = np.asarray(Image.open(tmp_path / "training_tab.png").convert("RGB"))
    assert pixels.shape[:2] == (700, 1100) and pixels.std() > 10
    tab.timer.stop()


def test_start_stop_and_resume_a_trainer_process(qtbot, tmp_path, monkeypatch, one_thread):
    tab = TrainingTab()
    qtbot.addWidget(tab)
    tab.data_edit.setText(str(make_images(tmp_path / "images")))
    tab.res_combo.setCurrentText("16")
    tab.cfg_combo.setCurrentText("tiny")
    tab.kimg_spin.setValue(2.0)
    tab.batch_spin.setValue(8)
    run_dir = tmp_path / "run"
    tab.outdir_edit.setText(str(run_dir))

    assert tab.start()
    qtbot.waitUntil(lambda: tab.last_record is not None, timeout=60_000)
    assert tab.is_running() and tab.stop_button.isEnabled() and not tab.start_button.isEnabled()

    # Closing the window: "No" stops the trainer, which writes a checkpoint on its way out.
    monkeypatch.setattr(QMessageBox, "question", lambda *args: QMessageBox.StandardButton.No)
    assert tab.confirm_close()
    tab.timer.start()
    qtbot.waitUntil(lambda: tab.finished_state == "stopped" and not tab.is_running(), timeout=60_000)
    stopped_at = tab.last_record["step"]
    assert latest_network(run_dir).name == f"network-snapshot-{stopped_at:06d}.safetensors"
    assert not tab.start()  # the folder holds a run now: Start refuses, Resume continues it

    tab.kimg_spin.setValue((stopped_at + 2) * 8 / 1000)
    assert tab.resume()
    qtbot.waitUntil(lambda: tab.finished_state == "done" and not tab.is_running(), timeout=60_000)
    tab.refresh()
    assert tab.last_record["step"] == stopped_at + 2
    steps = [round(x * 1000 / 8) for x in tab.curve_data("G_loss")[0]]
    assert steps[-1] == stopped_at + 2 and stopped_at in steps  # the stop's tick, then the resumed ones
    assert all(0 < b - a <= 2 for a, b in zip(steps, steps[1:]))  # one curve, no repeats, no gaps
    tab.timer.stop()
