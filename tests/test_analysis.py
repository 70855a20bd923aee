"""Analyses measure what they claim, and the CLI writes the report figures and JSON."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from latentstudio.cli import main
from latentstudio.engine.analysis import disentanglement_report, layer_sensitivity, perceptual_path_length
from latentstudio.engine.directions import DirectionSet, orthonormalize, pca_directions
from latentstudio.engine.figures import BAR, bar_chart, heatmap
from latentstudio.engine.recipe import EditRecipe
from latentstudio.engine.renderer import Renderer
from latentstudio.io import load_model


@pytest.fixture(scope="module")
def sg2(fixtures_dir):
    return load_model(fixtures_dir / "sg2_skip32.pkl", device="cpu")


@pytest.fixture(scope="module")
def lively_G(sg2):
    """The fixture with its last mapping layer scaled up: random weights with the mapping's
    0.01 learning-rate multiplier leave W almost constant (std ~1e-4), far below what float32
    path lengths can resolve; scaled, W varies about as much as in a trained model."""
    G = copy.deepcopy(sg2)
    with torch.no_grad():
        last = getattr(G.mapping, f"fc{G.mapping.num_layers - 1}")
        last.weight.mul_(1e4)
        last.bias.mul_(1e4)
    return G


def _axis_set(vectors: np.ndarray) -> DirectionSet:
    k, w_dim = vectors.shape
    return DirectionSet(names=[f"d{i}" for i in range(k)], vectors=vectors, sigmas=np.ones(k), layer_ranges=[(0, -1)] * k,
                        method="test", fingerprint="synthetic", w_dim=w_dim)


def test_disentanglement_scores_clean_above_entangled():
    """Factors are known functions of W: f0 = 2 w0, f1 = -w1 (noisy), f2 = [w2 > 0]."""
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((4000, 8))
    factors = np.column_stack([2 * latents[:, 0], -latents[:, 1] + 0.1 * rng.standard_normal(4000), latents[:, 2] > 0])
    clean = _axis_set(np.eye(8, dtype=np.float32)[:4])
    report = disentanglement_report(latents, factors, clean, factor_names=["size", "tilt", "smile"])
    np.testing.assert_allclose(np.abs(np.diag(report.correlation[:3])), [1.0, 0.995, 0.8], atol=0.02)
    off_diagonal = report.correlation[:3, :3][~np.eye(3, dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.06
    assert report.best_direction == [0, 1, 2]
    assert np.all(report.probe_r2[:2] > 0.98)
    assert report.mig > 0.4

    rotation = orthonormalize(np.array([[1, 1, 0, 0, 0, 0, 0, 0], [1, -1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0, 0, 0], [0, 0, 1, -1, 0, 0, 0, 0]], dtype=np.float32))
    entangled = disentanglement_report(latents, factors, _axis_set(rotation))
    assert entangled.mig < report.mig / 3
    # The same subspace holds f0 and f1, so the all-directions probe still finds them.
    assert np.all(entangled.probe_r2[:2] > 0.98)
    json.dumps(report.to_dict())


def test_layer_sensitivity_matches_a_direct_render(sg2):
    dset = pca_directions(sg2, num=2, samples=500)
    result = layer_sensitivity(sg2, dset, seeds=[3], strength=2.0)
    assert result.pixel.shape == (2, sg2.num_ws) and result.edge.shape == (2, sg2.num_ws)
    assert np.all(result.pixel > 0)
    renderer = Renderer(sg2)
    changes = []
    for seed in (3,):
        base = renderer.render(EditRecipe(seed=seed)).raw.astype(np.float32)
        for strength in (-2.0, 2.0):
            edited = renderer.render(EditRecipe(seed=seed, edits=(dset.edit(1, strength, 5, 5),))).raw.astype(np.float32)
            changes.append(np.abs(edited - base).mean())
    assert result.pixel[1, 5] == pytest.approx(np.mean(changes), rel=1e-5)
    zero = layer_sensitivity(sg2, dset.subset([0]), seeds=[3], strength=0.0)
    assert np.all(zero.pixel == 0) and np.all(zero.edge == 0)


def test_path_length_is_a_limit_in_epsilon(lively_G):
    sg2 = lively_G
    fine = perceptual_path_length(sg2, n=8, epsilon=1e-4, seed=1, batch_size=8)
    coarse = perceptual_path_length(sg2, n=8, epsilon=2e-4, seed=1, batch_size=8)
    assert fine.mean > 0 and np.isfinite(fine.mean)
    assert coarse.mean == pytest.approx(fine.mean, rel=0.25)
    for space, distance in (("z", "pixel"), ("w", "edge")):
        other = perceptual_path_length(sg2, n=4, space=space, distance=distance, batch_size=4)
        assert other.mean > 0 and np.isfinite(other.mean)


def test_figures_are_labelled_and_scaled():
    chart = bar_chart([4.0, 2.0, 1.0], ["0", "1", "2"], "title", "x", "y")
    pixels = np.asarray(chart)
    assert (pixels == BAR).all(axis=-1).sum() > 500  # the bars are drawn
    first, third = ((pixels[:, :, :] == BAR).all(axis=-1).any(axis=0).nonzero()[0][[0, -1]])
    assert third > first
    image = heatmap(np.arange(6).reshape(2, 3), ["a", "b"], ["0", "1", "2"], "a rather long title for a tiny heatmap", "x", "y", "value")
    assert image.width > 300 and image.height > 2 * 44


def test_directions_and_analyze_cli(tmp_path, sg2, fixtures_dir, capsys):
    model = str(fixtures_dir / "sg2_skip32.pkl")
    dirs = tmp_path / "d.npz"
    assert main(["directions", model, "--method", "pca", "--num", "3", "--samples", "600", "--out", str(dirs), "--device", "cpu"]) == 0
    sefa = tmp_path / "s.npz"
    assert main(["directions", model, "--method", "sefa", "--num", "2", "--layers", "0-3", "--samples", "200", "--out", str(sefa), "--device", "cpu"]) == 0
    assert DirectionSet.load(sefa).layer_ranges == [(0, 3), (0, 3)]

    labels = tmp_path / "labels.csv"
    labels.write_text("seed,label\n" + "".join(f"{seed},{seed % 2}\n" for seed in range(12)))
    svm = tmp_path / "v.npz"
    assert main(["directions", model, "--method", "svm", "--labels", str(labels), "--samples", "200", "--out", str(svm), "--device", "cpu"]) == 0
    loaded = DirectionSet.load(svm, expect_w_dim=128)
    assert loaded.names == ["labels"] and loaded.stats["labelled"] == 12

    rng = np.random.default_rng(0)
    factors = tmp_path / "factors.npz"
    latents = rng.standard_normal((300, 128)).astype(np.float32)
    np.savez(factors, latents=latents, factors=latents[:, :2] @ np.ones((2, 1)), factor_names=np.array(["sum"]))
    outdir = tmp_path / "report"
    assert main(["analyze", model, str(dirs), "--outdir", str(outdir), "--seeds", "0", "--ppl-samples", "4",
                 "--max-directions", "2", "--thumb", "32", "--factors", str(factors), "--device", "cpu"]) == 0
    for name in ("explained_variance", "layer_sensitivity", "layer_sensitivity_edges", "directions_grid", "disentanglement"):
        with Image.open(outdir / f"{name}.png") as picture:
            assert picture.format == "PNG" and picture.width > 200 and picture.height > 100
    report = json.loads((outdir / "report.json").read_text())
    assert np.array(report["layer_sensitivity"]["pixel"]).shape == (2, sg2.num_ws)
    assert len(report["directions"]["explained_variance"]) == 2
    assert report["perceptual_path_length"]["samples"] == 4
    assert np.array(report["disentanglement"]["correlation"]).shape == (2, 1)


def test_analyze_refuses_sets_for_another_w(tmp_path, fixtures_dir, capsys):
    other = DirectionSet(names=["a"], vectors=np.eye(1, 16, dtype=np.float32), sigmas=[1.0], layer_ranges=[(0, -1)],
                         method="pca", fingerprint="elsewhere", w_dim=16).save(tmp_path / "other.npz")
    assert main(["analyze", str(fixtures_dir / "sg2_skip32.pkl"), str(other), "--outdir", str(tmp_path / "r"), "--device", "cpu"]) == 2
    assert "16-dimensional W" in capsys.readouterr().err
