"""``latentstudio video``: walks, sweeps, keyframes from exported PNGs, bad input, Ctrl+C."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentstudio.cli import main
from latentstudio.defaults import DEFAULT_DIRECTIONS, DEFAULT_MODEL
from latentstudio.engine.directions import DirectionSet
from latentstudio.engine.export import read_png_recipe, save_png
from latentstudio.engine.renderer import Renderer
from latentstudio.engine.video import read_video_animation
from latentstudio.io import load_model

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = str(DEFAULT_MODEL)


def decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_seed_walk_loop_mp4(tmp_path, capsys):
    """The acceptance command, with fewer frames per key."""
    out = tmp_path / "walk.mp4"
    assert main(["video", MODEL, "--seeds", "0-3", "--frames-per-key", "5", "--loop", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    frames = decode(out)
    assert len(frames) == 20 and frames[0].shape == (64, 64, 3)
    animation, model_path = read_video_animation(out)
    assert [key.recipe.seed for key in animation.keyframes] == [0, 1, 2, 3] and animation.loop
    assert animation.interpolation == "cubic" and animation.keyframes[0].recipe.truncation_psi == 1.0  # render's defaults
    assert model_path == str(DEFAULT_MODEL.resolve())
    # Reopen it with other settings: the recipe of the video is editable.
    again = tmp_path / "again.webp"
    assert main(["video", MODEL, "--animation", str(out), "--kind", "linear", "--no-loop", "--fps", "10", "--out", str(again)]) == 0
    reopened, _ = read_video_animation(again)
    assert (reopened.interpolation, reopened.loop, reopened.fps, reopened.num_frames) == ("linear", False, 10.0, 16)


def test_direction_sweep_with_negative_range_and_layers(tmp_path):
    out = tmp_path / "sweep.mp4"
    assert main(["video", MODEL, "--direction", f"{DEFAULT_DIRECTIONS}:1", "--range", "-3,3", "--layers", "0-5", "--seeds", "7",
                 "--trunc", "0.7", "--frames-per-key", "4", "--out", str(out)]) == 0
    animation, _ = read_video_animation(out)
    first, last = (key.recipe.edits[-1] for key in animation.keyframes)
    assert (first.strength, last.strength, first.first_layer, first.last_layer) == (-3.0, 3.0, 0, 5)
    assert animation.keyframes[0].recipe.seed == 7 and len(decode(out)) == 5


def test_keyframes_from_two_exported_edited_pngs(tmp_path, capsys):
    G = load_model(MODEL, device="cpu")
    renderer = Renderer(G)
    dset = DirectionSet.load(DEFAULT_DIRECTIONS)
    paths = []
    for seed, strength in ((2, 2.0), (5, -1.5)):
        assert main(["render", MODEL, "--seeds", str(seed), "--trunc", "0.7", "--outdir", str(tmp_path)]) == 0
        recipe, model_path = read_png_recipe(tmp_path / f"seed{seed:04d}.png")
        edited = recipe.replace(edits=(dset.edit(0, strength),))  # what the editor's export writes after an edit
        paths.append(save_png(tmp_path / f"edited{seed}.png", renderer.render(edited).raw, edited, model=model_path))
    out = tmp_path / "morph.gif"
    assert main(["video", MODEL, "--keyframes", *map(str, paths), "--frames-per-key", "4", "--out", str(out)]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 5
    animation, _ = read_video_animation(out)
    assert [key.recipe for key in animation.keyframes] == [read_png_recipe(p)[0] for p in paths]


def test_png_sequence_grid_with_upscaling(tmp_path):
    out = tmp_path / "grid"
    assert main(["video", MODEL, "--grid", "2x1", "--seeds", "0-3", "--frames-per-key", "2", "--scale", "2", "--out", str(out)]) == 0
    frames = sorted(out.glob("frame*.png"))
    assert len(frames) == 4  # looping by default, as gen_video.py: 2 keys x 2 frames
    assert Image.open(frames[0]).size == (256, 128)


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert main(["video", MODEL, "--keyframes", str(plain), str(plain), "--out", str(tmp_path / "a.mp4")]) == 2
    assert "carries no latentstudio recipe" in one_line_error(capsys)

    other = FIXTURES / "sg2_cond64.pkl"
    assert main(["render", str(other), "--class", "1", "--seeds", "1-2", "--outdir", str(tmp_path)]) == 0
    capsys.readouterr()
    keys = [str(tmp_path / "seed0001.png"), str(tmp_path / "seed0002.png")]
    assert main(["video", MODEL, "--keyframes", *keys, "--out", str(tmp_path / "b.mp4")]) == 2
    assert "made on another model" in one_line_error(capsys)

    assert main(["video", MODEL, "--seeds", "0-1", "--frames-per-key", "0", "--out", str(tmp_path / "c.mp4")]) == 2
    assert "at least 1" in one_line_error(capsys)

    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    assert main(["video", MODEL, "--seeds", "0-1", "--out", str(blocker / "d.mp4")]) == 2
    assert "cannot write" in one_line_error(capsys)

    assert main(["video", MODEL, "--direction", f"{DEFAULT_DIRECTIONS}:99", "--out", str(tmp_path / "e.mp4")]) == 2
    assert "no '99'" in one_line_error(capsys)
    assert not list(tmp_path.glob("*.mp4"))


def test_ctrl_c_leaves_a_valid_shorter_video(tmp_path, monkeypatch, capsys):
    from latentstudio.engine import video

    original = video.Mp4Writer._write
    calls = []

    def interrupting(self, picture):
        if len(calls) == 6:
            raise KeyboardInterrupt
        calls.append(1)
        original(self, picture)

    monkeypatch.setattr(video.Mp4Writer, "_write", interrupting)
    out = tmp_path / "walk.mp4"
    assert main(["video", MODEL, "--seeds", "0-3", "--frames-per-key", "5", "--out", str(out)]) == 130
    assert "wrote the first 6 of 16 frames" in capsys.readouterr().err
    assert len(decode(out)) == 6
