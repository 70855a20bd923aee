"""The command line: info, render (PNG recipes reproduce pixels), convert."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentstudio.cli import main
from latentstudio.engine.export import read_png_recipe
from latentstudio.engine.renderer import Renderer
from latentstudio.io import load_model

FIXTURES = Path(__file__).parent / "fixtures"


def test_render_writes_pngs_whose_recipe_reproduces_the_pixels(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTSTUDIO_SENTINEL", str(tmp_path / "sentinel"))
    model = FIXTURES / "sg2_cond64.pkl"
    status = main(["render", str(model), "--seeds", "0-3", "--class", "2", "--trunc", "0.7", "--outdir", str(tmp_path), "--grid"])
    assert status == 0
    pngs = sorted(tmp_path.glob("seed*.png"))
    assert [p.name for p in pngs] == [f"seed{s:04d}.png" for s in range(4)]
    assert Image.open(tmp_path / "grid.png").size == (128, 128)
    renderer = Renderer(load_model(model, device="cpu"))
    for png in pngs:
        recipe, model_path = read_png_recipe(png)
        assert recipe.class_index == 2 and recipe.truncation_psi == 0.7
        assert Path(model_path) == model.resolve()
        assert np.array_equal(np.asarray(Image.open(png)), renderer.render(recipe).raw)
    assert not (tmp_path / "sentinel").exists()


def test_render_conditional_without_class_is_a_clear_error(tmp_path, capsys):
    assert main(["render", str(FIXTURES / "sg2_cond64.pkl"), "--outdir", str(tmp_path)]) == 2
    assert "--class" in capsys.readouterr().err


def test_bad_model_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x04garbage")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err


def test_info_json(capsys):
    assert main(["info", str(FIXTURES / "sg2_gray32.pkl"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["img_channels"] == 1 and info["num_ws"] == 8 and info["kind"] == "stylegan2"


def test_convert_then_load_gives_identical_outputs(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["convert", str(FIXTURES / "sg2_skip32.pkl"), str(out), "--all"]) == 0
    a = load_model(FIXTURES / "sg2_skip32.pkl", device="cpu")
    b = load_model(out, device="cpu")
    assert b.info.networks == ("G", "D", "G_ema") and b.info.provenance["converted_from"] == "sg2_skip32.pkl"
    z = torch.randn(2, a.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(a(z, None, noise_mode="const"), b(z, None, noise_mode="const"))


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "latentstudio", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("latentstudio ")


@pytest.mark.parametrize("text, expected", [("0-3,7", [0, 1, 2, 3, 7]), ("5", [5]), ("2-2,2", [2])])
def test_seed_ranges(text, expected):
    from latentstudio.engine.ranges import parse_int_list

    assert parse_int_list(text) == expected


def test_bench_compares_every_fast_path_with_the_plain_path(capsys):
    assert main(["bench", str(FIXTURES / "sg2_cond64.pkl"), "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for label in ("full frame, plain", "full frame, fast", "plain/fast =", "edit, top 2 ws", "edit, last 2 blocks", "first preview"):
        assert label in out, label


def test_bench_renderer_times_each_path_on_the_same_weights():
    from latentstudio.bench import bench_renderer

    result = bench_renderer(load_model(FIXTURES / "sg2_skip32.pkl", device="cpu"), "skip32", repeats=2)
    times = (result.plain_ms, result.fast_ms, result.top_rows_edit_ms, result.wider_edit_ms)
    assert all(0 < t < 60_000 for t in times)
    assert [name for name, _ in result.rows][:4] == ["full frame, plain", "full frame, fast",
                                                       "edit, top 2 ws (last 2 layers)", "edit, last 2 blocks"]


def test_unusable_device_and_sizes_are_one_line_errors(tmp_path, capsys):
    assert main(["render", str(FIXTURES / "sg2_skip32.pkl"), "--device", "banana", "--outdir", str(tmp_path)]) == 2
    assert "'banana' is not a device name" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["render", str(FIXTURES / "sg2_skip32.pkl"), "--device", "cuda", "--outdir", str(tmp_path)]) == 2
        assert "CUDA is not available here" in capsys.readouterr().err
    assert main(["bench", "--sizes", "0,64"]) == 2
    assert "0 is not a power of two" in capsys.readouterr().err
