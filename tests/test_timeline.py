"""The Timeline dock in the real editor window, offscreen: keys, reorder, scrub, play, export."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, QSettings  # noqa: E402
from PySide6.QtWidgets import QPushButton  # noqa: E402

from latentstudio.defaults import DEFAULT_MODEL  # noqa: E402
from latentstudio.engine.animation_sampler import AnimationSampler  # noqa: E402
from latentstudio.engine.renderer import Renderer  # noqa: E402
from latentstudio.engine.video import read_video_animation  # noqa: E402
from latentstudio.gui import session  # noqa: E402
from latentstudio.gui.main_window import MainWindow  # noqa: E402

WAIT_MS = 60_000


@pytest.fixture
def settings(tmp_path):
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "user-settings"))
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


def open_window(qtbot, settings) -> MainWindow:
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.directionsReady, timeout=WAIT_MS):
        win.open_model(str(DEFAULT_MODEL))
    qtbot.waitUntil(lambda: win.current_frame() is not None, timeout=WAIT_MS)
    return win


@pytest.fixture
def window(qtbot, settings):
    win = open_window(qtbot, settings)
    yield win
    win.shutdown()


def add_keys(qtbot, window, seeds, frames=4):
    panel = window.timeline_panel
    for seed in seeds:
        window.latent_panel.seed.setValue(seed)
        panel.add_button.click()
    for row in range(panel.strip.count()):
        panel.strip.setCurrentRow(row)
        panel.frames_spin.setValue(frames)
    qtbot.waitUntil(panel.has_thumbnails, timeout=WAIT_MS)
    return panel


def test_add_reorder_and_undo_keyframes(qtbot, window):
    panel = add_keys(qtbot, window, [3, 5, 9])
    assert [key.recipe.seed for key in window.document.timeline.keyframes] == [3, 5, 9]
    assert all(not panel.strip.item(row).icon().isNull() for row in range(3))  # thumbnails
    assert panel.strip.item(0).text() == "1 · seed 3"
    panel.strip.keyMoved.emit(0, 2)  # what dropping the first thumbnail on the last does
    assert [key.recipe.seed for key in window.document.timeline.keyframes] == [5, 9, 3]
    assert panel.strip.item(2).text() == "3 · seed 3" and panel.strip.currentRow() == 2
    window.document.undo_stack.undo()
    assert [key.recipe.seed for key in window.document.timeline.keyframes] == [3, 5, 9]
    assert window.document.undo_stack.undoText() == "Keyframe 3 duration"  # a spin-box drag is one step
    panel.loop.setChecked(True)
    assert window.document.timeline.loop and panel.animation().num_frames == 12
    window.document.undo_stack.undo()
    assert not panel.loop.isChecked()  # the widget follows the document
    panel.space.setCurrentIndex(panel.space.findData("z"))
    assert (window.document.timeline.space, window.document.timeline.interpolation) == ("z", "linear")
    assert panel.interpolation.currentData() == "linear"
    window.document.undo_stack.undo()
    window.styles_panel.rows[0].offset.setValue(1.0)  # an edited key cannot be interpolated in z
    panel.update_button.click()
    messages = []
    panel.message.connect(messages.append)
    panel.space.setCurrentIndex(panel.space.findData("z"))
    assert window.document.timeline.space == "w" and panel.space.currentData() == "w"
    assert "plain seeds" in messages[-1]


def test_scrubbing_shows_the_frame_in_the_main_view(qtbot, window):
    panel = add_keys(qtbot, window, [1, 4], frames=6)
    panel.scrubber.setValue(3)
    qtbot.waitUntil(lambda: window.frame is not None and window.frame.frame_index == 3, timeout=WAIT_MS)
    renderer = Renderer(window.document.model)
    expected = renderer.render(AnimationSampler(renderer, panel.animation()).frame_recipe(3)).image
    np.testing.assert_array_equal(window.image_view.image, expected)
    assert panel.position.text().startswith("4/7")
    assert window.current_frame() is None  # a timeline frame is not the editor's recipe...
    window.latent_panel.seed.setValue(8)  # ...and an edit takes the view back
    qtbot.waitUntil(lambda: window.current_frame() is not None, timeout=WAIT_MS)


def test_play_runs_through_frames_and_shows_the_achieved_rate(qtbot, window):
    panel = add_keys(qtbot, window, [2, 6], frames=8)
    shown = []
    window.frameShown.connect(lambda frame: shown.append(frame.frame_index))
    panel.play_button.click()
    assert panel.playing and panel.play_button.text() == "Stop"
    qtbot.waitUntil(lambda: not panel.playing, timeout=WAIT_MS)  # not looping: stops at the end
    assert shown[-1] == 8 and sorted(set(shown)) == shown  # every frame in order
    assert panel.rate.text().endswith(" fps") and 0 < panel.achieved_fps() <= 30 * 1.25


def test_export_video_in_the_background_then_reopen_it(qtbot, window, tmp_path):
    panel = add_keys(qtbot, window, [0, 7], frames=5)
    path = tmp_path / "walk.mp4"
    with qtbot.waitSignal(panel.exported, timeout=WAIT_MS):
        assert panel.export_video(str(path))
        assert panel.progress_dialog is not None and panel.progress_dialog.isVisible()
        window.latent_panel.seed.setValue(11)  # the editor keeps working meanwhile
    qtbot.waitUntil(lambda: not panel.exporting, timeout=WAIT_MS)
    import av

    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6
    assert read_video_animation(path)[0] == panel.animation()

    expected = window.document.timeline
    panel.remove_key(0)
    panel.remove_key(0)
    assert not window.document.timeline.keyframes
    window.open_path(str(path))  # opening the video puts its animation back on the timeline
    assert window.document.timeline == expected


def test_cancelled_export_leaves_no_file(qtbot, window, tmp_path):
    panel = add_keys(qtbot, window, [0, 1, 2, 3], frames=400)
    (tmp_path / "videos").mkdir()
    path = tmp_path / "videos" / "long.mp4"
    with qtbot.waitSignal(panel.exportFailed, timeout=WAIT_MS) as failure:
        panel.export_video(str(path))
        qtbot.waitUntil(lambda: panel.progress_dialog.value() > 0, timeout=WAIT_MS)
        panel.progress_dialog.findChild(QPushButton).click()  # its Cancel button
    assert "cancelled" in failure.args[0]
    qtbot.waitUntil(lambda: not panel.exporting, timeout=WAIT_MS)
    assert list((tmp_path / "videos").iterdir()) == []  # no video, no temporary file


def test_animate_this_direction_from_a_slider(qtbot, window):
    directions = window.directions_panel
    directions.add_selected()
    strength = directions.rows[0].strength
    strength.customContextMenuRequested.emit(QPoint(4, 4))  # a right-click
    (action,) = strength.context_menu.actions()
    assert action.text() == "Animate this direction"
    action.trigger()
    keys = window.document.timeline.keyframes
    assert [key.recipe.edits[-1].strength for key in keys] == [-3.0, 3.0] and window.document.timeline.loop
    assert len(keys[0].recipe.edits) == 1  # the slider's own edit is swept, not added twice
    offset = window.styles_panel.rows[0].offset  # a per-layer offset slider: that layer only
    offset.customContextMenuRequested.emit(QPoint(4, 4))
    offset.context_menu.actions()[0].trigger()
    edit = window.document.timeline.keyframes[1].recipe.edits[-1]
    assert (edit.first_layer, edit.last_layer, edit.strength) == (0, 0, 3.0)
    window.document.undo_stack.undo()
    assert window.document.timeline.keyframes == keys


def test_timeline_is_saved_and_restored_with_the_session(qtbot, settings, tmp_path):
    first = open_window(qtbot, settings)
    add_keys(qtbot, first, [4, 2], frames=7)
    first.timeline_panel.easing.setCurrentIndex(first.timeline_panel.easing.findData("ease-in-out"))
    timeline, recipe = first.document.timeline, first.document.recipe
    first.close()  # keeps the last session
    assert session.last_session_path(settings).is_file()

    second = open_window(qtbot, settings)
    try:
        assert not second.document.timeline.keyframes
        with qtbot.waitSignal(second.modelLoaded, timeout=WAIT_MS):
            second.open_path(str(session.last_session_path(settings)))
        assert second.document.timeline == timeline and second.document.recipe == recipe
        second.document.undo_stack.undo()  # restoring is an undoable step too
        assert not second.document.timeline.keyframes
    finally:
        second.shutdown()


def test_bad_session_files_are_one_line_errors(tmp_path):
    for name, text, message in [
        ("a.lsession", "not json", "cannot read"),
        ("b.lsession", '{"format": "something-else"}', "not a latentstudio session"),
        ("c.lsession", '{"format": "latentstudio-session", "version": 1, "recipe": {"version": 1}, "timeline": {"settings": {"fps": "x"}}}', "fps"),
        ("d.lsession", '{"format": "latentstudio-session", "version": 1, "recipe": {"seed": -5, "version": 1}}', "seed"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(session.SessionError, match=message):
            session.read_session(tmp_path / name)
    with pytest.raises(session.SessionError, match="no such session"):
        session.read_session(tmp_path / "missing.lsession")
