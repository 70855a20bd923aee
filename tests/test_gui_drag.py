"""The editor's Drag tool, driven through the real window offscreen: points, mask, run, stop, undo."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPointF, QSettings, Qt, QTimer  # noqa: E402

from latentstudio.defaults import DEFAULT_MODEL  # noqa: E402
from latentstudio.gui.drag_tool import undo_text  # noqa: E402
from latentstudio.gui.main_window import MainWindow  # noqa: E402

WAIT_MS = 60_000


@pytest.fixture
def window(qtbot, tmp_path):
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "user-settings"))
    win = MainWindow(settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.modelLoaded, timeout=WAIT_MS):
        win.open_model(str(DEFAULT_MODEL))
    qtbot.waitUntil(lambda: win.current_frame() is not None, timeout=WAIT_MS)
    yield win
    win.shutdown()
    assert win.drag_tool.worker is None or not win.drag_tool.running


def on_screen(win: MainWindow, x: float, y: float):
    """The viewport position of image pixel (x, y)'s centre."""
    view = win.image_view
    return view.mapFromScene(view.view_box.mapViewToScene(QPointF(x + 0.5, y + 0.5)))


def click(qtbot, win: MainWindow, x: float, y: float, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.mouseClick(win.image_view.viewport(), Qt.MouseButton.LeftButton, modifier, on_screen(win, x, y))


def test_clicks_place_handles_and_targets_and_a_drag_moves_a_point(qtbot, window):
    tool = window.drag_tool
    qtbot.keyClick(window, Qt.Key.Key_D)  # the tool's shortcut
    assert tool.action.isChecked() and window.image_view.tool is tool
    click(qtbot, window, 20, 30)
    assert tool.handles == [[20, 30]] and tool.targets == [] and "target" in tool.pair_label.text()
    click(qtbot, window, 26, 30)
    click(qtbot, window, 40, 12)
    click(qtbot, window, 41, 16)
    assert tool.handles == [[20, 30], [40, 12]] and tool.targets == [[26, 30], [41, 16]]
    assert tool.overlay.handles.data["x"].tolist() == [20.5, 40.5] and len(tool.overlay.heads) == 2

    # Press on a placed point and drag it elsewhere.
    viewport = window.image_view.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=on_screen(window, 41, 16))
    qtbot.mouseMove(viewport, on_screen(window, 44, 18))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=on_screen(window, 44, 18))
    assert tool.targets == [[26, 30], [44, 18]] and len(tool.handles) == 2

    tool.reset_points()
    assert tool.handles == tool.targets == [] and not tool.start_button.isEnabled()


def test_the_mask_brush_paints_and_shift_erases(qtbot, window):
    tool = window.drag_tool
    tool.action.setChecked(True)
    tool.brush.setChecked(True)
    tool.brush_size.setValue(3)
    viewport = window.image_view.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=on_screen(window, 10, 10))
    qtbot.mouseMove(viewport, on_screen(window, 30, 10))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=on_screen(window, 30, 10))
    assert tool.mask is not None and tool.mask[10, 10] and tool.mask[10, 30] and not tool.mask[40, 40]
    assert tool.handles == []  # painting places no point
    click(qtbot, window, 10, 10, Qt.KeyboardModifier.ShiftModifier)
    assert not tool.mask[10, 10] and tool.mask[10, 30]
    tool.clear_mask()
    assert tool.mask is None


def test_a_short_drag_is_one_undo_step_and_undo_restores_the_recipe_exactly(qtbot, window):
    tool = window.drag_tool
    before = window.document.recipe
    tool.add_pair((30, 30), (36, 30))
    tool.steps.setValue(8)
    images, beats = [], []
    tool._bridge.step.connect(lambda progress: images.append(progress.image))
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: beats.append(0))
    heartbeat.start(10)
    with qtbot.waitSignal(tool.finished, timeout=WAIT_MS) as finished:
        tool.start()
        assert tool.running and not tool.start_button.isEnabled() and tool.stop_button.isEnabled()
    heartbeat.stop()
    result = finished.args[0]
    assert window.document.recipe == result.recipe and result.recipe.latent is not None
    assert window.document.undo_stack.undoText() == undo_text(1, result.steps)
    assert undo_text(2, 40) == "Drag, 2 points, 40 steps"
    assert len(images) >= result.steps and images[-1].shape[:2] == (window.document.model.img_resolution,) * 2
    assert len(beats) > 0  # the event loop kept running during the drag
    assert tool.handles == [list(p) for p in result.points]  # a new Start continues from here
    qtbot.waitUntil(lambda: not tool.running, timeout=WAIT_MS)
    assert tool.start_button.isEnabled()

    window.document.undo_stack.undo()
    assert window.document.recipe == before
    window.document.undo_stack.redo()
    assert window.document.recipe == result.recipe
    window.latent_panel.step_seed(1)  # picking a seed shows that seed, not the dragged latent
    assert window.document.recipe.latent is None and window.document.recipe.seed == before.seed + 1


def prepare_long_drag(tool) -> list:
    """A pair too far apart to arrive soon and a large step budget; the list receives each step."""
    tool.add_pair((20, 40), (44, 20))
    tool.steps.setValue(5000)
    steps: list = []
    tool._bridge.step.connect(steps.append)
    return steps


def test_stop_ends_the_drag_and_keeps_what_it_reached(qtbot, window):
    tool = window.drag_tool
    before = window.document.recipe
    steps = prepare_long_drag(tool)
    with qtbot.waitSignal(tool.finished, timeout=WAIT_MS) as finished:
        tool.start()
        qtbot.waitUntil(lambda: len(steps) >= 1, timeout=WAIT_MS)
        with qtbot.waitSignal(window.controller.batchReady, timeout=WAIT_MS):  # the renderer keeps serving
            window.controller.request_batch("probe", [before.replace(seed=s) for s in range(4)])
        assert tool.running
        qtbot.waitUntil(lambda: len(steps) >= 3, timeout=WAIT_MS)
        tool.stop_button.click()
    result = finished.args[0]
    assert result.reason == "cancelled" and 3 <= result.steps < 5000
    assert "Stopped" in tool.status.text()
    window.document.undo_stack.undo()
    assert window.document.recipe == before


def test_changing_the_recipe_during_a_drag_discards_it(qtbot, window):
    tool = window.drag_tool
    steps = prepare_long_drag(tool)
    with qtbot.waitSignal(tool.failed, timeout=WAIT_MS) as failed:
        tool.start()
        qtbot.waitUntil(lambda: len(steps) >= 1, timeout=WAIT_MS)
        window.latent_panel.step_seed(1)
    assert "discarded" in failed.args[0]
    qtbot.waitUntil(lambda: not tool.running, timeout=WAIT_MS)
    assert window.document.recipe.latent is None and not window.document.undo_stack.undoText().startswith("Drag")
    assert np.isfinite(np.asarray(tool.handles)).all()


def test_shutting_down_stops_a_running_drag(qtbot, window):
    tool = window.drag_tool
    steps = prepare_long_drag(tool)
    tool.start()
    qtbot.waitUntil(lambda: len(steps) >= 1, timeout=WAIT_MS)
    window.shutdown()  # cancels the drag and waits for the worker pool
    qtbot.waitUntil(lambda: not tool.running, timeout=WAIT_MS)
    assert len(steps) < 5000 and not window.document.undo_stack.undoText().startswith("Drag")
