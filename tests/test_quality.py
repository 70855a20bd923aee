"""Precision / recall behave as defined on distributions whose overlap we control."""
from __future__ import annotations

import numpy as np

from latentstudio.engine.quality import PixelPCAFeatures, precision_recall


def test_identical_distributions_score_high():
    rng = np.random.RandomState(0)
    real, fake = rng.randn(800, 4), rng.randn(800, 4)
    result = precision_recall(real, fake, k=3)
    assert result.precision > 0.9 and result.recall > 0.9


def test_mode_collapse_keeps_precision_but_loses_recall():
    rng = np.random.RandomState(1)
    real = rng.randn(800, 4)
    fake = rng.randn(800, 4) * 0.2  # all samples near the centre of the real data
    result = precision_recall(real, fake, k=3)
    assert result.precision > 0.95 and result.recall < 0.4


def test_shifted_samples_lose_precision():
    rng = np.random.RandomState(2)
    real = rng.randn(800, 4)
    fake = rng.randn(800, 4) + 6.0  # far from the data
    result = precision_recall(real, fake, k=3)
    assert result.precision < 0.05 and result.recall < 0.05


def test_pixel_pca_features_shape_and_determinism():
    rng = np.random.RandomState(3)
    images = rng.randint(0, 256, size=(200, 8, 8, 3), dtype=np.uint8)
    a = PixelPCAFeatures(images, dim=16)(images[:10])
    b = PixelPCAFeatures(images, dim=16)(images[:10])
    assert a.shape == (10, 16) and np.allclose(a, b, atol=1e-4)
