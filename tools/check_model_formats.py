"""Real-size check of the rosinality and TensorFlow readers (too slow for the test suite).

    PYTHONPATH=$PWD python tools/check_model_formats.py [--res 256] [--batch 2]

Builds random-weight networks at the sizes people download, in each format's own layout, and
compares what latentstudio loads with what that code base computes:

- rosinality: a ``train.py`` checkpoint (``g``, ``d``, ``g_ema``, ``args``, ...) with
  rosinality's real channel table (``channel_multiplier`` 2: 512 up to 64x64, then 256, 128),
  512-dim latents and 8 mapping layers, saved with ``torch.save``; the reference is the
  op-for-op re-implementation of rosinality's ``model.py`` in ``tests/rosinality_layout.py``,
  which the test suite checks against rosinality's own outputs;
- TensorFlow: config F (``fmap_base`` 16384, ``fmap_max`` 512, 512-dim latents, 8 mapping
  layers, residual D) and a StyleGAN2-ADA style conditional network (fp16 resolutions,
  ``conv_clamp``), written as TF variables the way the TF code pickles them
  (``tests/tf_layout.py``); the reference is the NVlabs-equivalent network they came from.

First, the fixtures: max |diff| of every reference output of ``tests/fixtures/ros_*`` and
``tf_*`` (rosinality's own outputs, NVlabs ``legacy.py``'s conversion). Prints max |diff| of
images (relative to their largest value where it exceeds 1) and of discriminator logits, and
exits non-zero if any exceeds 1e-4.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import rosinality_layout as ros  # noqa: E402
import tf_layout as tf  # noqa: E402

from latentstudio.io import load_networks  # noqa: E402
from latentstudio.nets.stylegan2 import Discriminator, Generator  # noqa: E402

TOLERANCE = 1e-4
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def report(name: str, got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Print max |diff|; within 1e-4 of the values' scale (1 for values that stay below 1)."""
    scale = float(expected.abs().max())
    diff = float((got - expected).abs().max())
    ok = diff <= TOLERANCE * max(scale, 1.0)
    print(f"  {name:<34} max |diff| {diff:.3e}   (largest value {float(expected.abs().max()):.3g})  {'ok' if ok else 'FAIL'}")
    return ok


def check_fixtures() -> bool:
    ok = True
    for name in ("ros_train32", "ros_converted64"):
        print(f"fixture {name}.pt against rosinality's outputs ({name}.ref.pt)")
        ref = torch.load(FIXTURES / f"{name}.ref.pt", weights_only=True)
        nets, out, z = load_networks(FIXTURES / f"{name}.pt"), ref["outputs"], ref["z"]
        G, k = nets["G_ema"], int(ref["outputs"]["mix_inject_index"])
        with torch.no_grad():
            ws = G.mapping(z, None)
            ok &= report("w", ws[:, 0], out["w"])
            ok &= report("img (stored noise)", G.synthesis(ws, noise_mode="const"), out["img"])
            ok &= report("img_from_w", G.synthesis(out["w"].unsqueeze(1).repeat(1, G.num_ws, 1), noise_mode="const"), out["img_from_w"])
            ok &= report("img_mix", G.synthesis(torch.cat([ws[:1, :k], ws[1:2, k:]], 1), noise_mode="const"), out["img_mix"])
            if "img_psi0.7" in out:
                ok &= report("img_psi0.7", G(z, None, truncation_psi=0.7, noise_mode="const"), out["img_psi0.7"])
            if "D" in nets:
                ok &= report("d_logits", nets["D"](out["img"], None), out["d_logits"])
    for name in ("tf_sg2_32", "tf_sg2ada_cond32"):
        print(f"fixture {name}.pkl against legacy.py's conversion ({name}.pt)")
        ref = torch.load(FIXTURES / f"{name}.pt", weights_only=True)
        nets, out, z, c = load_networks(FIXTURES / f"{name}.pkl"), ref["outputs"], ref["z"], ref["c"]
        G, k = nets["G_ema"], int(out["mix_crossover"])
        with torch.no_grad():
            ok &= report("ws", G.mapping(z, c), out["ws"])
            ok &= report("ws_psi0.7", G.mapping(z, c, truncation_psi=0.7), out["ws_psi0.7"])
            ok &= report("img_const", G.synthesis(out["ws"], noise_mode="const"), out["img_const"])
            ok &= report("img_none", G.synthesis(out["ws"], noise_mode="none"), out["img_none"])
            mix = torch.cat([out["ws"][:1, :k], out["ws"][1:2, k:]], 1)
            ok &= report("img_mix_const", G.synthesis(mix, noise_mode="const"), out["img_mix_const"])
            ok &= report("d_logits_img_const", nets["D"](out["img_const"], c), out["d_logits_img_const"])
    return ok


def check_rosinality(res: int, batch: int, folder: Path) -> bool:
    table = {r: w for r, w in ros.rosinality_channels(2).items() if r <= res}
    print(f"rosinality train.py checkpoint: {res}x{res}, style_dim 512, n_mlp 8, channels {table}")
    g_state = ros.generator_state(res, 512, 8, table, seed=0)
    d_state = ros.discriminator_state(res, table, seed=1)
    args = argparse.Namespace(size=res, latent=512, n_mlp=8, channel_multiplier=2, iter=800000, batch=16)
    path = folder / "rosinality.pt"
    torch.save({"g": OrderedDict(g_state), "d": OrderedDict(d_state), "g_ema": OrderedDict(g_state),
                "g_optim": {"state": {}, "param_groups": []}, "d_optim": {"state": {}, "param_groups": []},
                "args": args, "ada_aug_p": 0.3}, path)
    start = time.perf_counter()
    nets = load_networks(path)
    print(f"  loaded {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - start:.1f} s (w_avg computed for G and G_ema)")
    z = torch.randn([batch, 512], generator=torch.Generator().manual_seed(3))
    ok = True
    with torch.no_grad():
        ok &= report("g_ema image", nets["G_ema"](z, None, noise_mode="const"), ros.generate(g_state, z))
        images = torch.randn([batch, 3, res, res], generator=torch.Generator().manual_seed(4))
        ok &= report("d logits", nets["D"](images, None), ros.discriminate(d_state, images))
        draws = torch.randn([100_000, 512], generator=torch.Generator().manual_seed(0))
        expected = ros.map_z(g_state, draws).double().mean(dim=0).float()
        ok &= report("w_avg (100k mapped z)", nets["G_ema"].mapping.w_avg, expected)
    return ok


def check_tensorflow(res: int, batch: int, folder: Path) -> bool:
    ok = True
    configs = {
        "config F": (dict(resolution=res, fmap_base=16384, fmap_max=512),
                     dict(z_dim=512, w_dim=512, c_dim=0, channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None),
                     dict(c_dim=0, channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None)),
        "StyleGAN2-ADA conditional": (
            dict(resolution=res, fmap_base=16384, fmap_max=512, label_size=10, num_fp16_res=4, conv_clamp=256, mapping_layers=8),
            dict(z_dim=512, w_dim=512, c_dim=10, channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256),
            dict(c_dim=10, channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
                 mapping_kwargs=dict(num_layers=0, lr_multiplier=0.1))),
    }
    for label, (static, g_kwargs, d_kwargs) in configs.items():
        print(f"TensorFlow pickle, {label}: {res}x{res}, 512-dim latents, 8 mapping layers")
        G = tf.randomised(Generator(img_resolution=res, img_channels=3, mapping_kwargs=dict(num_layers=8), **g_kwargs), 0)
        D = tf.randomised(Discriminator(img_resolution=res, img_channels=3, epilogue_kwargs=dict(mbstd_group_size=4), **d_kwargs), 1)
        d_static = {**{k: v for k, v in static.items() if k != "mapping_layers"}, "mbstd_group_size": 4}
        path = folder / "tf.pkl"
        path.write_bytes(tf.dumps(tf.tf_networks(G, D, {"latent_size": 512, "dlatent_size": 512, **static}, d_static)))
        start = time.perf_counter()
        nets = load_networks(path)
        print(f"  loaded {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - start:.1f} s")
        z = torch.randn([batch, 512], generator=torch.Generator().manual_seed(3))
        c = torch.eye(max(G.c_dim, 1))[: batch, : G.c_dim] if G.c_dim else None
        with torch.no_grad():
            ok &= report("Gs image (psi 0.7)", nets["G_ema"](z, c, truncation_psi=0.7, noise_mode="const"),
                         G(z, c, truncation_psi=0.7, noise_mode="const"))
            images = torch.randn([batch, 3, res, res], generator=torch.Generator().manual_seed(4))
            labels = torch.eye(G.c_dim)[:batch] if G.c_dim else None
            ok &= report("D logits", nets["D"](images, labels), D(images, labels))
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--res", type=int, default=256, help="resolution (a power of two from 8; 1024 takes minutes)")
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    if args.res < 8 or args.res & (args.res - 1):
        parser.error("--res must be a power of two from 8")
    ok = check_fixtures()
    with tempfile.TemporaryDirectory() as folder:
        ok &= check_rosinality(args.res, args.batch, Path(folder))
        ok &= check_tensorflow(args.res, args.batch, Path(folder))
    print("all within 1e-4" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
