"""The editor window, driven through its real widgets on the CPU, offscreen (pytest-qt)."""
from __future__ import annotations

import dataclasses
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QTimer, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from latentstudio.engine.recipe import EditRecipe, compose_ws  # noqa: E402
from latentstudio.engine.renderer import Renderer  # noqa: E402
from latentstudio.gui import render_worker  # noqa: E402
from latentstudio.gui.main_window import MainWindow  # noqa: E402
from latentstudio.nets.layout import layer_groups, ws_layout  # noqa: E402

import torch  # noqa: E402

from conftest import lively_copy  # noqa: E402

MODEL = "sg2_cond64.pkl"  # the largest fixture: 64x64, conditional, 10 ws layers
WAIT_MS = 60_000


@pytest.fixture(scope="session")
def lively_model(tmp_path_factory, fixtures_dir):
    """The 64x64 fixture with the spread of a trained mapping network (see ``lively_copy``)."""
    return lively_copy(fixtures_dir / MODEL, tmp_path_factory.mktemp("models") / "lively64.safetensors")


@pytest.fixture
def settings(tmp_path):
    """Settings in a temporary folder, so tests never touch the user's."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "user-settings"))
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, settings, lively_model):
    """An editor on the 64x64 model with its first frame and principal directions ready."""
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.directionsReady, timeout=WAIT_MS):
        win.open_model(lively_model)
    wait_for_current_frame(qtbot, win)
    yield win
    win.shutdown()
    assert not win.controller._thread.isRunning()


def wait_for_current_frame(qtbot, win: MainWindow) -> np.ndarray:
    """Wait until the frame on screen shows the document's current recipe; its pixels."""
    qtbot.waitUntil(lambda: win.current_frame() is not None, timeout=WAIT_MS)
    return win.current_frame().image.copy()


def drop_file_on(win: MainWindow, path) -> None:
    """Drag-and-drop ``path`` onto the window, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    centre = win.rect().center()
    # The drop is delivered after an accepted enter; PySide6 types the two positions differently.
    for event_class, position in ((QDragEnterEvent, centre), (QDropEvent, QPointF(centre))):
        event = event_class(position, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(win, event)
        assert event.isAccepted()


def row(win: MainWindow, layer: int):
    return next(r for r in win.styles_panel.rows if r.layer == layer)


def test_layer_slider_changes_image_and_undo_redo_restore_identical_pixels(qtbot, window):
    before = wait_for_current_frame(qtbot, window)
    steps_before = window.document.undo_stack.count()
    slider = row(window, 2).offset
    for value in (0.5, 1.0, 2.0, 3.0):  # one drag: several values, one undo step
        slider.setValue(value)
    window.document.end_merge()
    assert window.document.undo_stack.count() == steps_before + 1
    (edit,) = window.document.recipe.edits
    assert (edit.first_layer, edit.last_layer, edit.strength) == (2, 2, 3.0)
    after = wait_for_current_frame(qtbot, window)
    assert not np.array_equal(before, after)

    window.document.undo_stack.undo()
    assert slider.value() == 0.0  # the widget follows the document
    np.testing.assert_array_equal(wait_for_current_frame(qtbot, window), before)
    window.document.undo_stack.redo()
    assert slider.value() == 3.0
    np.testing.assert_array_equal(wait_for_current_frame(qtbot, window), after)

    row(window, 8).mix.setValue(1.0)  # a mixing slider changes the image too
    assert window.document.recipe.mix_weights(10)[8] == 1.0
    assert not np.array_equal(wait_for_current_frame(qtbot, window), after)
    # Layer 8 is the last conv1: only it and the last toRGB re-ran, and the status bar says so.
    assert window.time_label.text().endswith(" ms · 2/14 layers"), window.time_label.text()


def test_direction_combo_widens_for_named_directions_and_its_popup_shows_them_whole(window):
    combo = row(window, 2).direction
    numbered_width = combo.sizeHint().width()
    pca = window.document.direction_sets[0]
    window.document.direction_sets[0] = dataclasses.replace(pca, names=["head turn"] + pca.names[1:])
    window.document.directionsChanged.emit()
    assert combo.findText("head turn") == 0
    assert combo.sizeHint().width() > numbered_width  # "head turn" is not cut to "head "
    widths = {}
    for name in ("glasses + hat", "glasses and a smile"):  # past the cap, the combo stops growing
        window.document.direction_sets[0] = dataclasses.replace(pca, names=[name] + pca.names[1:])
        window.document.directionsChanged.emit()
        widths[name] = combo.sizeHint().width()
        assert combo.view().minimumWidth() >= combo.fontMetrics().horizontalAdvance(name)  # popup: whole
    assert widths["glasses + hat"] == widths["glasses and a smile"] > numbered_width


def test_fine_from_b_is_the_engine_style_mixing(qtbot, window):
    G = window.document.model
    base = window.document.recipe
    qtbot.mouseClick(window.styles_panel.from_b_buttons["fine"], Qt.MouseButton.LeftButton)
    shown = wait_for_current_frame(qtbot, window)

    fine = layer_groups(ws_layout(G), G.info.resolution)["fine"]
    expected = base.with_layers_from_b(fine, G.num_ws, mix_seed=window.styles_panel.seed_b.value())
    assert window.document.recipe == expected
    np.testing.assert_array_equal(shown, Renderer(G).render(expected).image)

    ws = compose_ws(G, expected)
    ws_a = compose_ws(G, base.replace(mix_seed=None, mix=()))
    ws_b = compose_ws(G, base.replace(seed=expected.mix_seed, mix_seed=None, mix=()))
    coarse_and_middle = [i for i in range(G.num_ws) if i not in fine]
    torch.testing.assert_close(ws[0, fine], ws_b[0, fine], rtol=0, atol=0)  # lerp is exact at 1
    torch.testing.assert_close(ws[0, coarse_and_middle], ws_a[0, coarse_and_middle], rtol=0, atol=0)
    assert not torch.allclose(ws_a[0, fine], ws_b[0, fine])  # B really differs from A there


def test_export_then_reopen_png_restores_recipe_and_pixels(qtbot, window, tmp_path):
    window.latent_panel.seed.setValue(3)
    row(window, 4).offset.setValue(-1.5)
    exported_recipe = window.document.recipe
    pixels = wait_for_current_frame(qtbot, window)
    path = window.export_image(str(tmp_path / "edit.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), pixels)

    window.latent_panel.seed.setValue(7)
    assert not np.array_equal(wait_for_current_frame(qtbot, window), pixels)
    drop_file_on(window, path)  # dropping the PNG on the window re-opens it
    assert window.document.recipe == exported_recipe
    np.testing.assert_array_equal(wait_for_current_frame(qtbot, window), pixels)

    big = window.export_image(str(tmp_path / "edit4x.png"), scale=4)
    assert Image.open(big).size == (256, 256)


def test_corrupt_model_shows_the_error_and_keeps_the_old_model(qtbot, window, tmp_path):
    G = window.document.model
    pixels = wait_for_current_frame(qtbot, window)
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(b"\x80\x04\x95 this is not a network pickle")
    with qtbot.waitSignal(window.modelFailed, timeout=WAIT_MS) as failure:
        window.open_model(str(bad))
    assert str(bad) in failure.args[0]
    boxes = [box for box in window.findChildren(QMessageBox) if box.isVisible()]
    assert boxes and str(bad) in boxes[0].text()
    assert window.document.model is G and window.document.model_path.endswith("lively64.safetensors")
    np.testing.assert_array_equal(window.image_view.image, pixels)
    window.latent_panel.step_seed(1)  # still editing the old model
    assert not np.array_equal(wait_for_current_frame(qtbot, window), pixels)


def test_hostile_files_show_one_line_and_keep_the_model(qtbot, window, tmp_path):
    """A named pipe (which would block an open() forever), a pickle nested 100 000 deep, a
    recipe JSON nested 100 000 deep and a PNG decompression bomb: each gives one short line
    in a dialog, and the editor keeps its model and its image."""
    G, pixels = window.document.model, wait_for_current_frame(qtbot, window)
    fifo = tmp_path / "pipe.pkl"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.pkl"
    deep.write_bytes(b"\x80\x04" + b"]" * 100_000 + b"a" * 99_999 + b".")
    for model in (fifo, deep):
        with qtbot.waitSignal(window.modelFailed, timeout=WAIT_MS) as failure:
            window.open_model(str(model))
        message = failure.args[0]
        assert message.startswith(str(model)) and "\n" not in message and len(message) <= 300
    assert "named pipe" in window.last_error or "nests deeper" in window.last_error
    recipe = tmp_path / "deep.json"
    recipe.write_text("[" * 100_000 + "]" * 100_000)
    window.open_path(str(recipe))
    assert window.last_error.startswith(str(recipe)) and "nested" in window.last_error
    bomb = tmp_path / "bomb.png"
    Image.new("1", (30_000, 30_000)).save(bomb)  # 900 megapixels in about 100 kB
    window.open_path(str(bomb))
    assert window.last_error.startswith(str(bomb)) and "\n" not in window.last_error
    boxes = [box for box in window.findChildren(QMessageBox) if box.isVisible()]
    assert boxes and all("\n" not in box.text() and len(box.text()) <= 300 for box in boxes)
    assert window.document.model is G
    np.testing.assert_array_equal(window.image_view.image, pixels)


class _HeavyRenderer(Renderer):
    """A renderer whose frames also synthesise a batch of 32: real network work that takes
    as long as a frame of a much larger model, so an event-loop stall is measurable against it."""

    def synthesize(self, ws, recipe, *args, **kwargs):
        self.G.synthesis(ws.repeat(32, 1, 1), noise_mode=recipe.noise_mode)
        return super().synthesize(ws, recipe, *args, **kwargs)


def test_event_loop_keeps_running_during_a_burst_of_slider_changes(qtbot, window, monkeypatch):
    monkeypatch.setattr(render_worker, "Renderer", _HeavyRenderer)
    window.controller.set_model(window.document.model)  # the thread now renders with it
    window.controller.request(window.document.recipe)
    wait_for_current_frame(qtbot, window)

    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    heartbeat.start(5)
    render_ms: list[float] = []
    window.frameShown.connect(lambda frame: render_ms.append(frame.timings["wall_ms"]))
    values = iter(np.linspace(0.1, 3.0, 30))
    slider = row(window, 5).offset

    def drag_step() -> None:
        value = next(values, None)
        if value is None:
            dragger.stop()
        else:
            slider.setValue(float(value))

    dragger = QTimer()
    dragger.timeout.connect(drag_step)
    dragger.start(15)
    qtbot.waitUntil(lambda: not dragger.isActive(), timeout=WAIT_MS)
    wait_for_current_frame(qtbot, window)
    heartbeat.stop()

    assert window.document.recipe.edits[0].strength == pytest.approx(3.0)
    assert 1 <= len(render_ms) < 30  # latest wins: no backlog of one render per change
    worst_stall_ms = 1e3 * max(np.diff(beats))
    assert worst_stall_ms < 0.5 * statistics.median(render_ms), (worst_stall_ms, render_ms)


def test_layout_and_recent_files_persist(qtbot, window, settings):
    window.latent_dock.hide()
    window.close()
    again = MainWindow(settings=settings)
    qtbot.addWidget(again)
    assert again.recent_files()[0].endswith("lively64.safetensors")
    assert again.latent_dock.isHidden()
    again.shutdown()


def test_closing_cancels_a_running_direction_computation(qtbot, window):
    """Shutting down must not sit out a long PCA: the computation is cancelled first."""
    panel = window.directions_panel
    sets_before = list(window.document.direction_sets)
    panel.samples.setValue(1_000_000)
    with qtbot.waitSignal(panel.failed, timeout=WAIT_MS) as blocker:
        panel.compute_button.click()
        assert panel.cancel_button.isEnabled()
        window.shutdown()
    assert blocker.args[0] == "Cancelled." and window.document.direction_sets == sets_before
