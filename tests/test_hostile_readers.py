"""The readers of photos, masks, projected-W files, animations, sessions, VGG16 weights and run
folders treat every file as hostile: a named pipe, a folder, a truncated or garbage file, a
decompression bomb, deep or huge JSON, wrong arrays are each one line naming the file and the
problem, promptly, with nothing large read, inflated or decoded; the editor and the Training
tab show that line and keep working."""
from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from test_hostile_inputs import fifo, inflated_size, one_line  # noqa: E402
from test_timeline import open_window, settings  # noqa: E402, F401

from latentstudio.engine import photo  # noqa: E402
from latentstudio.engine.animation import MAX_FILE_BYTES, Animation, AnimationError  # noqa: E402
from latentstudio.engine.drag import DragError, load_mask  # noqa: E402
from latentstudio.engine.projected_w import MAX_FILE_BYTES as MAX_W_BYTES  # noqa: E402
from latentstudio.engine.projected_w import ProjectedWError, load_projected_w  # noqa: E402
from latentstudio.engine.projection_losses import MAX_VGG16_BYTES, LossUnavailable, load_vgg16  # noqa: E402
from latentstudio.engine.recipe import EditRecipe  # noqa: E402
from latentstudio.engine.video import read_video_animation  # noqa: E402
from latentstudio.untrusted import prefixed, read_image  # noqa: E402

DEEP = "[" * 100_000 + "]" * 100_000


@contextmanager
def promptly(seconds: int = 10):
    """Fail instead of hanging: a reader that opens a FIFO blocks until SIGALRM interrupts it."""
    def late(*_):
        raise TimeoutError(f"still reading after {seconds} s: a pipe must be refused, not opened")

    previous = signal.signal(signal.SIGALRM, late)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(read, error_type: type[Exception], cases: dict[Path, str]) -> None:
    """Each path of ``cases`` gives one ``error_type`` line that names it and holds its phrase."""
    for path, phrase in cases.items():
        with promptly(), pytest.raises(error_type) as caught:
            read(path)
        one_line(caught.value, path, phrase)


def sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (for size caps)."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A 100-byte grey PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(4096)))
                     + chunk(b"IEND", b""))
    return path


def image_cases(tmp_path: Path, what: str) -> dict[Path, str]:
    """What every image reader must refuse, and the phrase that says why."""
    Image.new("RGB", (64, 64), (200, 10, 10)).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:80])
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "vector.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\nshowpage\n")
    return {
        fifo(tmp_path / "pipe.png"): "named pipe",
        tmp_path: "a folder",
        tmp_path / "missing.png": "no such file",
        tmp_path / "cut.png": f"not a readable {what}: cannot be read",
        tmp_path / "text.png": "not an image",
        tmp_path / "vector.eps": "not an image",  # Pillow's EPS reader (Ghostscript) never sees it
        png_claiming(tmp_path / "bomb.png", 100_000, 100_000): "decompression bomb",  # Pillow's own limit
        png_claiming(tmp_path / "big.png", 9_000, 9_000): "9000x9000 pixels, more than",  # ours, below Pillow's
    }


# -- photos and masks ------------------------------------------------------------------------------
def test_photos_refuse_pipes_bombs_and_damaged_files(tmp_path):
    cases = image_cases(tmp_path, "photo")
    cases[sparse(tmp_path / "huge.tif", photo.MAX_BYTES + 1)] = "more than a photo can be"
    refused(photo.read_photo, photo.PhotoError, cases)
    assert photo.read_photo(tmp_path / "whole.png").shape == (64, 64, 3)


def test_masks_refuse_pipes_bombs_and_damaged_files(tmp_path):
    refused(lambda path: load_mask(path, 64), DragError, image_cases(tmp_path, "mask image"))
    Image.new("L", (64, 64), 255).save(tmp_path / "mask.png")
    assert load_mask(tmp_path / "mask.png", 64).all()


def test_read_image_counts_jpeg_pixels_at_their_draft_scale(tmp_path):
    Image.new("RGB", (1200, 800), (1, 2, 3)).save(tmp_path / "camera.jpg")
    with read_image(tmp_path / "camera.jpg", 1 << 20, 300 * 200, prefixed(ValueError), "photo", draft=(150, 150)) as picture:
        assert picture.size == (300, 200)  # decoded at 1/4, the most that keeps 150 x 150: under the cap
    with pytest.raises(ValueError, match="1200x800 pixels, more than a photo may have"):
        read_image(tmp_path / "camera.jpg", 1 << 20, 300 * 200, prefixed(ValueError), "photo")


# -- projected W ---------------------------------------------------------------------------------
def test_projected_w_files_are_checked_before_anything_is_inflated(tmp_path):
    def npz(name: str, **arrays) -> Path:
        np.savez(tmp_path / name, **arrays)
        return tmp_path / name

    good = npz("good.npz", w=np.zeros((1, 4, 8), np.float32))
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:-30])
    (tmp_path / "text.npz").write_text("not a zip")
    cases = {
        fifo(tmp_path / "pipe.npz"): "named pipe",
        tmp_path: "a folder",
        tmp_path / "cut.npz": "or a damaged one",
        tmp_path / "text.npz": "not a projected-W (.npz) file",
        inflated_size(npz("bomb.npz", w=np.zeros((1, 4, 8), np.float32)), MAX_W_BYTES + 1): "inflates to more than",
        npz("ints.npz", w=np.zeros((1, 4, 8), np.int32)): "must hold floats, not int32",
        npz("complex.npz", w=np.zeros((1, 4, 8), np.complex64)): "must hold floats",
        npz("objects.npz", w=np.array([None, {"evil": 1}], dtype=object)): "holds Python objects",
        npz("shape.npz", w=np.zeros((2, 2, 4, 8), np.float32)): "must be [N, num_ws, w_dim]",
        npz("empty.npz", w=np.zeros((1, 0, 8), np.float32)): "must be [N, num_ws, w_dim]",
        npz("model.npz", w=np.zeros((1, 5, 8), np.float32)): "this model needs 4 x 8",
        npz("nan.npz", w=np.full((1, 4, 8), np.nan, np.float32)): "NaN or infinite",
        npz("inf.npz", w=np.full((1, 4, 8), np.inf, np.float64)): "NaN or infinite",
        npz("other.npz", latent=np.zeros((1, 4, 8), np.float32)): "no 'w' array (found: latent)",
    }
    refused(lambda path: load_projected_w(path, 4, 8), ProjectedWError, cases)
    assert load_projected_w(good, 4, 8).shape == (1, 4, 8)


# -- animations and video sidecars ---------------------------------------------------------------
def animation_text(**changes) -> str:
    data = Animation.of([EditRecipe(seed=1), EditRecipe(seed=2)], 4).to_dict()
    return json.dumps({**data, **changes})


def test_animation_files_and_sidecars_are_bounded(tmp_path):
    (tmp_path / "deep.json").write_text(DEEP)
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "fps.json").write_text(animation_text(fps=10**400))
    (tmp_path / "tracks.json").write_text(animation_text(tracks={"a": 1}))
    (tmp_path / "walk.gif").write_bytes(b"GIF89a")
    fifo(tmp_path / "walk.gif.json")
    (tmp_path / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + os.urandom(200))
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "animation.json").mkdir()
    cases = {
        fifo(tmp_path / "pipe.json"): "named pipe",
        fifo(tmp_path / "pipe.mp4"): "named pipe",  # FFmpeg never opens it
        tmp_path / "walk.gif": "named pipe",  # its sidecar
        frames: "a folder",  # its animation.json
        tmp_path / "clip.mp4": "not a readable video",
        tmp_path / "deep.json": "nested 100000 levels deep",
        sparse(tmp_path / "huge.json", MAX_FILE_BYTES + 1): "more than a animation file can be",
        tmp_path / "bad.json": "not UTF-8",
        tmp_path / "fps.json": "malformed animation",
        tmp_path / "tracks.json": "tracks must be a list",
        tmp_path / "missing.mp4": "no such file",
    }
    refused(read_video_animation, AnimationError, cases)
    with pytest.raises(AnimationError) as caught:
        Animation.from_json(DEEP)
    assert "nested 100000 levels deep" in str(caught.value) and "\n" not in str(caught.value)
    (tmp_path / "good.json").write_text(animation_text())
    assert read_video_animation(tmp_path / "good.json")[0].num_frames == 5


# -- sessions ------------------------------------------------------------------------------------
def session_cases(tmp_path: Path) -> dict[Path, str]:
    (tmp_path / "deep.lsession").write_text(DEEP)
    (tmp_path / "garbage.lsession").write_bytes(os.urandom(300))
    (tmp_path / "version.lsession").write_text(json.dumps({"format": "latentstudio-session", "version": "x" * 100_000}))
    folder = tmp_path / "folder.lsession"
    folder.mkdir()
    return {
        fifo(tmp_path / "pipe.lsession"): "named pipe",
        folder: "a folder",
        tmp_path / "deep.lsession": "nested 100000 levels deep",
        tmp_path / "garbage.lsession": "cannot read the session",
        tmp_path / "version.lsession": "is not supported",
        sparse(tmp_path / "huge.lsession", MAX_FILE_BYTES + 1): "more than a session file can be",
    }


def test_session_files_are_bounded(tmp_path):
    from latentstudio.gui import session

    refused(session.read_session, session.SessionError, session_cases(tmp_path))
    with promptly():
        assert not session.is_animation_file(fifo(tmp_path / "pipe.json"))


def test_the_editor_shows_a_bad_session_in_one_line_and_keeps_everything(qtbot, tmp_path, settings):
    from latentstudio.gui import session

    window = open_window(qtbot, settings)
    try:
        window.latent_panel.seed.setValue(7)
        qtbot.waitUntil(lambda: window.document.recipe.seed == 7, timeout=60_000)
        model, recipe, timeline = window.document.model, window.document.recipe, window.document.timeline
        (tmp_path / "cases").mkdir()
        cases = session_cases(tmp_path / "cases")
        cases[fifo(tmp_path / "cases" / "pipe.mp4")] = "named pipe"
        cases[tmp_path / "cases" / "deep.json"] = "nested"
        (tmp_path / "cases" / "deep.json").write_text('{"format": "latentstudio-animation", "tracks": ' + DEEP + "}")
        for path, phrase in cases.items():
            window.last_error = None
            with promptly():
                session.open_animation(window, path)
            one_line(ValueError(window.last_error), path, phrase)
            assert window.document.model is model and window.document.recipe == recipe and window.document.timeline == timeline
        window.latent_panel.seed.setValue(8)  # still editing and rendering
        qtbot.waitUntil(lambda: window.current_frame() is not None and window.current_frame().recipe.seed == 8, timeout=60_000)
    finally:
        window.shutdown()


# -- VGG16 weights -------------------------------------------------------------------------------
def test_vgg16_weights_are_a_regular_file_and_any_failure_one_line(tmp_path):
    torch.save(argparse.Namespace(evil=1), tmp_path / "namespace.pth")  # weights_only refuses the global
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    (tmp_path / "junk.pth").write_bytes(b"PK\x03\x04" + os.urandom(100))
    torch.save([1, 2], tmp_path / "list.pth")
    cases = {
        fifo(tmp_path / "pipe.pth"): "named pipe",
        tmp_path: "a folder",
        sparse(tmp_path / "huge.pth", MAX_VGG16_BYTES + 1): "more than VGG16 weights can be",
        tmp_path / "namespace.pth": "not a readable VGG16 state dict (UnpicklingError",
        tmp_path / "legacy.pth": "not a readable VGG16 state dict",
        tmp_path / "junk.pth": "not a readable VGG16 state dict",
        tmp_path / "list.pth": "expected a state dict, found list",
    }
    refused(load_vgg16, LossUnavailable, cases)


# -- the Training tab's run folders --------------------------------------------------------------
def test_the_training_tab_shows_bad_run_files_in_one_line_and_keeps_working(qtbot, tmp_path):
    pytest.importorskip("pytestqt")
    from latentstudio.gui.training_tab import RunFolderError, TrainingTab, run_options

    run = tmp_path / "run"
    run.mkdir()
    png_claiming(run / "fakes000000.png", 100_000, 100_000)
    for name in ("run.json", "log.txt", "stats.jsonl"):
        fifo(run / name)
    events = [{"event": "start", "kimg_total": "lots", "skipped": 1}, [1, 2], "text", {"event": "snapshot", "grid": 5},
              {"event": "snapshot", "grid": str(run / "missing.png"), "checkpoint": {"x": 1}}]
    tab = TrainingTab()
    qtbot.addWidget(tab)
    with promptly():
        tab.watch_run(run)
    one_line(ValueError(tab.status_label.text()), run / "run.json", "named pipe")
    (run / "events.jsonl").write_text("\n".join(map(json.dumps, events)) + "\n" + DEEP + "\n")
    with promptly():
        tab.refresh()
    one_line(ValueError(tab.status_label.text()), run / "missing.png", "no such file")
    assert tab.latest_grid is None and tab.latest_checkpoint is None and tab.kimg_total is None

    (run / "run.json").unlink()
    (run / "run.json").write_text(json.dumps({"options": {"batch": "eight"}}))
    with pytest.raises(RunFolderError) as caught:
        run_options(run / "run.json")
    one_line(caught.value, run / "run.json", "option batch is str")
    for options, phrase in (({"kimg": float("nan")}, "out of range"), ({"resolution": True}, "option resolution"),
                            ([], "no 'options' object")):
        (run / "run.json").write_text(json.dumps({"options": options} if options != [] else []))
        with pytest.raises(RunFolderError) as caught:
            run_options(run / "run.json")
        one_line(caught.value, run / "run.json", phrase)
    (run / "run.json").write_text(DEEP)
    batch = tab.batch_spin.value()
    tab._show_settings(run / "run.json")
    one_line(ValueError(tab.status_label.text()), run / "run.json", "nested")
    assert tab.batch_spin.value() == batch

    Image.new("RGB", (32, 16), (0, 200, 0)).save(run / "fakes000100.png")
    with (run / "events.jsonl").open("a") as handle:
        handle.write(json.dumps({"event": "snapshot", "grid": str(run / "fakes000000.png")}) + "\n")
        handle.write(json.dumps({"event": "snapshot", "grid": str(run / "fakes000100.png")}) + "\n")
        handle.write(json.dumps({"event": "stopped", "kimg": "x"}) + "\n")
    with promptly():
        tab.refresh()
    assert tab.latest_grid == str(run / "fakes000100.png") and tab.grid_image.image.shape == (16, 32, 3)
    assert tab.status_label.text() == "Training stopped"
