"""The Projection tab, offscreen: a dropped photo opens it, a short projection runs off the
GUI thread while the editor keeps rendering, Stop keeps the latent reached, the result is one
undoable step, and the editor's controls then edit it."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")
from PySide6.QtCore import QSettings  # noqa: E402

from latentstudio.engine.face_align import CropBox  # noqa: E402
from latentstudio.engine.projected_w import save_projected_w  # noqa: E402
from latentstudio.engine.recipe import EditRecipe  # noqa: E402
from latentstudio.engine.renderer import Renderer  # noqa: E402
from latentstudio.gui.main_window import MainWindow  # noqa: E402
from latentstudio.io import load_model  # noqa: E402

from test_gui_editor import drop_file_on, row, wait_for_current_frame  # noqa: E402

DEFAULT_MODEL = Path(__file__).parents[1] / "assets" / "faces64.safetensors"
WAIT_MS = 60_000


@pytest.fixture
def window(qtbot, tmp_path):
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "user-settings"))
    win = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.directionsReady, timeout=WAIT_MS):  # the companion PCA set: style rows get directions
        win.open_model(str(DEFAULT_MODEL))
    wait_for_current_frame(qtbot, win)
    yield win
    win.shutdown()
    assert not win.projection_panel.is_running() and not win.controller._thread.isRunning()


@pytest.fixture(scope="module")
def portrait(tmp_path_factory) -> Path:
    """A plain PNG (no recipe) of one of the model's own faces, at photo size."""
    G = load_model(DEFAULT_MODEL, device="cpu")
    path = tmp_path_factory.mktemp("photos") / "portrait.png"
    Image.fromarray(Renderer(G).render(EditRecipe(seed=21)).raw).resize((192, 192), Image.Resampling.LANCZOS).save(path)
    return path


def test_dropped_photo_projects_off_the_gui_thread_and_is_one_undoable_step(qtbot, window, portrait):
    panel = window.projection_panel
    before = window.document.recipe
    drop_file_on(window, portrait)  # a PNG without a recipe: projected, not opened
    qtbot.waitUntil(lambda: panel.photo is not None, timeout=WAIT_MS)
    assert window.tabs.currentWidget() is panel and panel.roi.isVisible()
    moved = CropBox(100.0, 90.0, 150.0, 12.0)
    panel.set_box(moved)
    got = panel.box()
    assert (got.cx, got.cy, got.size, got.angle) == pytest.approx((100, 90, 150, 12), abs=1e-3)
    panel.set_box(CropBox(96.0, 96.0, 192.0, 0.0))

    panel.steps.setValue(5000)
    assert panel.start() and panel.is_running()
    qtbot.waitUntil(lambda: len(panel.history) >= 2, timeout=WAIT_MS)
    assert panel.reconstruction_view.image is not None and "s left" in panel.status.text()
    window.document.set_recipe(before.replace(seed=3), "Seed 3")  # the editor keeps rendering meanwhile
    wait_for_current_frame(qtbot, window)
    assert panel.is_running()
    with qtbot.waitSignal(panel.projected, timeout=WAIT_MS) as result:
        panel.stop()
    projection = result.args[0]
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=WAIT_MS)
    assert projection.reason == "cancelled" and projection.steps < 5000
    assert window.tabs.currentIndex() == 0
    stack = window.document.undo_stack
    assert stack.text(stack.index() - 1) == "Projected portrait.png"
    assert window.document.recipe.latent is not None
    shown = wait_for_current_frame(qtbot, window)
    assert np.array_equal(shown, projection.image)  # the editor shows what the panel reported

    latent_panel = window.latent_panel
    assert latent_panel.stored_latent.isVisibleTo(latent_panel)  # not shown as "seed 3"
    stack.undo()
    assert window.document.recipe.seed == 3 and window.document.recipe.latent is None
    assert not latent_panel.stored_latent.isVisibleTo(latent_panel)
    stack.redo()
    projected = window.document.recipe
    assert projected.latent == projection.recipe().latent
    row(window, 2).offset.setValue(2.0)  # the editor's controls edit the projected photo
    window.document.end_merge()
    edited = window.document.recipe
    assert edited.latent == projected.latent and [e.strength for e in edited.edits] == [2.0]
    after_style = wait_for_current_frame(qtbot, window)
    assert not np.array_equal(after_style, shown)
    row(window, 8).mix.setValue(1.0)
    assert window.document.recipe.latent == projected.latent and window.document.recipe.mix_weights(10)[8] == 1.0
    assert not np.array_equal(wait_for_current_frame(qtbot, window), after_style)


def test_a_short_run_finishes_and_bad_photos_are_messages(qtbot, window, portrait, tmp_path):
    panel = window.projection_panel
    window.project_photo(str(portrait))
    qtbot.waitUntil(lambda: panel.photo is not None, timeout=WAIT_MS)
    panel.steps.setValue(12)
    panel.space.setCurrentText("w+")
    with qtbot.waitSignal(panel.projected, timeout=WAIT_MS) as result:
        assert panel.start()
    assert result.args[0].steps == 12 and result.args[0].reason == "done" and "PSNR" in panel.status.text()
    qtbot.waitUntil(lambda: panel.start_button.isEnabled(), timeout=WAIT_MS)

    npz = save_projected_w(tmp_path / "projected_w.npz", result.args[0].latent)  # File > Open takes latents too
    window.open_path(str(npz))
    assert window.document.recipe.latent == result.args[0].recipe().latent
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, w=np.zeros((1, 2, 2), np.float32))
    window.open_path(str(wrong))
    assert "this model needs" in window.last_error

    bad = tmp_path / "broken.jpg"
    bad.write_text("not a photo")
    window.open_path(str(bad))
    qtbot.waitUntil(lambda: panel.last_error is not None, timeout=WAIT_MS)
    assert "broken.jpg" in panel.last_error and "Cannot open" in panel.crop_label.text()
    assert panel.photo is not None  # the previous photo stays
