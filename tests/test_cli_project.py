"""``latentstudio project`` writes target, projected PNG (with recipe), projected_w.npz and a
report per photo; ``render --projected-w`` renders the npz back to the same pixels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentstudio.cli import main
from latentstudio.engine.export import read_png_recipe
from latentstudio.engine.recipe import EditRecipe
from latentstudio.engine.renderer import Renderer
from latentstudio.io import load_model, load_networks, save_native

ROOT = Path(__file__).parents[1]
DEFAULT_MODEL = ROOT / "assets" / "faces64.safetensors"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # --threads 1 sets it for the whole process


def test_project_writes_every_output_and_the_png_reopens_ready_to_edit(tmp_path, capsys):
    G = load_model(DEFAULT_MODEL, device="cpu")
    generated = tmp_path / "in" / "generated.png"
    generated.parent.mkdir()
    Image.fromarray(Renderer(G).render(EditRecipe(seed=11)).raw).resize((200, 200)).save(generated)
    twin = tmp_path / "other" / "generated.jpg"  # the same stem: gets its own folder
    twin.parent.mkdir()
    Image.open(generated).convert("RGB").save(twin)
    broken = tmp_path / "broken.jpg"
    broken.write_text("no image here")
    outdir = tmp_path / "out"
    status = main(["project", str(DEFAULT_MODEL), str(generated), str(broken), str(twin), "--outdir", str(outdir),
                   "--steps", "8", "--space", "w-then-w+", "--threads", "1"])
    err = capsys.readouterr().err
    assert status == 2 and "broken.jpg" in err and "1 of 3 photo(s) could not be read" in err
    assert sorted(p.name for p in outdir.iterdir()) == ["generated", "generated-2"]
    folder = outdir / "generated"
    assert sorted(p.name for p in folder.iterdir()) == ["projected.png", "projected_w.npz", "report.json", "target.png"]
    assert Image.open(folder / "target.png").size == (64, 64)
    recipe, model_path = read_png_recipe(folder / "projected.png")
    assert Path(model_path) == DEFAULT_MODEL.resolve() and recipe.latent is not None
    assert np.array_equal(Renderer(G).render(recipe).raw, np.asarray(Image.open(folder / "projected.png")))
    report = json.loads((folder / "report.json").read_text())
    assert {"space", "loss", "steps", "seconds", "psnr", "ssim", "alignment"} <= set(report)
    assert report["space"] == "w-then-w+" and report["steps"] == 8 and report["loss"] == "discriminator"  # the default model ships its D
    with np.load(folder / "projected_w.npz") as archive:
        assert archive["w"].shape == (1, G.num_ws, G.w_dim) and archive["w"].dtype == np.float32

    rendered = tmp_path / "rendered"
    assert main(["render", str(DEFAULT_MODEL), "--projected-w", str(folder / "projected_w.npz"), "--outdir", str(rendered)]) == 0
    assert np.array_equal(np.asarray(Image.open(rendered / "projected00.png")), np.asarray(Image.open(folder / "projected.png")))


def test_project_uses_the_discriminator_of_a_file_that_has_one(tmp_path, fixtures_dir, capsys):
    photo = tmp_path / "grey.png"
    Image.new("RGB", (90, 60), (128, 100, 90)).save(photo)
    assert main(["project", str(fixtures_dir / "sg2_skip32.pkl"), str(photo), "--outdir", str(tmp_path / "out"),
                 "--steps", "3", "--no-align", "--threads", "1"]) == 0
    report = json.loads((tmp_path / "out" / "grey" / "report.json").read_text())
    assert report["loss"] == "discriminator" and report["alignment"]["method"] == "center"


def test_impossible_losses_and_bad_npz_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    monkeypatch.delenv("LATENTSTUDIO_VGG16", raising=False)
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 64)).save(photo)
    generator_only = save_native(tmp_path / "g.safetensors", {"G_ema": load_networks(DEFAULT_MODEL)["G_ema"]})
    for model, loss, words in ((DEFAULT_MODEL, "lpips", "VGG16"), (generator_only, "discriminator", "no discriminator")):
        assert main(["project", str(model), str(photo), "--outdir", str(tmp_path), "--loss", loss]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1
    bad = tmp_path / "w.npz"
    np.savez(bad, w=np.zeros((1, 3, 3), np.float32))
    assert main(["render", str(DEFAULT_MODEL), "--projected-w", str(bad), "--outdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "this model needs" in err and err.count("\n") == 1
