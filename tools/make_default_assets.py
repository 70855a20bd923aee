"""Turn a training snapshot into the shipped default model, its directions and quality figures.

    python tools/make_default_assets.py --snapshot runs/faces64/network-snapshot-XXXX.safetensors \
        --early runs/keep/faces64-early.safetensors --data data/faces64.zip --name faces64

    python tools/make_default_assets.py --snapshot runs/faces64/network-snapshot-XXXX.safetensors \
        --teacher gan-face-generate --name faces64 --names 1=pose 3=lighting

Writes into ``assets/``: ``NAME.safetensors`` (G_ema and D, float16: D is what the projection's
discriminator loss and further training need), ``NAME_pca.npz`` (top 20 PCA directions of W,
100,000 samples; ``--names N=NAME`` names the components whose effect is clear on the grid),
``figures/NAME_*.png`` (8x8 samples next to 8x8 training images, a style-mixing grid, a
-3..+3 sigma grid of the top 5 directions, seeds 0-15 as the editor opens them, 2x Lanczos) and ``NAME_quality.json`` (precision and recall,
k=3, 10,000 generated vs 10,000 training images, or with ``--teacher`` held-out teacher
images, in the pixel-PCA feature space of :mod:`latentstudio.engine.quality`, for this
snapshot and for ``--early``, under the keys ``--label`` and ``--early-label``). With ``--factors`` (a data set with known factors, i.e.
procedural portraits) it also writes ``NAME_factors.npz``: W latents of generated images and
the factors a linear probe, fitted on the training images, reads from them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from latentstudio.data.images import ImageDataset
from latentstudio.engine import figures
from latentstudio.engine.directions import display_name, pca_directions
from latentstudio.engine.export import make_grid, save_png
from latentstudio.engine.quality import PixelPCAFeatures, precision_recall, sample_generator
from latentstudio.engine.recipe import EditRecipe
from latentstudio.engine.renderer import Renderer
from latentstudio.io import load_model, load_networks, save_native
from latentstudio.nets.layout import layer_groups, ws_layout


def real_images(data: str, resolution: int, count: int, seed: int) -> np.ndarray:
    dataset = ImageDataset(data, resolution, check="verify")
    picks = np.random.default_rng(seed).choice(len(dataset), size=min(count, len(dataset)), replace=False)
    return np.stack([dataset[int(i)][0].transpose(1, 2, 0) for i in picks])


def teacher_images(spec: str, resolution: int, count: int) -> np.ndarray:
    """``count`` teacher images from the stream tools/compare_models.py uses as its reference."""
    from latentstudio.train.teacher import REFERENCE_SEED, TeacherData, load_teacher

    return TeacherData(load_teacher(spec), resolution, seed=REFERENCE_SEED).samples(count)


def style_mixing_grid(G: torch.nn.Module, sources_a: list[int], sources_b: list[int], psi: float) -> np.ndarray:
    """The StyleGAN paper's figure: B seeds along the top, A down the side, coarse styles from B."""
    renderer = Renderer(G)
    coarse = layer_groups(ws_layout(G), G.img_resolution)["coarse"]
    base = EditRecipe(truncation_psi=psi)
    blank = np.full((G.img_resolution, G.img_resolution, 3), 255, np.uint8)
    tiles = [blank] + [renderer.render(base.replace(seed=b)).image for b in sources_b]
    for a in sources_a:
        tiles.append(renderer.render(base.replace(seed=a)).image)
        for b in sources_b:
            tiles.append(renderer.render(base.replace(seed=a).with_layers_from_b(coarse, G.num_ws, mix_seed=b)).image)
    return make_grid(tiles, columns=len(sources_b) + 1, padding=2, background=255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshot", required=True, help="the training snapshot to ship")
    parser.add_argument("--early", default=None, help="an earlier snapshot, for the quality comparison")
    parser.add_argument("--label", help="key of the snapshot's entry in NAME_quality.json (default: its file name)")
    parser.add_argument("--early-label", help="key of --early's entry in NAME_quality.json (default: its file name)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="the training data set")
    source.add_argument("--teacher", help="the teacher the model learnt from (its held-out samples are the reference)")
    parser.add_argument("--names", nargs="*", default=[], metavar="N=NAME", help="names of PCA components, numbered as the editor shows them (PC1 is 1)")
    parser.add_argument("--name", required=True, help="base name of the written files (NAME.safetensors, NAME_pca.npz, ...)")
    parser.add_argument("--out", type=Path, default=Path("assets"), help="folder for the model and its figures (default assets)")
    parser.add_argument("--samples", type=int, default=10_000, help="images per set for precision / recall")
    parser.add_argument("--psi", type=float, default=0.7, help="truncation of the figures")
    parser.add_argument("--factors", action="store_true", help="the data set has known factors: write NAME_factors.npz")
    args = parser.parse_args()
    figures_dir = args.out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)

    networks = load_networks(args.snapshot)
    model_path = save_native(args.out / f"{args.name}.safetensors", {"G_ema": networks["G_ema"], "D": networks["D"]},
                             {"trained_with": "latentstudio train", "snapshot": Path(args.snapshot).name}, dtype=torch.float16)
    G = load_model(model_path, device="cpu")
    print(f"wrote {model_path} ({model_path.stat().st_size / 1e6:.1f} MB)")

    directions = pca_directions(G, num=20, samples=100_000, seed=0)
    for item in args.names:
        number, _, name = item.partition("=")
        if not number.isdigit() or not 1 <= int(number) <= len(directions.names) or not name:
            parser.error(f"--names expects N=NAME with N from 1 to {len(directions.names)}, got {item!r}")
        directions.names[int(number) - 1] = name
    directions.save(args.out / f"{args.name}_pca.npz")

    reals = (teacher_images(args.teacher, G.img_resolution, args.samples) if args.teacher
             else real_images(args.data, G.img_resolution, args.samples, seed=0))
    fakes, latents = sample_generator(G, args.samples, seed=1)
    save_png(figures_dir / f"{args.name}_samples.png", make_grid(list(sample_generator(G, 64, seed=2, psi=args.psi)[0]), 8, padding=2))
    save_png(figures_dir / f"{args.name}_reals.png", make_grid(list(reals[:64]), 8, padding=2))
    save_png(figures_dir / f"{args.name}_style_mixing.png", style_mixing_grid(G, [10, 11, 12, 13], [20, 21, 22, 23, 24], args.psi))
    renderer, strengths = Renderer(G), (-3, -2, -1, 0, 1, 2, 3)
    base = EditRecipe(seed=3, truncation_psi=args.psi)
    rows = [[renderer.render(base.replace(edits=(directions.edit(k, s),))).image for s in strengths] for k in range(5)]
    grid = figures.labelled_grid(rows, [display_name(directions.names[k]) for k in range(5)], [f"{s:+d}" if s else "0" for s in strengths],
                                 f"{args.name}: top 5 PCA directions, -3..+3 sigma (seed 3, psi {args.psi})", thumb=96)
    grid.save(figures_dir / f"{args.name}_pca_grid.png")
    seeds = [renderer.render(EditRecipe(seed=seed, truncation_psi=args.psi)).image for seed in range(16)]
    save_png(figures_dir / f"{args.name}_seeds_0-15.png", make_grid(seeds, 8, padding=2), scale=2)

    features = PixelPCAFeatures(reals, dim=64)
    reference = f"held-out samples of the teacher {args.teacher}" if args.teacher else "training images"
    quality = {"feature_space": f"top 64 principal components of the pixels in [0, 1] of {reference}", "k": 3,
               "num_real": len(reals), "num_fake": len(fakes)}
    quality[args.label or Path(args.snapshot).name] = vars(precision_recall(features(reals), features(fakes), k=3))
    if args.early:
        early = load_model(args.early, device="cpu")
        quality[args.early_label or Path(args.early).name] = vars(precision_recall(features(reals), features(sample_generator(early, args.samples, seed=1)[0]), k=3))
    (args.out / f"{args.name}_quality.json").write_text(json.dumps(quality, indent=2))
    print(json.dumps(quality, indent=2))

    if args.factors:
        write_factor_probe(args, G, reals, fakes, latents)


def write_factor_probe(args: argparse.Namespace, G, reals, fakes, latents) -> None:
    """Fit a linear probe (pixel PCA -> factors) on training images with known factors; read
    the factors of generated images with it; save them with the images' W."""
    from sklearn.linear_model import Ridge

    from latentstudio.data.archive import load_factors

    table = load_factors(args.data)
    dataset = ImageDataset(args.data, G.img_resolution, check="verify")
    count = min(len(dataset), 2 * args.samples)
    images = np.stack([dataset[i][0].transpose(1, 2, 0) for i in range(count)])
    features = PixelPCAFeatures(images, dim=64)
    split = count * 4 // 5
    probe = Ridge(alpha=1.0).fit(features(images[:split]), table.values[:split])
    held_out = probe.score(features(images[split:count]), table.values[split:count])
    np.savez(args.out / f"{args.name}_factors.npz", latents=latents.astype(np.float32),
             factors=probe.predict(features(fakes)).astype(np.float32), factor_names=np.array(table.names))
    print(f"factor probe R^2 on held-out training images: {held_out:.3f}")


if __name__ == "__main__":
    main()
