"""Procedural portraits: deterministic, factors in range and independent, each factor visible."""
from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from latentstudio.cli import dataset as dataset_cli
from latentstudio.data import portraits
from latentstudio.data.archive import load_factors
from latentstudio.data.images import ImageDataset
from latentstudio.data.portraits import FACTOR_NAMES, FACTORS, draw_portrait, eye_region, generate, sample_factors


def _pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _middle_row() -> dict[str, float]:
    return {f.name: (f.low + f.high) / 2 if not f.binary else 0.0 for f in FACTORS}


def test_same_seed_same_portraits_and_longer_sets_extend_shorter_ones() -> None:
    first = list(generate(4, 32, seed=7))
    again = list(generate(6, 32, seed=7))
    other = list(generate(4, 32, seed=8))
    for (image_a, row_a), (image_b, row_b) in zip(first, again):
        assert row_a == row_b
        np.testing.assert_array_equal(_pixels(image_a), _pixels(image_b))
    assert all(row_a != row_b for (_, row_a), (_, row_b) in zip(first, other))
    assert first[0][0].size == (32, 32) and first[0][0].mode == "RGB"


def test_factors_cover_their_ranges_independently() -> None:
    factors = sample_factors(np.random.default_rng(0), 4000)
    assert tuple(factors) == FACTOR_NAMES
    for factor in FACTORS:
        values = factors[factor.name]
        assert values.shape == (4000,) and values.dtype == np.float32
        if factor.binary:
            assert set(np.unique(values)) == {0.0, 1.0} and 0.45 < values.mean() < 0.55
        else:
            span = factor.high - factor.low
            assert factor.low <= values.min() < factor.low + 0.01 * span
            assert factor.high - 0.01 * span < values.max() <= factor.high
    correlation = np.corrcoef(portraits.factors_to_matrix(factors).T)
    assert np.abs(correlation - np.eye(len(FACTORS))).max() < 0.08


@pytest.mark.parametrize("factor", FACTORS, ids=lambda f: f.name)
def test_every_factor_changes_the_image(factor) -> None:
    low, high = _middle_row(), _middle_row()
    if factor.binary:
        low[factor.name], high[factor.name] = 0.0, 1.0
    else:
        low[factor.name] = factor.low + 0.2 * (factor.high - factor.low)
        high[factor.name] = factor.low + 0.8 * (factor.high - factor.low)
    difference = np.abs(_pixels(draw_portrait(low, 64)) - _pixels(draw_portrait(high, 64))).max(axis=2)
    assert (difference > 20).sum() >= 15, f"{factor.name} barely changes the picture"


def test_glasses_change_only_the_eye_region() -> None:
    factors = sample_factors(np.random.default_rng(3), 6)
    for i in range(6):
        row = {name: float(values[i]) for name, values in factors.items()}
        bare, glasses = dict(row, glasses=0.0), dict(row, glasses=1.0)
        changed = np.abs(_pixels(draw_portrait(bare, 64)) - _pixels(draw_portrait(glasses, 64))).max(axis=2) > 0
        left, top, right, bottom = eye_region(row, 64)
        assert changed.sum() > 30
        inside = np.zeros_like(changed)
        inside[top:bottom, left:right] = True
        assert not (changed & ~inside).any(), f"glasses changed pixels outside the eye box, tilt {row['head_tilt']:.1f}"
        assert (bottom - top) < 24  # a band across the face, not the whole picture


def test_values_are_clipped_and_missing_factors_named() -> None:
    row = _middle_row()
    np.testing.assert_array_equal(_pixels(draw_portrait(dict(row, head_tilt=90.0), 32)),
                                  _pixels(draw_portrait(dict(row, head_tilt=20.0), 32)))
    del row["eye_size"]
    with pytest.raises(KeyError, match="eye_size"):
        draw_portrait(row, 32)


def test_cli_writes_a_portrait_zip_the_dataset_reads_back(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser()
    dataset_cli.add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "portraits.zip"
    argv = ["dataset", "portraits", "--count", "12", "--res", "32", "--out", str(out), "--seed", "5"]
    assert dataset_cli.run(parser.parse_args(argv)) == 0
    assert "12 portraits" in capsys.readouterr().out

    dataset = ImageDataset(out, 32)
    assert len(dataset) == 12 and not dataset.has_labels and not dataset.skipped
    factors = load_factors(out)
    assert factors.names == FACTOR_NAMES and factors.values.shape == (12, len(FACTOR_NAMES))
    assert list(factors.files) == dataset.names and factors.info["seed"] == 5
    expected_images, expected_rows = zip(*generate(12, 32, seed=5))
    np.testing.assert_allclose(factors.column("mouth_curve"), [r["mouth_curve"] for r in expected_rows])
    np.testing.assert_array_equal(dataset[3][0], _pixels(expected_images[3]).transpose(2, 0, 1))
    with zipfile.ZipFile(out) as archive:
        assert json.loads(archive.read("dataset.json")) == {"labels": None}

    labelled = tmp_path / "glasses.zip"
    argv = ["dataset", "portraits", "--count", "12", "--res", "32", "--out", str(labelled), "--label-factor", "glasses"]
    assert dataset_cli.run(parser.parse_args(argv)) == 0
    conditional = ImageDataset(labelled, 32)
    assert conditional.label_dim == 2 and conditional.class_names == ("glasses=0", "glasses=1")
    glasses = load_factors(labelled).column("glasses")
    assert [int(conditional[i][1].argmax()) for i in range(12)] == glasses.astype(int).tolist()

    assert dataset_cli.run(parser.parse_args(["dataset", "inspect", str(labelled), "--res", "32"])) == 0
    report = capsys.readouterr().out
    assert "12 usable images, 0 skipped" in report and "2 classes (glasses=0, glasses=1)" in report
    assert "factors: face_shape" in report
