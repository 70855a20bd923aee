"""Direction finders recover what was planted; direction sets round-trip and refuse bad files."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from latentstudio.engine.directions import (
    Cancelled,
    DirectionSet,
    DirectionSetError,
    DirectionSetWarning,
    orthonormalize,
    pca_directions,
    project_out,
    sample_w,
    sefa_directions,
    sefa_matrix,
    style_affines,
    supervised_direction,
)
from latentstudio.engine.recipe import EditRecipe, compose_ws
from latentstudio.io import load_model
from latentstudio.nets.stylegan2 import MappingNetwork

W_DIM = 32


class LinearMappingG(torch.nn.Module):
    """A generator stand-in whose W is known: a real one-layer linear mapping network with
    weights ``0.3 I + 3 u uᵀ``, so sampled W varies most along the planted unit vector ``u``."""

    def __init__(self, planted: np.ndarray):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = W_DIM, 0, W_DIM, 4
        self.mapping = MappingNetwork(W_DIM, 0, W_DIM, num_ws=4, num_layers=1, activation="linear", lr_multiplier=1.0)
        matrix = 0.3 * np.eye(W_DIM) + 3.0 * np.outer(planted, planted)
        with torch.no_grad():
            fc = self.mapping.fc0
            fc.weight.copy_(torch.from_numpy(matrix).float() / fc.weight_gain)
            fc.bias.zero_()


@pytest.fixture(scope="module")
def planted() -> np.ndarray:
    u = np.random.default_rng(7).standard_normal(W_DIM)
    return u / np.linalg.norm(u)


@pytest.fixture(scope="module")
def linear_G(planted) -> LinearMappingG:
    return LinearMappingG(planted).eval()


@pytest.fixture(scope="module")
def sg2(fixtures_dir):
    return load_model(fixtures_dir / "sg2_skip32.pkl", device="cpu")


# -- PCA --------------------------------------------------------------------------------------
def test_pca_recovers_planted_direction(linear_G, planted):
    dset = pca_directions(linear_G, num=8, samples=4000, seed=1)
    assert abs(float(dset.vectors[0] @ planted)) > 0.99
    gram = dset.vectors @ dset.vectors.T
    np.testing.assert_allclose(gram, np.eye(8), atol=1e-5)
    assert np.all(np.diff(dset.explained_variance) <= 0)
    assert np.all(np.diff(dset.sigmas) <= 0)
    # Slider units: sigma is the std of sampled W along the direction (about 3.3 here).
    assert dset.sigmas[0] == pytest.approx(3.3, rel=0.05)
    assert dset.method == "pca" and dset.names[0] == "pca:0" and dset.layer_ranges[0] == (0, -1)


def test_pca_is_reproducible_for_a_seed(linear_G):
    a = pca_directions(linear_G, num=4, samples=1000, seed=3)
    b = pca_directions(linear_G, num=4, samples=1000, seed=3, batch_size=97)
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)
    np.testing.assert_allclose(a.sigmas, b.sigmas, rtol=1e-5)
    c = pca_directions(linear_G, num=4, samples=1000, seed=4)
    assert not np.allclose(a.sigmas, c.sigmas)


def test_sampling_reports_progress_and_can_be_cancelled(linear_G):
    calls: list[tuple[int, int]] = []
    w = sample_w(linear_G, 250, batch_size=100, progress=lambda done, total: calls.append((done, total)))
    assert w.shape == (250, W_DIM) and w.dtype == np.float32
    assert calls == [(100, 250), (200, 250), (250, 250)]
    with pytest.raises(Cancelled):
        sample_w(linear_G, 1000, batch_size=100, should_stop=lambda: len(calls) >= 4,
                 progress=lambda done, total: calls.append((done, total)))
    assert len(calls) == 4  # stopped after one more batch


def test_sampled_w_is_the_mapping_of_the_seeded_z(sg2):
    w = sample_w(sg2, 50, seed=9, batch_size=16)
    z = torch.from_numpy(np.random.default_rng(9).standard_normal((50, sg2.z_dim), dtype=np.float32))
    with torch.no_grad():
        expected = sg2.mapping(z, None)[:, 0].numpy()
    np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-8)  # batching changes only float rounding
    assert sg2.mapping.num_ws == sg2.num_ws  # the model itself is untouched


# -- SeFa -------------------------------------------------------------------------------------
def test_sefa_matches_an_independent_decomposition(sg2):
    dset = sefa_directions(sg2, num=6, layers=(0, 3), samples=500)
    s = sg2.synthesis
    # ws 0..3 of a 32 px skip model: 4x4 conv1; 8x8 conv0 + 4x4 torgb; 8x8 conv1; 16x16 conv0 + 8x8 torgb.
    modules = [s.b4.conv1, s.b8.conv0, s.b4.torgb, s.b8.conv1, s.b16.conv0, s.b8.torgb]
    stacked = torch.cat([m.affine.weight.detach().double() for m in modules]).numpy()
    stacked /= np.linalg.norm(stacked, axis=1, keepdims=True)
    _, singular, vt = np.linalg.svd(stacked, full_matrices=False)
    np.testing.assert_allclose(np.abs(np.sum(dset.vectors * vt[:6], axis=1)), 1.0, atol=1e-4)
    np.testing.assert_allclose(dset.stats["eigenvalues"], singular[:6] ** 2, rtol=1e-6)
    np.testing.assert_allclose(dset.vectors @ dset.vectors.T, np.eye(6), atol=1e-5)
    assert dset.layer_ranges == [(0, 3)] * 6 and dset.fingerprint == sg2.info.fingerprint
    assert sefa_matrix(sg2, (0, -1)).shape == (64 * 9 + 32 * 2, 128)  # 11 affines: nine of 64 channels, two of 32


def test_sefa_on_stylegan3_reads_input_and_layer_affines(fixtures_dir):
    G = load_model(fixtures_dir / "sg3t_32.pkl", device="cpu")
    names = [name for name, _ in style_affines(G, (0, 2))]
    assert names[0] == "synthesis.input.affine" and names[1:] == [f"synthesis.{n}.affine" for n in G.synthesis.layer_names[:2]]
    dset = sefa_directions(G, num=4, layers=(1, 5), samples=200)
    np.testing.assert_allclose(dset.vectors @ dset.vectors.T, np.eye(4), atol=1e-5)


# -- supervised -------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["svm", "logistic"])
def test_classifier_recovers_known_hyperplane(method):
    rng = np.random.default_rng(0)
    normal = rng.standard_normal(16)
    normal /= np.linalg.norm(normal)
    latents = rng.standard_normal((3000, 16)) + 0.5
    labels = np.where(latents @ normal > 0.4, 1, 0)
    vector, stats = supervised_direction(latents, labels, method=method)
    assert float(vector @ normal) > 0.97
    assert stats["accuracy"] > 0.95


def test_ridge_recovers_score_direction():
    rng = np.random.default_rng(1)
    normal = rng.standard_normal(16)
    normal /= np.linalg.norm(normal)
    latents = rng.standard_normal((500, 16))
    scores = latents @ normal * 2.0 + 0.05 * rng.standard_normal(500)
    vector, stats = supervised_direction(latents, scores, method="linear")
    assert float(vector @ normal) > 0.99 and stats["r2"] > 0.99


def test_supervised_refuses_one_class():
    with pytest.raises(ValueError, match="two classes"):
        supervised_direction(np.zeros((4, 3)), np.ones(4), method="svm")


def test_project_out_and_orthonormalize():
    rng = np.random.default_rng(2)
    others = rng.standard_normal((3, 10))
    direction = rng.standard_normal(10)
    conditional = project_out(direction, others)
    np.testing.assert_allclose(others @ conditional, 0, atol=1e-5)
    assert np.linalg.norm(conditional) == pytest.approx(1, abs=1e-6)
    basis = orthonormalize(others)
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-6)
    assert float(basis[0] @ others[0]) / np.linalg.norm(others[0]) == pytest.approx(1, abs=1e-6)
    with pytest.raises(ValueError):
        project_out(others[0] + others[1], others)


# -- DirectionSet -----------------------------------------------------------------------------
def _small_set(w_dim: int = 8, fingerprint: str = "abc") -> DirectionSet:
    vectors = orthonormalize(np.random.default_rng(0).standard_normal((3, w_dim)))
    return DirectionSet(
        names=["pose", "smile", "age"], vectors=vectors, sigmas=np.array([2.0, 1.0, 0.5]),
        layer_ranges=[(0, -1), (2, 5), (4, 4)], method="svm", fingerprint=fingerprint, w_dim=w_dim,
        explained_variance=np.array([0.3, 0.2, 0.1]), mean=np.zeros(w_dim), stats={"samples": 10},
    )


def test_npz_round_trip(tmp_path):
    dset = _small_set()
    path = dset.save(tmp_path / "dirs")  # no extension: written exactly where asked
    assert path.exists() and path.name == "dirs"
    loaded = DirectionSet.load(path, expect_w_dim=8, expect_fingerprint="abc")
    assert loaded.names == dset.names and loaded.layer_ranges == dset.layer_ranges
    np.testing.assert_array_equal(loaded.vectors, dset.vectors)
    np.testing.assert_array_equal(loaded.sigmas, dset.sigmas)
    np.testing.assert_array_equal(loaded.explained_variance, dset.explained_variance)
    assert loaded.stats == {"samples": 10} and loaded.method == "svm" and loaded.fingerprint == "abc"


def test_edit_applies_sigma_units_on_layer_range(sg2):
    dset = pca_directions(sg2, num=3, samples=600)
    edit = dset.edit(1, 2.0, first_layer=2, last_layer=4)
    assert edit.sigma == pytest.approx(float(dset.sigmas[1]))
    base = compose_ws(sg2, EditRecipe(seed=5))
    moved = compose_ws(sg2, EditRecipe(seed=5, edits=(edit,)))
    delta = (moved - base)[0].numpy()
    np.testing.assert_allclose(delta[2:5], np.tile(2.0 * dset.sigmas[1] * dset.vectors[1], (3, 1)), atol=1e-4)
    assert np.abs(delta[[0, 1, 5, 6, 7]]).max() == 0


def test_refuses_malformed_files(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00\x01 not a zip at all")
    with pytest.raises(DirectionSetError, match="not a direction set"):
        DirectionSet.load(garbage)

    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.arange(3))
    with pytest.raises(DirectionSetError, match="not a latentstudio direction set"):
        DirectionSet.load(foreign)

    good = _small_set().save(tmp_path / "good.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(DirectionSetError):
        DirectionSet.load(truncated)

    with np.load(good) as data:
        arrays = dict(data)
    bad_shape = tmp_path / "bad_shape.npz"
    np.savez(bad_shape, **{**arrays, "vectors": arrays["vectors"][:, :5]})
    with pytest.raises(DirectionSetError, match="shape"):
        DirectionSet.load(bad_shape)
    nan = tmp_path / "nan.npz"
    np.savez(nan, **{**arrays, "sigmas": np.array([1.0, np.nan, 1.0])})
    with pytest.raises(DirectionSetError, match="finite"):
        DirectionSet.load(nan)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**arrays, "names": np.array([object(), "b", "c"], dtype=object)})
    with pytest.raises(DirectionSetError):
        DirectionSet.load(pickled)  # object arrays would need pickle: refused, never unpickled


def test_refuses_other_w_dim_and_warns_on_other_model(tmp_path):
    path = _small_set(w_dim=8, fingerprint="model-a").save(tmp_path / "d.npz")
    with pytest.raises(DirectionSetError, match="8-dimensional W.*16 dimensions"):
        DirectionSet.load(path, expect_w_dim=16, expect_fingerprint="model-a")
    with pytest.warns(DirectionSetWarning, match="another model"):
        dset = DirectionSet.load(path, expect_w_dim=8, expect_fingerprint="model-b")
    assert len(dset) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DirectionSet.load(path, expect_w_dim=8, expect_fingerprint="model-a")
