"""Projection: it fits, reports, cancels, never changes the model, and its recipe and
projected_w.npz reproduce what it reports; every loss works offline."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from latentstudio.engine.export import read_png_recipe, save_png
from latentstudio.engine.projected_w import ProjectedWError, load_projected_w, recipes_from_projected_w, save_projected_w
from latentstudio.engine.projection import project, w_statistics
from latentstudio.engine.projection_losses import (
    VGG16_FILE,
    DiscriminatorLoss,
    LossUnavailable,
    LpipsLoss,
    VGG16Features,
    choose_loss,
    load_vgg16,
    ms_ssim,
    psnr_uint8,
    ssim_uint8,
)
from latentstudio.engine.recipe import EditRecipe
from latentstudio.engine.renderer import Renderer
from latentstudio.io import load_model, load_networks

DEFAULT_MODEL = Path(__file__).parents[1] / "assets" / "faces64.safetensors"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks on a shared 2-core machine run many times faster on one thread (two
    threads wait on each other whenever another process holds a core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def faces():
    return load_model(DEFAULT_MODEL, device="cpu")


@pytest.fixture(scope="module")
def own_image(faces):
    return Renderer(faces).render(EditRecipe(seed=7)).raw


def model_state(G):
    return {k: v.clone() for k, v in G.state_dict().items()}


def test_projection_of_a_generated_image_improves_steadily_and_beats_w_avg(faces, own_image):
    before = model_state(faces)
    reports = []
    result = project(faces, own_image, space="w+", steps=40, loss="pixel", callback=reports.append, every=10)
    mean_w, _ = w_statistics(faces)
    start_image = Renderer(faces).render(EditRecipe(latent=tuple(mean_w.reshape(-1).tolist()))).raw
    assert result.psnr > psnr_uint8(start_image, own_image) + 6  # a wide margin in a few dozen steps
    losses = np.array([h["loss"] for h in result.history])
    smooth = np.convolve(losses, np.ones(5) / 5, mode="valid")
    assert np.mean(np.diff(smooth) <= 0) > 0.8 and losses[-5:].mean() < 0.5 * losses[:5].mean()
    assert [r.step for r in reports] == [10, 20, 30, 40] and reports[-1].image.shape == (64, 64, 3)
    assert result.latent.shape == (1, faces.num_ws, faces.w_dim) and result.steps == 40 and result.reason == "done"
    assert 0 < result.ssim <= 1 and result.report()["psnr"] == round(result.psnr, 3)
    after = model_state(faces)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the caller's model is untouched
    assert not any(p.requires_grad for p in faces.parameters())


def test_recipe_and_projected_w_reproduce_the_reported_image(faces, own_image, tmp_path):
    result = project(faces, own_image, space="w", steps=5, loss="pixel")
    assert torch.allclose(result.latent, result.latent[:, :1].expand_as(result.latent))  # w: one latent for all layers
    recipe = result.recipe()
    assert recipe.latent is not None and recipe.model == faces.info.fingerprint
    png = save_png(tmp_path / "projected.png", result.image, recipe)
    reread, _ = read_png_recipe(png)
    assert np.array_equal(Renderer(faces).render(reread).raw, result.image)

    npz = save_projected_w(tmp_path / "projected_w.npz", result.latent)
    with np.load(npz) as archive:  # NVlabs' layout
        assert archive.files == ["w"] and archive["w"].dtype == np.float32 and archive["w"].shape == (1, faces.num_ws, faces.w_dim)
    [again] = recipes_from_projected_w(npz, faces)
    assert np.array_equal(Renderer(faces).render(again).raw, result.image)


def test_w_then_w_plus_counts_steps_over_both_phases_and_cancels(faces, own_image):
    steps = []
    result = project(faces, own_image, space="w-then-w+", steps=20, loss="pixel", callback=lambda p: steps.append((p.step, p.total)), every=5)
    assert steps == [(5, 20), (10, 20), (15, 20), (20, 20)] and len(result.history) == 20
    polls = []
    cancelled = project(faces, own_image, space="w-then-w+", steps=20, loss="pixel", should_stop=lambda: len(polls.append(0) or polls) > 4)
    assert cancelled.reason == "cancelled" and cancelled.steps == 4 and np.isfinite(cancelled.psnr)


def test_optimised_noise_stays_in_a_private_copy_and_both_images_are_reported(faces, own_image):
    before = model_state(faces)
    result = project(faces, own_image, space="w+", steps=6, loss="pixel", optimize_noise=True)
    after = model_state(faces)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert result.noise and all(name.endswith("noise_const") for name in result.noise)
    assert result.noise_image is not None and result.noise_psnr is not None
    assert np.array_equal(Renderer(faces).render(result.recipe()).raw, result.image)  # the recipe's image is the reported one
    assert not np.array_equal(result.noise_image, result.image)
    assert "noise_reg" in result.history[-1]


def test_grayscale_conditional_and_stylegan3_models_project(fixtures_dir):
    gray = load_model(fixtures_dir / "sg2_gray32.pkl", device="cpu")
    result = project(gray, np.full((50, 70, 3), 120, dtype=np.uint8), steps=3, loss="pixel")
    assert result.image.shape == (32, 32, 1) and result.target.shape == (32, 32, 1)
    cond = load_model(fixtures_dir / "sg2_cond64.pkl", device="cpu")
    assert project(cond, np.zeros((64, 64, 3), np.uint8), steps=2, loss="pixel").recipe().class_index == 0
    sg3 = load_model(fixtures_dir / "sg3t_32.pkl", device="cpu")
    assert project(sg3, np.zeros((32, 32, 3), np.uint8), space="w", steps=2, loss="pixel").image.shape == (32, 32, 3)
    with pytest.raises(ValueError):
        project(gray, np.zeros((32, 32, 3), np.uint8), space="z")


def test_discriminator_features_guide_a_projection(fixtures_dir):
    networks = load_networks(fixtures_dir / "sg2_skip32.pkl")
    G, D = networks["G_ema"], networks["D"]
    target = Renderer(G).render(EditRecipe(seed=1)).raw
    loss = DiscriminatorLoss(D, (torch.from_numpy(target).permute(2, 0, 1)[None].float() - 128) / 127.5)
    assert loss(loss_target := (torch.from_numpy(target).permute(2, 0, 1)[None].float() - 128) / 127.5)[0].item() == pytest.approx(0, abs=1e-6)
    assert loss(torch.zeros_like(loss_target))[0].item() > 0.01
    result = project(G, target, space="w+", steps=15, loss="auto", D=D)
    assert result.loss.name == "discriminator" and "discriminator" in result.loss.reason
    first, last = result.history[0], result.history[-1]
    assert last["d_features"] < first["d_features"]


def random_vgg16_file(folder: Path) -> Path:
    """A torchvision-layout VGG16 state dict with random weights (plus a classifier key, as the real one has)."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in VGG16Features().features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / VGG16_FILE
    torch.save(state, path)
    return path


def test_lpips_runs_from_a_local_vgg16_and_auto_finds_the_hub_cache(tmp_path, monkeypatch, faces, own_image):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("LATENTSTUDIO_VGG16", raising=False)
    assert choose_loss("auto", has_discriminator=False)[0].name == "pixel"
    with pytest.raises(LossUnavailable, match="never downloads"):
        choose_loss("lpips", has_discriminator=False)

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = random_vgg16_file(tmp_path / "torch" / "hub" / "checkpoints")
    choice, found = choose_loss("auto", has_discriminator=True)
    assert choice.name == "lpips" and found == weights
    vgg = load_vgg16(weights)
    target = (torch.from_numpy(own_image).permute(2, 0, 1)[None].float() - 128) / 127.5
    lpips = LpipsLoss(vgg, target)
    assert lpips(target)[0].item() == pytest.approx(0, abs=1e-6) and lpips(-target)[0].item() > 0
    result = project(faces, own_image, steps=4, loss="lpips", vgg16=str(weights))
    assert result.loss.name == "lpips" and "lpips" in result.history[-1] and "mse" in result.history[-1]

    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(LossUnavailable, match="not torchvision's VGG16"):
        load_vgg16(bad)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(LossUnavailable, match="not a readable"):
        load_vgg16(tmp_path / "junk.pth")
    with pytest.raises(LossUnavailable, match="no such"):
        choose_loss("lpips", False, tmp_path / "missing.pth")
    with pytest.raises(LossUnavailable, match="no discriminator"):
        choose_loss("discriminator", has_discriminator=False)


def test_metrics_match_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, 64)
    a = np.stack([ramp[None, :].repeat(64, 0), ramp[:, None].repeat(64, 1), np.full((64, 64), 90.0)], -1).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert psnr_uint8(a, a) == float("inf")
    assert psnr_uint8(a, b) == pytest.approx(metrics.peak_signal_noise_ratio(a, b, data_range=255), abs=1e-6)
    reference = metrics.structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255)
    assert ssim_uint8(a, b) == pytest.approx(reference, abs=2e-3) and ssim_uint8(a, a) == pytest.approx(1.0)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert ms_ssim(x, x).item() == pytest.approx(1.0, abs=1e-5) and ms_ssim(x, -x).item() < 0.1


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_bad_projected_w_files_are_one_line_errors(tmp_path, faces):
    shape = (1, faces.num_ws, faces.w_dim)
    nvlabs = write_npz(tmp_path / "nvlabs.npz", w=np.zeros(shape, np.float32))
    assert load_projected_w(nvlabs, faces.num_ws, faces.w_dim).shape == shape
    assert load_projected_w(write_npz(tmp_path / "two_d.npz", w=np.zeros(shape[1:], np.float64))).shape == shape
    cases = {
        "no 'w' array": write_npz(tmp_path / "nokey.npz", latent=np.zeros(shape, np.float32)),
        "this model needs": write_npz(tmp_path / "wrong.npz", w=np.zeros((1, 3, 7), np.float32)),
        "NaN": write_npz(tmp_path / "nan.npz", w=np.full(shape, np.nan, np.float32)),
        "must hold floats": write_npz(tmp_path / "ints.npz", w=np.zeros(shape, np.int64)),
        "holds Python objects": write_npz(tmp_path / "objects.npz", w=np.array([{"evil": 1}], dtype=object)),
        "[N, num_ws, w_dim]": write_npz(tmp_path / "flat.npz", w=np.zeros(5, np.float32)),
        "no such file": tmp_path / "missing.npz",
    }
    (tmp_path / "text.npz").write_text("not a zip")
    cases["not a projected-W (.npz) file, or a damaged one"] = tmp_path / "text.npz"
    for words, path in cases.items():
        with pytest.raises(ProjectedWError) as error:
            load_projected_w(path, faces.num_ws, faces.w_dim)
        assert words in str(error.value) and "\n" not in str(error.value), (words, str(error.value))
