"""Incremental re-synthesis gives the same pixels as a full render, and previews come first."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latentstudio.engine.recipe import DirectionEdit, EditRecipe
from latentstudio.engine.renderer import Renderer
from latentstudio.io import load_model

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def G():
    return load_model(FIXTURES / "sg2_cond64.pkl", device="cpu")


def edit(G, first: int, last: int, strength: float, seed: int = 0) -> DirectionEdit:
    v = np.random.RandomState(seed).randn(G.w_dim)
    return DirectionEdit("d", tuple(v / np.linalg.norm(v)), strength, first, last)


def sequence(G) -> list[EditRecipe]:
    base = EditRecipe(seed=1, class_index=0, truncation_psi=0.8)
    n = G.num_ws
    return [
        base,
        base.replace(edits=(edit(G, n - 2, n - 1, 2.0),)),  # fine edit
        base.replace(edits=(edit(G, n - 2, n - 1, 3.0),)),  # drag on
        base.replace(edits=(edit(G, n - 1, n - 1, 3.0),)),  # only the last toRGB
        base.replace(edits=(edit(G, 0, 1, 1.0),)),  # coarse edit: restart from the start
        base.replace(mix_seed=5, mix=(0,) * (n - 3) + (1, 1, 1)),  # fine mixing
        base.replace(mix_seed=5, mix=(0,) * (n - 3) + (1, 1, 1)),  # unchanged: nothing re-runs
        base.replace(noise_mode="random", noise_seed=3),
        base.replace(noise_mode="random", noise_seed=3, edits=(edit(G, n - 3, n - 1, 2.0),)),
        base.replace(noise_mode="none", edits=(edit(G, 4, 6, -2.0),)),
    ]


@pytest.mark.parametrize("budget", [512 * 2**20, 40_000])
def test_incremental_equals_full_render(G, budget):
    fast = Renderer(G, incremental=True, cache_bytes=budget)
    plain = Renderer(G, incremental=False)  # the same lean arithmetic, run whole every time
    restarts = []
    for recipe in sequence(G):
        a, b = fast.render(recipe), plain.render(recipe)
        assert a.ok and b.ok
        assert np.array_equal(a.raw, b.raw), recipe
        info = fast.cache_info()
        restarts.append((info["restart_block"], info["restart_step"]))
        assert fast.cache_info()["cached_bytes"] <= max(budget, 0) or budget < 100_000
    num_blocks = fast.cache_info()["num_blocks"]
    if budget > 1e6:
        # Rows n-2 and n-1 are read only by the last block's conv1 and toRGB; row n-3 is
        # shared by the previous block's toRGB, so an edit reaching it restarts there.
        last = num_blocks - 1
        assert restarts[1] == restarts[2] == restarts[3] == (last, 1)  # the last conv1: its conv0 is reused
        assert restarts[5] == (0, 0)  # the coarse edit of the previous recipe is undone
        assert restarts[4] == (0, 0)
        assert restarts[6] == (num_blocks, 0)  # identical recipe: nothing re-ran
        assert restarts[8] == (last - 1, 2)  # random noise restarts mid-way and stays exact


@pytest.mark.parametrize("architecture, top_rows_steps", [("skip", [1, 2, 4]), ("orig", [1, 2, 3]), ("resnet", [1, 2, 2])])
def test_restarts_inside_a_block_equal_a_full_render(architecture, top_rows_steps):
    """Every ws row as the first changed one, with random noise: the restart begins at the
    first layer reading that row (inside a block where it can) and the pixels stay exact."""
    from latentstudio.nets.stylegan2 import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3, channel_base=256,
                  channel_max=32, architecture=architecture, mapping_kwargs=dict(num_layers=2)).eval()
    G.kind = "stylegan2"
    fast, plain = Renderer(G), Renderer(G, incremental=False)
    base = EditRecipe(seed=3, noise_mode="random", noise_seed=1)
    fast.render(base)
    steps_run = []
    for row in reversed(range(G.num_ws)):  # each recipe differs from the previous in `row` only
        recipe = base.replace(edits=(edit(G, row, G.num_ws - 1, 2.0),))
        a, b = fast.render(recipe), plain.render(recipe)
        assert a.ok and b.ok and np.array_equal(a.raw, b.raw), row
        steps_run.append(fast.cache_info()["steps_run"])
    # The top row is read by the last toRGB alone, the next by the last conv1 (and toRGB);
    # the third by the previous toRGB (skip), the last conv0 (orig) or the fused residual step.
    assert steps_run[:3] == top_rows_steps
    assert steps_run[-1] == fast.cache_info()["num_steps"]  # row 0: everything


def test_cache_budget_is_respected(G):
    renderer = Renderer(G, cache_bytes=40_000)
    renderer.render(EditRecipe(seed=2, class_index=1))
    assert 0 < renderer.cache_info()["cached_bytes"] <= 40_000


def test_preview_comes_before_the_full_frame(G):
    renderer = Renderer(G)
    previews = []
    frame = renderer.render(EditRecipe(seed=4, class_index=2), on_preview=previews.append)
    assert len(previews) == 1
    preview = previews[0]
    assert preview.preview and not frame.preview
    assert preview.image.shape == frame.image.shape
    # The preview is the 16x16 partial image (synthesis stopped after block b16), scaled up.
    with torch.no_grad():
        x = img = None
        for block, block_ws in zip(G.synthesis.blocks[:3], G.synthesis.split_ws(frame.ws)):
            x, img = block(x, img, block_ws, noise_mode="const")
    expected = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(preview.image, expected.repeat(4, 0).repeat(4, 1))

    # Once a full frame is known to be quick, previews stop: the frame itself comes as soon.
    renderer.PREVIEW_MIN_FRAME_MS = frame.timings["synthesis_ms"] + 1000
    renderer.render(EditRecipe(seed=5, class_index=2), on_preview=previews.append)
    assert len(previews) == 1
    renderer.PREVIEW_MIN_FRAME_MS = 0.0
    renderer.render(EditRecipe(seed=6, class_index=2), on_preview=previews.append)
    assert len(previews) == 2


@pytest.mark.parametrize("name", ["sg2_cond64", "sg2_skip32", "sg2_gray32"])
def test_lean_modulated_convolution_matches_the_reference(name):
    G = load_model(FIXTURES / f"{name}.pkl", device="cpu")
    ref = torch.load(FIXTURES / f"{name}.pt", weights_only=True)["outputs"]
    with torch.no_grad():
        for ws in ref["ws"].split(1):
            lean = G.synthesis(ws, noise_mode="const", fused_modconv="auto")
            plain = G.synthesis(ws, noise_mode="const")
            torch.testing.assert_close(lean, plain, atol=1e-4, rtol=0)
    fast = Renderer(G).render(EditRecipe(seed=0, class_index=0 if G.c_dim else None))
    reference = Renderer(G, incremental=False, lean=False).render(fast.recipe)
    assert np.abs(fast.raw.astype(int) - reference.raw.astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["sg3t_32", "sg3r_cond32"])
def test_stylegan3_restarts_at_the_first_layer_an_edit_reaches(name):
    G3 = load_model(FIXTURES / f"{name}.pkl", device="cpu")
    fast, plain = Renderer(G3), Renderer(G3, incremental=False)
    n = G3.num_ws
    base = EditRecipe(seed=2, class_index=0 if G3.c_dim else None, truncation_psi=0.8)
    recipes = [
        base,
        base.replace(edits=(edit(G3, n - 1, n - 1, 2.0),)),  # ToRGB only
        base.replace(edits=(edit(G3, n - 3, n - 1, 2.0),)),  # the last three layers
        base.replace(edits=(edit(G3, n - 3, n - 1, 2.0),), translate=(0.1, 0.0)),  # input transform: all
        base.replace(edits=(edit(G3, 0, 2, 1.0),), translate=(0.1, 0.0)),  # the input's row: all
    ]
    steps_run = []
    for recipe in recipes:
        a, b = fast.render(recipe), plain.render(recipe)
        assert a.ok and b.ok and np.array_equal(a.raw, b.raw), recipe
        steps_run.append(fast.cache_info()["steps_run"])
    assert steps_run == [n, 1, 3, n, n]


def test_thumbnails_do_not_evict_the_editor_cache(G):
    renderer = Renderer(G)
    base = EditRecipe(seed=1, class_index=0, noise_mode="random", noise_seed=2)  # not batchable
    renderer.render(base)
    thumbnails = renderer.render_many([base.replace(seed=s) for s in range(3)])
    assert all(frame.ok for frame in thumbnails)
    n = G.num_ws
    frame = renderer.render(base.replace(edits=(edit(G, n - 1, n - 1, 2.0),)))
    assert renderer.cache_info()["steps_run"] == 1  # only the last toRGB: the cache survived
    assert (frame.layers_run, frame.num_layers) == (1, renderer.cache_info()["num_steps"])
    assert thumbnails[0].layers_run is None  # one-off frames do not claim reuse


def test_stylegan3_ignores_random_noise_and_still_reuses_layers():
    """StyleGAN3 has no noise inputs: a random-noise recipe renders, and restarts stay exact."""
    G3 = load_model(FIXTURES / "sg3t_32.pkl", device="cpu")
    fast, plain = Renderer(G3), Renderer(G3, incremental=False)
    base = EditRecipe(seed=1, noise_mode="random", noise_seed=3)
    fast.render(base)
    recipe = base.replace(edits=(edit(G3, G3.num_ws - 2, G3.num_ws - 1, 2.0),), noise_seed=4)
    a, b = fast.render(recipe), plain.render(recipe)
    assert a.ok and b.ok and np.array_equal(a.raw, b.raw)
    assert fast.cache_info()["steps_run"] == 2  # a new noise seed changes nothing here


def test_a_failed_frame_leaves_no_half_updated_cache(G):
    """If a frame fails part-way (an exception in a callback, out of memory), the next frame
    must not resume from that frame's layer inputs."""
    from latentstudio.engine.recipe import compose_ws

    incremental = Renderer(G).incremental
    first = EditRecipe(seed=1, class_index=0)
    ws = compose_ws(G, first)
    with torch.inference_mode():
        incremental(ws)
        changed = compose_ws(G, first.replace(seed=2))

        def fail(index, resolution, img):
            if index == len(incremental.blocks) - 1:  # after the last block ran: its inputs are new
                raise RuntimeError("out of memory")

        with pytest.raises(RuntimeError):
            incremental(changed, on_block=fail)
        fine = ws.clone()
        fine[:, -1] += 1.0  # the first frame's ws with its top row changed: a late restart
        got = incremental(fine)
        expected = G.synthesis(fine, noise_mode="const", fused_modconv="auto")
    assert torch.equal(got, expected)


def test_plain_arithmetic_is_kept_when_lean_is_off(G):
    recipe = EditRecipe(seed=3, class_index=1)
    frame = Renderer(G, incremental=True, lean=False).render(recipe)
    from latentstudio.engine.recipe import compose_ws
    from latentstudio.engine.renderer import to_uint8

    with torch.inference_mode():
        reference = to_uint8(G.synthesis(compose_ws(G, recipe), noise_mode="const"))[0]
    assert np.array_equal(frame.raw, reference)
