"""Drag to edit (DragGAN): feature maps, point tracking, motion and mask terms, recipes, CLI."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from latentstudio.cli import main
from latentstudio.defaults import DEFAULT_MODEL
from latentstudio.engine.drag import DragError, DragSettings, drag, load_mask, recipe_for_ws, track_points
from latentstudio.engine.export import read_png_recipe, save_png
from latentstudio.engine.feature_maps import FeatureSynthesis, ResizedFeatures, default_feature_layer, feature_layers
from latentstudio.engine.ranges import RangeSyntaxError, parse_point_pairs
from latentstudio.engine.recipe import DirectionEdit, EditRecipe, compose_ws
from latentstudio.engine.renderer import Renderer
from latentstudio.io import load_model
from latentstudio.nets import stylegan2

SEED = 3


@pytest.fixture(scope="module")
def G():
    """The bundled default model: trained, so its features mean something, and small."""
    return load_model(DEFAULT_MODEL, device="cpu")


def small_stylegan2(architecture: str, resolution: int = 32) -> torch.nn.Module:
    torch.manual_seed(0)
    return stylegan2.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=resolution, img_channels=3, architecture=architecture,
                               channel_base=8 * resolution, channel_max=16).eval().requires_grad_(False)


def horizontal_drag(G, distance_fraction: float = 0.1):
    """A handle in the middle of the image and a target ``distance_fraction`` of the width to its right."""
    R = G.img_resolution
    handle = (R // 2, R // 2)
    return handle, (handle[0] + round(distance_fraction * R), handle[1])


# -- feature maps ----------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["skip", "orig", "resnet"])
@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_feature_synthesis_draws_the_networks_own_image_stylegan2(architecture, noise_mode):
    G = small_stylegan2(architecture)
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    generator = torch.Generator().manual_seed(7) if noise_mode == "random" else None
    reference = G.synthesis(ws, noise_mode=noise_mode, noise_generator=generator)
    layers = feature_layers(G)
    for layer in layers:
        synthesis = FeatureSynthesis(G, layer.index, noise_mode=noise_mode, noise_seed=7)
        features = synthesis.features(ws)
        assert torch.allclose(synthesis.image(ws, features.carry), reference, atol=1e-5)
        assert features.map.shape == (1, layer.channels, layer.size, layer.size)
        assert (features.partial_image is not None) == (architecture == "skip" or layer is layers[-1])


def test_feature_synthesis_draws_the_networks_own_image_stylegan3(fixtures_dir):
    G = load_model(fixtures_dir / "sg3t_32.pkl", device="cpu")
    ws = compose_ws(G, EditRecipe(seed=1))
    synthesis = FeatureSynthesis(G)
    assert synthesis.layer.name == "L5_52_64" and synthesis.layer.size == 32  # DragGAN's 6th layer, margins cropped
    features = synthesis.features(ws)
    assert features.map.shape == (1, 64, 32, 32) and features.partial_image is None
    assert torch.equal(synthesis.image(ws, features.carry), G.synthesis(ws))


def test_resized_features_read_the_bilinearly_resized_map_without_building_it():
    torch.manual_seed(0)
    feature_map = torch.randn(1, 5, 16, 16)
    full = F.interpolate(feature_map, size=(64, 64), mode="bilinear", align_corners=False)
    resized = ResizedFeatures(feature_map, 64)
    points = np.random.default_rng(0).uniform(0, 63, size=(40, 2))
    points[:3] = [[0, 0], [63, 63], [10, 20]]
    grid = torch.tensor(points / 63 * 2 - 1, dtype=torch.float32).reshape(1, 1, -1, 2)
    expected = F.grid_sample(full, grid, align_corners=True)[0, :, 0]
    assert torch.allclose(resized.at(points), expected, atol=1e-5)
    assert torch.allclose(resized.window(3, 5, 20, 9), full[0, :, 5:9, 3:20], atol=1e-5)


def test_features_carry_gradients_to_the_latents_they_depend_on(G):
    ws = compose_ws(G, EditRecipe(seed=SEED)).requires_grad_(True)
    synthesis = FeatureSynthesis(G)
    synthesis.features(ws).map.square().mean().backward()
    rows_with_gradient = ws.grad[0].abs().sum(dim=1) > 0
    assert rows_with_gradient[: synthesis.layer.last_row + 1].all() and not rows_with_gradient[synthesis.layer.last_row + 1 :].any()


def test_the_default_feature_layer_is_draggans_sixth_block_scaled_to_the_model():
    names = {R: feature_layers(small_stylegan2("skip", R))[default_feature_layer(small_stylegan2("skip", R))].name
             for R in (32, 64, 256, 512)}
    assert names == {32: "b16", 64: "b32", 256: "b128", 512: "b128"}


# -- point tracking and dragging -------------------------------------------------------------
def test_tracking_finds_a_feature_where_it_moved():
    features = torch.zeros(1, 4, 20, 20)
    features[0, :, 9, 12] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # (x, y) = (12, 9)
    reference = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    resized = ResizedFeatures(features, 20)
    assert track_points(resized, reference, np.array([[10.0, 10.0]]), radius=3).tolist() == [[12.0, 9.0]]
    assert track_points(resized, reference, np.array([[3.0, 3.0]]), radius=3).tolist() != [[12.0, 9.0]]  # out of reach


def test_a_drag_moves_the_tracked_handle_towards_its_target(G):
    handle, target = horizontal_drag(G)
    steps = []
    weights = {name: value.clone() for name, value in G.state_dict().items()}
    result = drag(G, EditRecipe(seed=SEED, truncation_psi=0.7), [handle], [target], settings=DragSettings(steps=40),
                  callback=steps.append)
    assert all(torch.equal(value, weights[name]) for name, value in G.state_dict().items())  # the model is untouched
    assert not any(p.requires_grad for p in G.parameters())
    distances = np.linalg.norm(result.tracks - np.array(target), axis=2)[:, 0]
    assert distances[0] == pytest.approx(np.hypot(*np.subtract(target, handle)))
    assert result.distances[0] < 0.5 * distances[0]
    assert len(result.tracks) == result.steps + 1 and result.steps == len(steps) - (result.reason == "converged")
    assert [s.step for s in steps][:3] == [1, 2, 3] and steps[-1].image.shape == (G.img_resolution,) * 2 + (3,)
    # A report after update k shows the step's forward pass: the points tracked before that update.
    assert [s.state["points"] for s in steps[:3]] == result.tracks[:3].tolist()


def test_with_a_mask_what_lies_outside_changes_much_less(G):
    R = G.img_resolution
    handle, target = horizontal_drag(G)
    yy, xx = np.mgrid[:R, :R]
    centre = np.add(handle, target) / 2
    distance = np.hypot(xx - centre[0], yy - centre[1])
    mask = distance < 0.2 * R
    recipe = EditRecipe(seed=SEED, truncation_psi=0.7)
    renderer = Renderer(G)
    before = renderer.render(recipe).image.astype(float)
    far_outside = distance > 0.3 * R

    def outside_over_inside(result) -> float:
        change = np.abs(renderer.render(result.recipe).image - before).mean(axis=2)
        return change[far_outside].mean() / change[mask].mean()

    masked = outside_over_inside(drag(G, recipe, [handle], [target], mask=mask, settings=DragSettings(steps=60)))
    free = outside_over_inside(drag(G, recipe, [handle], [target], settings=DragSettings(steps=60)))
    assert masked < 0.5 * free and masked < 0.5  # the same drag without a mask changes everything alike


def test_the_result_is_a_recipe_that_composes_with_other_edits(G):
    vector = tuple(np.eye(G.w_dim)[0])
    edit = DirectionEdit("pc1", vector, strength=1.5, first_layer=2, sigma=0.8)
    recipe = EditRecipe(seed=SEED, truncation_psi=0.7, mix_seed=9, mix=(0, 0, 0, 0, 0, 1), edits=(edit,))
    handle, target = horizontal_drag(G, 0.05)
    result = drag(G, recipe, [handle], [target], settings=DragSettings(steps=3))
    assert result.recipe.latent is not None and result.recipe.edits == (edit,)  # the slider keeps its value
    assert result.recipe.truncation_psi == 0.7  # and so does truncation
    assert torch.allclose(compose_ws(G, result.recipe), result.ws, atol=1e-5)
    stronger = result.recipe.replace(edits=(dataclasses.replace(edit, strength=2.5),))
    moved = compose_ws(G, stronger) - result.ws
    assert torch.allclose(moved[0, 2:], 0.8 * torch.tensor(vector, dtype=torch.float32).expand(G.num_ws - 2, -1), atol=1e-5)
    assert moved[0, :2].abs().max() < 1e-5
    assert EditRecipe.from_json(result.recipe.to_json()) == result.recipe


def test_a_projected_photo_drags_like_a_seed(G):
    """Recipes with a stored latent (what projection produces) start a drag as well."""
    ws = compose_ws(G, EditRecipe(seed=SEED, truncation_psi=0.7))
    ws = ws + 0.05 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(0))
    projected = EditRecipe(latent=tuple(ws.flatten().tolist()))
    handle, target = horizontal_drag(G)
    result = drag(G, projected, [handle], [target], settings=DragSettings(steps=30))
    assert result.distances[0] < np.hypot(*np.subtract(target, handle))
    assert torch.equal(compose_ws(G, projected)[:, result.settings.num_layers :], result.ws[:, result.settings.num_layers :])


@pytest.mark.parametrize("fixture", ["sg3t_32.pkl", "sg2_gray32.pkl", "resnet", "orig"])
def test_every_architecture_drags(fixtures_dir, fixture):
    G = small_stylegan2(fixture) if fixture in ("resnet", "orig") else load_model(fixtures_dir / fixture, device="cpu")
    handle, target = horizontal_drag(G)
    result = drag(G, EditRecipe(seed=1), [handle], [target], settings=DragSettings(steps=3))
    assert result.tracks.shape == (result.steps + 1, 1, 2) and torch.isfinite(result.ws).all()


def test_a_handle_already_at_its_target_needs_no_step(G):
    result = drag(G, EditRecipe(seed=SEED), [(10, 10)], [(10, 10)])
    assert (result.reason, result.steps, result.tracks.tolist()) == ("converged", 0, [[[10.0, 10.0]]])


def test_cancelling_keeps_the_last_update(G):
    calls = []
    handle, target = horizontal_drag(G)
    result = drag(G, EditRecipe(seed=SEED), [handle], [target], should_stop=lambda: len(calls.append(0) or calls) > 4)
    assert (result.reason, result.steps, len(result.tracks)) == ("cancelled", 4, 5)
    assert not torch.equal(result.ws, compose_ws(G, EditRecipe(seed=SEED)))


def test_settings_follow_the_paper_scaled_to_the_model(G):
    settings = DragSettings().resolved(G, num_handles=2)
    assert settings.num_layers == round(0.6 * G.num_ws) and settings.stop_distance == 1.0  # a small model
    assert settings.feature_layer == default_feature_layer(G)
    assert DragSettings().resolved(G, num_handles=5).stop_distance == 2.0
    assert DragSettings(lr=0.5).resolved(G, 1).lr == 0.5  # what is set stays set
    paper_sized = DragSettings().resolved(small_stylegan2("skip", 512), num_handles=1)
    assert (paper_sized.lr, paper_sized.mask_weight, paper_sized.image_hold) == (2e-3, 20.0, 0.0)
    assert (paper_sized.num_layers, paper_sized.motion_radius, paper_sized.tracking_radius) == (6, 3.0, 12.0)


@pytest.mark.parametrize("handles, targets, mask, settings, message", [
    ([], [], None, DragSettings(), "at least one handle"),
    ([(1, 1)], [(2, 2), (3, 3)], None, DragSettings(), "one target per handle"),
    ([(1, 1)], [(64, 2)], None, DragSettings(), "outside the 64x64 image"),
    ([(1, float("nan"))], [(2, 2)], None, DragSettings(), "outside"),
    ([(1, 1)], [(2, 2)], np.ones((32, 32)), DragSettings(), "needs 64x64"),
    ([(1, 1)], [(2, 2)], np.zeros((64, 64)), DragSettings(), "empty"),
    ([(1, 1)], [(2, 2)], None, DragSettings(feature_layer=9), "does not exist"),
    ([(1, 1)], [(2, 2)], None, DragSettings(num_layers=0), "num_layers"),
    ([(1, 1)], [(2, 2)], None, DragSettings(lr=-1.0), "learning rate"),
])
def test_unusable_points_masks_and_settings_are_one_line_errors(G, handles, targets, mask, settings, message):
    if G.img_resolution != 64:
        pytest.skip("the messages name a 64 px model")
    with pytest.raises(DragError, match=message):
        drag(G, EditRecipe(seed=SEED), handles, targets, mask=mask, settings=settings)


# -- masks from files, point syntax -----------------------------------------------------------
def test_mask_files_white_may_change_and_are_resized(tmp_path):
    picture = np.zeros((128, 128), dtype=np.uint8)
    picture[:, 64:] = 255
    Image.fromarray(picture).save(tmp_path / "half.png")
    mask = load_mask(tmp_path / "half.png", 64)
    assert mask.shape == (64, 64) and mask[:, 32:].all() and not mask[:, :32].any()
    rgba = np.zeros((64, 64, 4), dtype=np.uint8)
    rgba[10:20, 10:20] = 255  # white paint on a transparent layer
    Image.fromarray(rgba, "RGBA").save(tmp_path / "paint.png")
    assert load_mask(tmp_path / "paint.png", 64).sum() == 100


@pytest.mark.parametrize("content, message", [
    (b"not an image", "not a readable mask"),
    (None, "must be square"),
    (b"", "not a readable mask"),
])
def test_bad_mask_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "mask.png"
    if content is None:
        Image.new("L", (64, 32), 255).save(path)
    else:
        path.write_bytes(content)
    with pytest.raises(DragError, match=message):
        load_mask(path, 64)


def test_point_pairs_parse_and_bad_ones_say_which_part():
    assert parse_point_pairs("10,20:14,20; 3.5,4:5,6;") == [((10, 20), (14, 20)), ((3.5, 4), (5, 6))]
    for text, part in (("10,20", "'10,20' is not a pair"), ("1,2:3", "'3' in '1,2:3'"), ("a,b:1,2", "'a,b'"), (";", "no point pairs")):
        with pytest.raises(RangeSyntaxError, match=part):
            parse_point_pairs(text)


# -- the command line -------------------------------------------------------------------------
def test_cli_writes_the_image_and_a_report_that_agrees_with_the_engine(G, tmp_path, capsys):
    handle, target = horizontal_drag(G)
    points = f"{handle[0]},{handle[1]}:{target[0]},{target[1]}"
    code = main(["drag", str(DEFAULT_MODEL), "--seed", str(SEED), "--trunc", "0.7", "--points", points, "--steps", "10",
                 "--out", str(tmp_path / "drag.png"), "--report", str(tmp_path / "drag.json")])
    assert code == 0 and "final distance" in capsys.readouterr().out
    report = json.loads((tmp_path / "drag.json").read_text())
    expected = drag(G, EditRecipe(seed=SEED, truncation_psi=0.7, model=G.info.fingerprint), [handle], [target],
                    settings=DragSettings(steps=10))
    assert report["tracks"] == expected.tracks.tolist() and report["steps"] == expected.steps
    assert report["final_distances"] == pytest.approx(expected.distances.tolist(), abs=1e-4)
    recipe, model_path = read_png_recipe(tmp_path / "drag.png")
    assert recipe == expected.recipe and model_path == str(DEFAULT_MODEL.resolve())
    image = np.asarray(Image.open(tmp_path / "drag.png"))
    assert np.array_equal(image, Renderer(G).render(expected.recipe).raw)


def test_cli_starts_from_an_exported_image_with_a_mask(G, tmp_path):
    start = EditRecipe(seed=SEED, truncation_psi=0.7)
    save_png(tmp_path / "edited.png", Renderer(G).render(start).raw, start)
    R = G.img_resolution
    Image.fromarray(np.full((R, R), 255, dtype=np.uint8)).save(tmp_path / "mask.png")
    handle, target = horizontal_drag(G)
    code = main(["drag", str(DEFAULT_MODEL), "--recipe", str(tmp_path / "edited.png"), "--mask", str(tmp_path / "mask.png"),
                 "--points", f"{handle[0]},{handle[1]}:{target[0]},{target[1]}", "--steps", "2", "--out", str(tmp_path / "out.png")])
    assert code == 0
    recipe, _ = read_png_recipe(tmp_path / "out.png")
    assert recipe.latent is not None and recipe.seed == SEED


@pytest.mark.parametrize("extra, message", [
    (["--seed", "1", "--points", "1,1:99,99"], "outside"),
    (["--seed", "1", "--points", "1,1:2,2", "--mask", "missing.png"], "missing.png: no such file"),
    (["--recipe", "missing.png", "--points", "1,1:2,2"], "missing.png"),
    (["--recipe", "x.png", "--trunc", "0.5", "--points", "1,1:2,2"], "--trunc goes with --seed"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    assert main(["drag", str(DEFAULT_MODEL), *extra, "--out", "out.png"]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error and "Traceback" not in error


def test_cli_rejects_malformed_points(capsys):
    with pytest.raises(SystemExit):
        main(["drag", str(DEFAULT_MODEL), "--seed", "1", "--points", "1,1", "--out", "x.png"])
    assert "is not a pair" in capsys.readouterr().err


@pytest.mark.parametrize("psi, cutoff", [(0.5, 4), (0.7, None), (0.0, None), (1.0, None)])
def test_recipe_for_ws_reproduces_the_latents_and_keeps_truncation(G, psi, cutoff):
    recipe = EditRecipe(seed=SEED, truncation_psi=psi, truncation_cutoff=cutoff, mix_seed=2, mix=(1, 1))
    ws = compose_ws(G, recipe) + 0.1  # as if dragged
    kept = recipe_for_ws(G, recipe, ws)
    assert (kept.mix_seed, kept.mix) == (None, ())
    assert (kept.truncation_psi, kept.truncation_cutoff) == ((psi, cutoff) if psi != 0 else (1.0, None))
    assert torch.allclose(compose_ws(G, kept), ws, atol=1e-5)
