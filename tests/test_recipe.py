"""EditRecipe: validation, JSON round trip, and compose_ws against the networks' own mapping."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latentstudio.engine.recipe import DirectionEdit, EditRecipe, RecipeError, compose_ws, seed_to_z
from latentstudio.io import load_model

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def G():
    return load_model(FIXTURES / "sg2_cond64.pkl", device="cpu")


def unit(dim: int, seed: int = 0) -> tuple[float, ...]:
    v = np.random.RandomState(seed).randn(dim)
    return tuple(v / np.linalg.norm(v))


def test_json_round_trip_is_exact():
    recipe = EditRecipe(
        seed=7, class_index=2, truncation_psi=0.7, truncation_cutoff=4, noise_mode="random", noise_seed=3,
        mix_seed=11, mix=(0, 0.25, 1), edits=(DirectionEdit("pca:0", unit(64), 1.5, 2, 5, sigma=0.8),),
        translate=(0.1, -0.2), rotate=15.0, model="abc",
    )
    again = EditRecipe.from_json(recipe.to_json())
    assert again == recipe
    assert json.loads(recipe.to_json())["version"] == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"version": 99}', "unsupported recipe version"),
        ('{"version": 1, "seed": -1}', "seed"),
        ('{"version": 1, "truncation_psi": NaN}', "truncation_psi"),
        ('{"version": 1, "noise_mode": "loud"}', "noise_mode"),
        ('{"version": 1, "colour": 3}', "unknown recipe fields: colour"),
        ('{"version": 1, "mix": [0.5, 2]}', "mix weights"),
        ('{"version": 1, "edits": [{"direction": "x", "vector": [NaN], "strength": 1}]}', "finite"),
        ('{"version": 1, "edits": [{"direction": "x", "vector": [1.0], "first_layer": 4, "last_layer": 2}]}', "layer range"),
        ('{"version": 1, "seed": "3"}', "seed"),
    ],
)
def test_malformed_recipes_are_rejected(text, message):
    with pytest.raises(RecipeError, match=message):
        EditRecipe.from_json(text)


def test_extreme_strength_is_clamped():
    edit = DirectionEdit("x", (1.0,), strength=1e9)
    assert edit.strength == 100.0


def test_compose_matches_mapping_with_truncation_and_cutoff(G):
    z = torch.from_numpy(seed_to_z(5, G.z_dim)).float()
    c = torch.zeros(1, G.c_dim)
    c[0, 1] = 1
    recipe = EditRecipe(seed=5, class_index=1, truncation_psi=0.5, truncation_cutoff=4)
    with torch.no_grad():
        expected = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=4)
    torch.testing.assert_close(compose_ws(G, recipe), expected, atol=1e-6, rtol=0)


def test_compose_style_mixing_takes_layers_from_b(G):
    base = EditRecipe(seed=1, class_index=0, truncation_psi=0.7)
    ws_a = compose_ws(G, base)
    ws_b = compose_ws(G, base.replace(seed=2))
    mixed = compose_ws(G, base.with_layers_from_b(range(6, G.num_ws), G.num_ws, mix_seed=2))
    assert torch.equal(mixed[:, :6], ws_a[:, :6])
    assert torch.equal(mixed[:, 6:], ws_b[:, 6:])


def test_compose_adds_direction_edits_on_their_layers_only(G):
    vector = unit(G.w_dim)
    base = EditRecipe(seed=3, class_index=0)
    edited = base.replace(edits=(DirectionEdit("d", vector, strength=2.0, first_layer=2, last_layer=4, sigma=0.5),))
    delta = compose_ws(G, edited) - compose_ws(G, base)
    expected = torch.tensor(vector, dtype=torch.float32)
    for layer in range(G.num_ws):
        if 2 <= layer <= 4:
            torch.testing.assert_close(delta[0, layer], expected, atol=1e-5, rtol=0)
        else:
            assert torch.all(delta[0, layer] == 0)


def test_compose_errors_are_clear(G):
    with pytest.raises(RecipeError, match="conditional"):
        compose_ws(G, EditRecipe(seed=0))
    with pytest.raises(RecipeError, match="out of range"):
        compose_ws(G, EditRecipe(seed=0, class_index=9))
    with pytest.raises(RecipeError, match="dimensions"):
        compose_ws(G, EditRecipe(seed=0, class_index=0, edits=(DirectionEdit("d", (1.0, 0.0), 1.0),)))
    with pytest.raises(RecipeError, match="stored latent"):
        compose_ws(G, EditRecipe(latent=(1.0, 2.0), class_index=0))


def test_stored_latent_is_used_instead_of_the_seed(G):
    ws = compose_ws(G, EditRecipe(seed=4, class_index=0))
    stored = EditRecipe(latent=tuple(ws[0, 0].tolist()), class_index=0, seed=99)
    torch.testing.assert_close(compose_ws(G, stored), ws, atol=1e-6, rtol=0)
