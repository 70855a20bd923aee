"""The StyleGAN2 networks equal the NVlabs reference: same names, same numbers.

The reference outputs in ``tests/fixtures/sg2_*.pt`` were computed by NVlabs
``training/networks_stylegan2.py`` (float32, CPU) with random weights everywhere.
"""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from latentstudio.nets import ops
from latentstudio.nets.stylegan2 import Discriminator, Generator

NAMES = ["sg2_skip32", "sg2_cond64", "sg2_gray32"]
TOL = 1e-4


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.fixture(scope="module", params=NAMES)
def nets(request, load_reference):
    """(reference dict, G, D) with the reference weights loaded strictly, eval mode."""
    ref = load_reference(request.param)
    G = Generator(**ref["G_init_kwargs"]).eval()
    D = Discriminator(**ref["D_init_kwargs"]).eval()
    G.load_state_dict(ref["G_state_dict"], strict=True)
    D.load_state_dict(ref["D_state_dict"], strict=True)
    return ref, G, D


def test_state_dict_names_and_attributes(nets):
    ref, G, D = nets
    assert set(G.state_dict()) == set(ref["G_state_dict"])
    assert set(D.state_dict()) == set(ref["D_state_dict"])
    kw = ref["G_init_kwargs"]
    assert (G.z_dim, G.c_dim, G.w_dim) == (kw["z_dim"], kw["c_dim"], kw["w_dim"])
    assert (G.img_resolution, G.img_channels) == (kw["img_resolution"], kw["img_channels"])
    assert G.num_ws == G.synthesis.num_ws == int(ref["num_ws"])
    assert G.synthesis.block_resolutions[-1] == G.img_resolution
    assert sum(b.num_conv for b in G.synthesis.blocks) + G.synthesis.blocks[-1].num_torgb == G.num_ws


@torch.no_grad()
def test_mapping_matches_reference(nets):
    ref, G, _ = nets
    z, c, out = ref["z"], ref["c"], ref["outputs"]
    assert _max_err(G.mapping(z, c), out["ws"]) < TOL
    assert _max_err(G.mapping(z, c, truncation_psi=0.7), out["ws_psi0.7"]) < TOL
    ws = G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=4)
    assert _max_err(ws, out["ws_psi0.5_cutoff4"]) < TOL
    assert not torch.allclose(ws[:, 4:], ws[:, :4].mean(1, keepdim=True))  # cutoff really cut


@torch.no_grad()
@pytest.mark.parametrize("fused_modconv", [True, False])
def test_synthesis_matches_reference(nets, fused_modconv):
    ref, G, _ = nets
    out = ref["outputs"]
    img = G.synthesis(out["ws"], noise_mode="const", fused_modconv=fused_modconv)
    assert img.dtype == torch.float32  # fp16 blocks stay fp32 on a CPU
    assert _max_err(img, out["img_const"]) < TOL
    assert _max_err(G.synthesis(out["ws"], noise_mode="none", fused_modconv=fused_modconv), out["img_none"]) < TOL
    img = G.synthesis(out["ws_psi0.7"], noise_mode="const", fused_modconv=fused_modconv)
    assert _max_err(img, out["img_psi0.7_const"]) < TOL


@torch.no_grad()
def test_generator_call_equals_mapping_then_synthesis(nets):
    ref, G, _ = nets
    img = G(ref["z"], ref["c"], truncation_psi=0.7, noise_mode="const")
    assert _max_err(img, ref["outputs"]["img_psi0.7_const"]) < TOL


@torch.no_grad()
def test_style_mixing_matches_reference(nets):
    ref, G, _ = nets
    out = ref["outputs"]
    k = int(out["mix_crossover"])
    ws = G.mapping(ref["z"], ref["c"])
    ws_mix = torch.cat([ws[:1, :k], ws[1:2, k:]], dim=1)  # coarse from sample 0, rest from 1
    assert _max_err(ws_mix, out["ws_mix"]) < TOL
    assert _max_err(G.synthesis(ws_mix, noise_mode="const"), out["img_mix_const"]) < TOL


@torch.no_grad()
def test_discriminator_matches_reference(nets):
    ref, _, D = nets
    logits = D(ref["outputs"]["img_const"], ref["c"])
    assert logits.shape == (4, 1)
    assert _max_err(logits, ref["outputs"]["d_logits_img_const"]) < TOL


@torch.no_grad()
def test_restarting_synthesis_from_cached_block_gives_the_same_image(nets):
    ref, G, _ = nets
    syn = G.synthesis
    ws = ref["outputs"]["ws"]
    cache = []
    x = img = None
    for block, block_ws in zip(syn.blocks, syn.split_ws(ws)):
        cache.append((x, img))
        x, img = block(x, img, block_ws, noise_mode="const")
    # Change every latent after the one shared by block k-1's ToRGB and block k's conv0:
    # block k is then the first block whose ws slice changed, so restart there.
    k = 2
    first_changed = sum(b.num_conv for b in syn.blocks[:k]) + 1
    ws2 = ws.clone()
    ws2[:, first_changed:] += 0.5
    assert [torch.equal(a, b) for a, b in zip(syn.split_ws(ws), syn.split_ws(ws2))].index(False) == k
    x, img = cache[k]
    for block, block_ws in list(zip(syn.blocks, syn.split_ws(ws2)))[k:]:
        x, img = block(x, img, block_ws, noise_mode="const")
    assert _max_err(img, syn(ws2, noise_mode="const")) < 1e-6


@torch.no_grad()
def test_random_noise_is_reproducible_from_a_seed(load_reference):
    ref = load_reference("sg2_skip32")
    G = Generator(**ref["G_init_kwargs"]).eval()
    G.load_state_dict(ref["G_state_dict"])
    ws = ref["outputs"]["ws"][:2]

    def render(seed: int) -> torch.Tensor:
        return G.synthesis(ws, noise_mode="random", noise_generator=torch.Generator().manual_seed(seed))

    a, b, other = render(7), render(7), render(8)
    assert torch.equal(a, b)
    assert _max_err(a, other) > 1e-3
    assert _max_err(a, G.synthesis(ws, noise_mode="const")) > 1e-3


def test_update_emas_tracks_w_average():
    G = Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, channel_base=64,
                  channel_max=8, mapping_kwargs=dict(num_layers=2, w_avg_beta=0.5))
    z = torch.randn(16, 8)
    w = G.mapping(z, None)[:, 0].detach()
    assert torch.equal(G.mapping.w_avg, torch.zeros(8))
    G.mapping(z, None, update_emas=True)
    assert torch.allclose(G.mapping.w_avg, 0.5 * w.mean(0), atol=1e-6)


@pytest.mark.parametrize("architecture", ["orig", "resnet", "skip"])
def test_generator_architectures_run(architecture):
    G = Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, img_channels=3, channel_base=128,
                  channel_max=16, architecture=architecture, num_fp16_res=1, mapping_kwargs=dict(num_layers=2))
    assert G.num_ws == 6  # 1 + 2 + 2 convs + final ToRGB
    assert hasattr(G.synthesis.b8, "torgb") == (architecture == "skip")
    assert hasattr(G.synthesis.b8, "skip") == (architecture == "resnet")
    img = G(torch.randn(2, 16), F.one_hot(torch.tensor([0, 2]), 3).float(), noise_mode="random")
    assert img.shape == (2, 3, 16, 16) and img.dtype == torch.float32 and img.isfinite().all()
    img.square().mean().backward()
    assert G.mapping.fc0.weight.grad is not None and G.synthesis.b16.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_discriminator_architectures_run(architecture):
    D = Discriminator(c_dim=0, img_resolution=16, img_channels=1, architecture=architecture,
                      channel_base=128, channel_max=16)
    assert hasattr(D.b8, "fromrgb") == (architecture == "skip")
    logits = D(torch.randn(4, 1, 16, 16), None)
    assert logits.shape == (4, 1) and logits.isfinite().all()


def test_r1_and_path_length_double_backward(load_reference):
    ref = load_reference("sg2_cond64")  # conditional, clamped, fp16 blocks (fp32 on CPU)
    G = Generator(**ref["G_init_kwargs"])
    D = Discriminator(**ref["D_init_kwargs"])
    G.load_state_dict(ref["G_state_dict"])
    D.load_state_dict(ref["D_state_dict"])
    c = ref["c"][:2]

    # R1: penalise the gradient of D's output with respect to real images.
    real = ref["outputs"]["img_const"][:2].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real, c).sum(), real, create_graph=True)
    grad.square().sum().backward()
    assert D.b64.conv0.weight.grad.abs().sum() > 0 and D.mapping.embed.weight.grad.isfinite().all()

    # Path length: gradient of a random image projection with respect to ws.
    ws = G.mapping(ref["z"][:2], c)
    img = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    (pl_grad,) = torch.autograd.grad((img * torch.randn_like(img)).sum(), ws, create_graph=True)
    pl_grad.square().sum().backward()
    assert G.synthesis.b32.conv0.weight.grad.abs().sum() > 0
    assert G.mapping.fc0.weight.grad.isfinite().all()


def _upfirdn2d_by_definition(x, f, up, down, pad, flip, gain):
    """Zero insertion, padding, full 2-D filter, decimation: the literal definition."""
    (upx, upy), (dx, dy) = ops._scaling_xy(up), ops._scaling_xy(down)
    n, c, h, w = x.shape
    y = x.new_zeros(n, c, h * upy, w * upx)
    y[:, :, ::upy, ::upx] = x
    y = F.pad(y, list(ops._padding_xxyy(pad)))
    f2 = (torch.outer(f, f) if f.ndim == 1 else f).double() * gain
    f2 = f2 if flip else f2.flip([0, 1])  # conv2d correlates
    return F.conv2d(y, f2[None, None].repeat(c, 1, 1, 1), groups=c)[:, :, ::dy, ::dx]


@pytest.mark.parametrize("separable", [False, True])
def test_upfirdn2d_matches_its_definition(separable):
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    f = ops.setup_filter([1, 2, 5], separable=separable)
    for up, down, pad, flip in itertools.product([1, 2, [2, 3]], [1, 2], [0, [2, 2, 1, 1], [1, -1, 2, 4]], [False, True]):
        y = ops.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=1.5)
        assert _max_err(y, _upfirdn2d_by_definition(x, f, up, down, pad, flip, 1.5)) < 1e-6


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@torch.no_grad()
def test_fp16_blocks_on_cuda_stay_close_to_fp32(load_reference):
    ref = load_reference("sg2_cond64")  # num_fp16_res 2: the 32 and 64 blocks run in fp16
    G = Generator(**ref["G_init_kwargs"]).eval().cuda()
    G.load_state_dict(ref["G_state_dict"])
    ws = ref["outputs"]["ws"].cuda()
    img32 = G.synthesis(ws, noise_mode="const", force_fp32=True).cpu()
    img16 = G.synthesis(ws, noise_mode="const").cpu()
    assert img16.dtype == torch.float32
    assert _max_err(img32, ref["outputs"]["img_const"]) < 1e-3  # TF32 / cuDNN differences only
    assert _max_err(img16, img32) < 2e-2


def test_lean_demodulation_follows_weight_changes_and_gradients():
    """The lean path keeps each weight's squared tap sums between frames; an in-place weight
    update (an optimizer step) must not leave it stale, and with autograd on it must not
    cut the gradient to the weight."""
    torch.manual_seed(0)
    x, styles = torch.randn(1, 8, 6, 6), torch.randn(1, 8)
    weight = torch.nn.Parameter(torch.randn(5, 8, 3, 3))

    def both():
        lean = ops.modulated_conv2d(x, weight, styles, padding=1, fused_modconv="auto")
        reference = ops.modulated_conv2d(x, weight, styles, padding=1, fused_modconv=False)
        return lean, reference

    with torch.no_grad():
        lean, reference = both()
        assert _max_err(lean, reference) < 1e-5
        weight[:2].mul_(3.0).add_(0.5)  # in place, as an optimizer step
        lean, reference = both()
        assert _max_err(lean, reference) < 1e-5

    lean, reference = both()
    (grad_lean,) = torch.autograd.grad(lean.square().sum(), weight)
    (grad_reference,) = torch.autograd.grad(reference.square().sum(), weight)
    assert _max_err(grad_lean, grad_reference) < 1e-3 * grad_reference.abs().max().item()


def test_derived_weights_are_kept_per_parameter_and_released_with_it():
    import gc
    import weakref

    weight = torch.nn.Parameter(torch.randn(4, 3, 3, 3), requires_grad=False)
    calls = []

    def flipped(w):
        calls.append(1)
        return w.flip([2, 3])

    first = ops.derived(weight, "flip", flipped)
    assert ops.derived(weight, "flip", flipped) is first and len(calls) == 1
    with torch.no_grad():
        weight.add_(1.0)  # in place: recomputed
    assert torch.equal(ops.derived(weight, "flip", flipped), weight.flip([2, 3])) and len(calls) == 2
    assert ops.derived(weight.detach(), "flip", flipped) is not first  # not a parameter: never kept
    view = ops.derived(weight, "view", lambda w: w[:2])  # shares the weight's memory: not kept
    assert view.data_ptr() == weight.data_ptr()
    weight.data.mul_(2)  # `.data` has its own version counter: invisible to the cache ...
    stale = ops.derived(weight, "flip", flipped)
    assert not torch.equal(stale, weight.flip([2, 3])) and len(calls) == 3  # 3: the detached call above
    ops.forget_derived()  # ... so such code says so
    assert torch.equal(ops.derived(weight, "flip", flipped), weight.flip([2, 3])) and len(calls) == 4

    alive = weakref.ref(weight)
    del weight, first, view, stale
    gc.collect()
    assert alive() is None  # the cache does not keep a parameter alive


def test_lean_synthesis_has_the_reference_gradients():
    """The lean path works in place only where autograd does not need the values: with ws
    requiring a gradient (projection, path length) backward runs and agrees with the reference."""
    torch.manual_seed(0)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3, channel_base=256,
                  channel_max=32, mapping_kwargs=dict(num_layers=2)).eval().requires_grad_(False)
    with torch.no_grad():
        for name, parameter in G.named_parameters():
            if name.endswith("noise_strength"):
                parameter.fill_(0.5)
    grads = []
    for mode in ("auto", True):
        ws = torch.randn(1, G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(1), requires_grad=True)
        G.synthesis(ws, noise_mode="const", fused_modconv=mode).square().sum().backward()
        grads.append(ws.grad)
    assert _max_err(grads[0], grads[1]) < 1e-4 * grads[1].abs().max().item()
