"""Renderer: frames equal the networks' own output, errors become messages, batching is exact."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latentstudio.engine.recipe import EditRecipe, compose_ws
from latentstudio.engine.renderer import Renderer, to_uint8
from latentstudio.io import load_model

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def renderer():
    return Renderer(load_model(FIXTURES / "sg2_cond64.pkl", device="cpu"))


def test_frame_equals_direct_synthesis(renderer):
    recipe = EditRecipe(seed=3, class_index=1, truncation_psi=0.7)
    frame = renderer.render(recipe)
    assert frame.ok and frame.image.shape == (64, 64, 3) and frame.image.dtype == np.uint8
    with torch.no_grad():
        ws = compose_ws(renderer.G, recipe)
        lean = to_uint8(renderer.G.synthesis(ws, noise_mode="const", fused_modconv="auto"))[0]
        reference = to_uint8(renderer.G.synthesis(ws, noise_mode="const"))[0]
    assert np.array_equal(frame.raw, lean)  # the renderer's own (lean) arithmetic, exactly
    assert np.abs(frame.raw.astype(int) - reference.astype(int)).max() <= 1  # NVlabs', up to rounding
    assert frame.timings["total_ms"] > 0


def test_errors_become_frame_errors(renderer):
    frame = renderer.render(EditRecipe(seed=0))  # conditional model, no class
    assert not frame.ok and "conditional" in frame.error


def test_random_noise_is_reproducible_from_the_noise_seed(renderer):
    base = EditRecipe(seed=2, class_index=0, noise_mode="random", noise_seed=5)
    a, b = renderer.render(base), renderer.render(base)
    c = renderer.render(base.replace(noise_seed=6))
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)


def test_render_many_matches_render(renderer):
    recipes = [EditRecipe(seed=s, class_index=s % 5, noise_mode=m) for s, m in zip(range(6), ["const", "none", "random"] * 2)]
    recipes.insert(2, EditRecipe(seed=9))  # an error in the middle keeps order
    frames = renderer.render_many(recipes, batch_size=3)
    assert [f.recipe for f in frames] == recipes
    assert not frames[2].ok
    for frame in frames[:2] + frames[3:]:
        single = renderer.render(frame.recipe)
        assert np.abs(frame.raw.astype(int) - single.raw.astype(int)).max() <= 1


def test_grayscale_models_render_as_rgb():
    renderer = Renderer(load_model(FIXTURES / "sg2_gray32.pkl", device="cpu"))
    frame = renderer.render(EditRecipe(seed=0))
    assert frame.raw.shape == (32, 32, 1) and frame.image.shape == (32, 32, 3)
    assert np.array_equal(frame.image[..., 0], frame.image[..., 2])
