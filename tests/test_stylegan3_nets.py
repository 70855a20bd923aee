"""The StyleGAN3 generator equals the NVlabs reference: same names, same numbers.

The reference outputs in ``tests/fixtures/sg3*.pt`` were computed by NVlabs
``training/networks_stylegan3.py`` (float32, CPU, reference ops): ``sg3t_32`` is config T
(3x3 convs), ``sg3r_cond32`` config R (1x1 convs, radial filters) with labels. Their
discriminator is the StyleGAN2 one.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch

from latentstudio.nets import ops
from latentstudio.nets.filtered_lrelu import design_lowpass_filter, filtered_lrelu
from latentstudio.nets.stylegan3 import Generator, make_input_transform

NAMES = ["sg3t_32", "sg3r_cond32"]
TOL = 1e-4


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These tensors are small: a second intra-op thread gains little, and on a busy shared
    2-core machine its synchronisation stalls make runs ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module", params=NAMES)
def reference(request, load_reference):
    """(reference dict, G) with the reference weights loaded strictly, eval mode."""
    ref = load_reference(request.param)
    G = Generator(**ref["G_init_kwargs"]).eval()
    G.load_state_dict(ref["G_state_dict"], strict=True)
    return ref, G


def test_fresh_network_has_reference_names_and_filters(load_reference):
    for name in NAMES:
        ref = load_reference(name)
        fresh = Generator(**ref["G_init_kwargs"]).state_dict()
        assert set(fresh) == set(ref["G_state_dict"])
        # The low-pass filters are designed, not learned: a fresh network must already have them.
        filters = [key for key in fresh if key.endswith("_filter")]
        assert filters
        for key in filters:
            assert _max_err(fresh[key], ref["G_state_dict"][key]) < 1e-6, key
        assert any(fresh[key].ndim == 2 for key in filters) == (name == "sg3r_cond32")  # radial only in R


def test_attributes_and_layer_layout(reference):
    ref, G = reference
    kw = ref["G_init_kwargs"]
    assert (G.z_dim, G.c_dim, G.w_dim) == (kw["z_dim"], kw["c_dim"], kw["w_dim"])
    assert (G.img_resolution, G.img_channels) == (kw["img_resolution"], kw["img_channels"])
    assert G.num_ws == G.synthesis.num_ws == G.mapping.num_ws == int(ref["num_ws"])
    names = G.synthesis.layer_names
    assert len(names) == G.num_ws - 1  # ws[0] drives the Fourier-feature input
    layers = G.synthesis.layers
    for name, layer in zip(names, layers):
        assert name.endswith(f"_{int(layer.out_size[0])}_{layer.out_channels}")
    rates = [layer.out_sampling_rate for layer in layers]
    assert rates == sorted(rates) and rates[-1] == G.img_resolution
    assert layers[-1].is_torgb and layers[-1].out_channels == G.img_channels
    assert all(layer.out_sampling_rate == layer_next.in_sampling_rate for layer, layer_next in zip(layers, layers[1:]))


@torch.no_grad()
def test_mapping_matches_reference(reference):
    ref, G = reference
    z, c, out = ref["z"], ref["c"], ref["outputs"]
    assert _max_err(G.mapping(z, c), out["ws"]) < TOL
    assert _max_err(G.mapping(z, c, truncation_psi=0.7), out["ws_psi0.7"]) < TOL
    cut = G.mapping(z, c, truncation_psi=0.7, truncation_cutoff=4)
    assert _max_err(cut[:, :4], out["ws_psi0.7"][:, :4]) < TOL
    assert _max_err(cut[:, 4:], out["ws"][:, 4:]) < TOL


@torch.no_grad()
def test_synthesis_matches_reference(reference):
    ref, G = reference
    out = ref["outputs"]
    assert _max_err(G.synthesis(out["ws"]), out["img"]) < TOL
    assert _max_err(G(ref["z"], ref["c"], truncation_psi=0.7), out["img_psi0.7"]) < TOL


@torch.no_grad()
def test_style_mixing_matches_reference(reference):
    ref, G = reference
    out = ref["outputs"]
    crossover = int(out["mix_crossover"])
    ws_mix = torch.cat([out["ws"][:1, :crossover], out["ws"][1:2, crossover:]], dim=1)
    assert _max_err(ws_mix, out["ws_mix"]) < TOL
    img = G.synthesis(ws_mix, noise_mode="random")  # StyleGAN3 has no noise: any mode, same image
    assert _max_err(img, out["img_mix"]) < TOL
    with pytest.raises(AssertionError):
        G.synthesis(ws_mix, noise_mode="bogus")


@torch.no_grad()
def test_transformed_synthesis_matches_reference(reference):
    ref, G = reference
    out = ref["outputs"]
    assert _max_err(make_input_transform(0.1, -0.05, 15), out["transform"]) < 1e-6
    G.synthesis.set_transform(translate=(0.1, -0.05), rotate_deg=15)
    try:
        img = G.synthesis(out["ws"])
    finally:
        G.synthesis.set_transform()
    assert torch.equal(G.synthesis.input.transform, torch.eye(3))
    assert _max_err(img, out["img_transform"]) < TOL
    assert _max_err(img, out["img"]) > 0.01  # the transform really moved the image


@torch.no_grad()
def test_discriminator_logits_match_reference(reference):
    stylegan2 = pytest.importorskip("latentstudio.nets.stylegan2")
    ref, _ = reference
    D = stylegan2.Discriminator(**ref["D_init_kwargs"]).eval()
    D.load_state_dict(ref["D_state_dict"], strict=True)
    assert _max_err(D(ref["outputs"]["img"], ref["c"]), ref["outputs"]["d_logits_img"]) < TOL


def test_gradients_reach_every_parameter(reference):
    ref, G = reference
    G = copy.deepcopy(G)
    img = G(ref["z"][:2], ref["c"][:2])
    img.square().mean().backward()
    for name, param in G.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


@torch.no_grad()
def test_update_emas_tracks_w_and_magnitudes(reference):
    ref, G = reference
    G = copy.deepcopy(G)
    before = {k: v.clone() for k, v in G.state_dict().items() if k.endswith(("w_avg", "magnitude_ema"))}
    G(ref["z"][:1], ref["c"][:1], update_emas=True)
    after = G.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("radial", [False, True])
@pytest.mark.parametrize("up, down, padding, size", [
    (2, 2, [9, 8, 9, 8], (17, 19)),
    (4, 2, [-6, -9, -5, -8], (19, 17)),
    (2, 1, [3, 4], (9, 11)),
    (2, 2, [9, 8, 9, 8], (100, 130)),  # long axes: resampled in chunks
])
def test_filtered_lrelu_equals_upfirdn2d_composition(radial, up, down, padding, size):
    """The matrix-product implementation computes what the reference op sequence computes,
    with and without autograd (which take different code paths)."""
    gen = torch.Generator().manual_seed(up * 10 + down + radial)
    x = torch.randn([2, 3, *size], generator=gen) * 3
    b = torch.randn([3], generator=gen)
    fu = design_lowpass_filter(6 * up, cutoff=3, width=2, fs=8 * up)
    fd = design_lowpass_filter(6 * down, cutoff=3, width=2, fs=8 * up, radial=radial) if down > 1 else None
    for flip in (False, True):
        expected = ops.bias_act(x, b)
        expected = ops.upfirdn2d(expected, fu, up=up, padding=padding, gain=up**2, flip_filter=flip)
        expected = ops.bias_act(expected, act="lrelu", alpha=0.2, gain=math.sqrt(2), clamp=4.0)
        expected = ops.upfirdn2d(expected, fd, down=down, flip_filter=flip)
        for requires_grad in (False, True):
            x_in = x.clone().requires_grad_(requires_grad)
            actual = filtered_lrelu(x_in, fu, fd, b, up=up, down=down, padding=padding, clamp=4.0, flip_filter=flip)
            assert _max_err(actual.detach(), expected) < 1e-5
