"""Projection quality and speed, in one command.

    python benchmarks/projection.py                            # everything, one process
    python benchmarks/projection.py --parts default,speed &     # or two halves on two cores
    python benchmarks/projection.py --parts fixture,photo
    python benchmarks/projection.py --samples 5 --steps 200 --parts default   # a quick look

Reconstruction of the models' **own** images, where the true latent is known: ``--samples``
held-out seeds (from ``--first-seed``; the settings were tuned on seeds 100-102) of the
default model and of a fixture that holds a discriminator, for each space and each loss that
can run here: PSNR and SSIM of the image the *recipe* renders (the model's constant noise,
what the editor and every export show), the distance of the found ``ws`` to the true ``ws``
(mean per-layer L2, and relative to the mean distance between two sampled ``w``), and time.
NVlabs' settings (W, w noise, fitted noise buffers) run as the baseline; with fitted noise
the image with that noise is reported too. A real photograph that ships in a registry package
(scikit-image's ``astronaut``, NASA, public domain) is aligned and projected in every space.
Steps per second: the default model and a 256 px config-f network, 1 and 2 threads.

Results go to ``benchmarks/projection_results.json`` and the figure
``docs/projection_astronaut.png``; ``benchmarks/RESULTS.md`` quotes them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from latentstudio.bench import config_f_generator  # noqa: E402
from latentstudio.engine.export import make_grid, save_png  # noqa: E402
from latentstudio.engine.face_align import align_portrait  # noqa: E402
from latentstudio.engine.photo import read_photo  # noqa: E402
from latentstudio.engine.projection import SPACES, project, w_statistics  # noqa: E402
from latentstudio.engine.projection_losses import find_vgg16  # noqa: E402
from latentstudio.engine.recipe import EditRecipe, map_seed  # noqa: E402
from latentstudio.engine.renderer import Renderer  # noqa: E402
from latentstudio.io import load_model, load_networks  # noqa: E402

NVLABS_BASELINE = dict(space="w", lr=0.1, w_noise=0.05, optimize_noise=True)


def own_images(G, seeds):
    renderer = Renderer(G)
    for seed in seeds:
        recipe = EditRecipe(seed=seed, class_index=0 if G.c_dim else None)
        yield seed, renderer.render(recipe).raw, map_seed(G, seed, recipe.class_index, G.mapping.w_avg.device)


def typical_w_distance(G) -> float:
    """Mean L2 distance between two independently sampled w (the scale of ws distances)."""
    mean, spread = w_statistics(G, 0 if G.c_dim else None, samples=2000)
    return spread * 2**0.5


def reconstruct(G, D, seeds, steps, configs, label):
    rows = []
    scale = typical_w_distance(G)
    for name, kwargs in configs:
        if kwargs.get("loss") == "discriminator" and D is None:
            continue
        psnrs, ssims, dists, seconds, noise_psnrs = [], [], [], [], []
        for seed, image, true_ws in own_images(G, seeds):
            result = project(G, image, steps=steps, D=D, seed=0, **kwargs)
            psnrs.append(result.psnr)
            ssims.append(result.ssim)
            dists.append(float((result.latent - true_ws.cpu()).norm(dim=-1).mean()))
            seconds.append(result.seconds)
            if result.noise_psnr is not None:
                noise_psnrs.append(result.noise_psnr)
            print(f"  {label} {name} seed {seed}: PSNR {result.psnr:.2f} dB, {result.seconds:.1f} s", flush=True)
        row = {"model": label, "config": name, "space": kwargs.get("space"), "loss": result.loss.name, "steps": steps,
               "samples": len(seeds), "psnr_mean": float(np.mean(psnrs)), "psnr_min": float(np.min(psnrs)),
               "ssim_mean": float(np.mean(ssims)), "ws_dist": float(np.mean(dists)), "ws_dist_rel": float(np.mean(dists) / scale),
               "seconds_mean": float(np.mean(seconds)), "steps_per_s": steps / float(np.mean(seconds)),
               "load": os.getloadavg()[0]}
        if noise_psnrs:
            row["psnr_with_fitted_noise"] = float(np.mean(noise_psnrs))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def lively(path: str):
    """G and D of a fixture whose mapping network spreads W like a trained one (as
    ``tests/conftest.lively_copy``: the untrained mapping layers' lr_multiplier of 0.01 maps
    every seed to nearly the same w, so "own images" would all be one image)."""
    networks = load_networks(path)
    G, D = networks["G_ema"], networks.get("D")
    with torch.no_grad():
        for name, parameter in G.mapping.named_parameters():
            if name.startswith("fc"):
                parameter.mul_(100)
    G.info = load_model(path, device="cpu").info
    return G, D


def astronaut_photo() -> np.ndarray:
    import skimage  # scikit-image's wheel ships the photo (NASA, public domain)

    return read_photo(Path(skimage.__file__).parent / "data" / "astronaut.png")


def real_photo(G, D, steps, configs, figure: Path):
    alignment = align_portrait(astronaut_photo(), G.img_resolution)
    rows, tiles = [], [alignment.image]
    for name, kwargs in configs:
        if kwargs.get("loss") == "discriminator" and D is None:
            continue
        result = project(G, alignment.image, steps=steps, D=D, **kwargs)
        rows.append({"photo": "astronaut", "alignment": alignment.method, "config": name, "loss": result.loss.name,
                     "steps": steps, "psnr": result.psnr, "ssim": result.ssim, "seconds": result.seconds,
                     "psnr_with_fitted_noise": result.noise_psnr})
        tiles.append(result.image)
        print(json.dumps(rows[-1]), flush=True)
    save_png(figure, make_grid(tiles, columns=len(tiles), padding=2, background=255), scale=4)
    return rows


def steps_per_second(G, steps=10, threads=(1, 2)):
    target = Renderer(G).render(EditRecipe(seed=0)).raw
    out = {}
    for count in threads:
        torch.set_num_threads(count)
        project(G, target, steps=2, loss="pixel")  # warm up
        result = project(G, target, space="w+", steps=steps, loss="pixel")
        out[f"{count}_threads"] = steps / result.seconds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets/faces64.safetensors"))
    parser.add_argument("--fixture", default=str(ROOT / "tests/fixtures/sg2_skip32.pkl"))
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--ablation-samples", type=int, default=5, help="samples for the NVlabs-setting comparisons")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parts", default="default,fixture,photo,speed",
                        help="which parts to run (comma-separated; run two in parallel processes on two cores)")
    parser.add_argument("--configs", default=None,
                        help="only these configurations, ';'-separated names as printed (e.g. 'w+ pixel;w pixel')")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/projection_results.json"),
                        help="results JSON; parts run now replace their entries, others are kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = set(args.parts.split(","))
    seeds = list(range(args.first_seed, args.first_seed + args.samples))
    ablation_seeds = seeds[: args.ablation_samples]
    losses = ["pixel", "discriminator"] + (["lpips"] if find_vgg16() else [])
    configs = [(f"{space} {loss}", dict(space=space, loss=loss)) for space in SPACES for loss in losses]
    ablations = [("w+ pixel, w noise 0.05 as NVlabs", dict(space="w+", loss="pixel", w_noise=0.05)),
                 ("w-then-w+ pixel, fitted noise", dict(space="w-then-w+", loss="pixel", optimize_noise=True)),
                 ("NVlabs: w, w noise, fitted noise", dict(NVLABS_BASELINE, loss="pixel"))]
    if args.configs:
        wanted = set(args.configs.split(";"))
        configs = [c for c in configs if c[0] in wanted]
        ablations = [c for c in ablations if c[0] in wanted]
    if args.ablation_samples == 0:
        ablations = []
    out = Path(args.out)

    def record(part: str, value) -> None:
        results = json.loads(out.read_text()) if out.exists() else {}  # re-read: another part may have written
        results.setdefault("runs", {})
        if isinstance(value, list):  # keep rows of other configurations (another process may run them)
            names = {row["config"] for row in value}
            value = [row for row in results.get(part, []) if row["config"] not in names] + value
        results[part] = value
        results["runs"][f"{part}: {', '.join(sorted({r['config'] for r in value})) if isinstance(value, list) else ''}"] = {"finished": time.strftime("%Y-%m-%d %H:%M"), "load_1min": os.getloadavg()[0],
                                 "threads": args.threads, "torch": torch.__version__, "steps": args.steps}
        out.write_text(json.dumps(results, indent=1) + "\n")

    G = load_model(args.model, device="cpu")
    D = load_networks(args.model)["D"] if "D" in G.info.networks else None
    if "default" in parts:
        record("default_model", reconstruct(G, D, seeds, args.steps, configs, Path(args.model).name)
               + reconstruct(G, D, ablation_seeds, args.steps, ablations, Path(args.model).name))
    if "fixture" in parts:
        fixture_G, fixture_D = lively(args.fixture)
        record("fixture", reconstruct(fixture_G, fixture_D, seeds, args.steps, configs, Path(args.fixture).name))
    if "photo" in parts:
        record("astronaut", real_photo(G, D, args.steps, configs, ROOT / "docs/projection_astronaut.png"))
    if "speed" in parts:
        record("steps_per_second", {"default_model": steps_per_second(G), "config_f_256": steps_per_second(config_f_generator(256), steps=5)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
