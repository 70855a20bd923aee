"""``latentstudio render MODEL --seeds 0-7``: images (or a grid) whose PNGs carry their recipe.

``--projected-w FILE.npz`` renders stored latents instead of seeds (a ``projected_w.npz`` from
``latentstudio project`` or NVlabs' projector), one PNG per row, as NVlabs ``gen_images.py``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from latentstudio.cli.arguments import int_list


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("render", help="render seeds to PNG files that embed their edit recipe")
    parser.add_argument("model", help="model file")
    parser.add_argument("--seeds", type=int_list, default=[0], help="seeds, e.g. 0-7,42 (default 0)")
    parser.add_argument("--projected-w", metavar="NPZ", default=None,
                        help="render the latents of a projected_w.npz (ours or NVlabs') instead of --seeds")
    parser.add_argument("--trunc", type=float, default=1.0, metavar="PSI", help="truncation psi (default 1)")
    parser.add_argument("--trunc-cutoff", type=int, default=None, metavar="N", help="truncate only the first N layers")
    parser.add_argument("--class", dest="class_index", type=int, default=None, metavar="K", help="class for conditional models")
    parser.add_argument("--noise-mode", choices=("const", "random", "none"), default="const")
    parser.add_argument("--noise-seed", type=int, default=0, help="seed of the noise for --noise-mode random")
    parser.add_argument("--outdir", default="out", help="output folder (default out)")
    parser.add_argument("--grid", action="store_true", help="also write all seeds as one grid image")
    parser.add_argument("--scale", type=int, default=1, choices=(1, 2, 4, 8), help="upscale factor (Lanczos)")
    parser.add_argument("--pixel-exact", action="store_true", help="upscale in pixel blocks (nearest neighbour), not Lanczos")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cuda if available)")
    return parser


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from latentstudio.cli import CliError
    from latentstudio.engine.export import make_grid, save_png
    from latentstudio.engine.projected_w import ProjectedWError, recipes_from_projected_w
    from latentstudio.engine.recipe import EditRecipe, RecipeError
    from latentstudio.engine.renderer import Renderer
    from latentstudio.io import load_model

    G = load_model(args.model, device=args.device)
    if G.c_dim and args.class_index is None:
        raise CliError(f"{args.model} is conditional ({G.c_dim} classes): pass --class K")
    try:
        base = EditRecipe(
            truncation_psi=args.trunc,
            truncation_cutoff=args.trunc_cutoff,
            class_index=args.class_index if G.c_dim else None,
            noise_mode=args.noise_mode,
            noise_seed=args.noise_seed,
            model=G.info.fingerprint,
        )
        if args.projected_w:
            recipes = [base.replace(latent=r.latent) for r in recipes_from_projected_w(args.projected_w, G)]
        else:
            recipes = [base.replace(seed=seed) for seed in args.seeds]
    except (RecipeError, ProjectedWError) as error:
        raise CliError(str(error)) from None

    renderer = Renderer(G)
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    images = []
    model_path = str(Path(args.model).resolve())
    for index, recipe in enumerate(tqdm(recipes, desc="render", unit="img", disable=len(recipes) < 8)):
        frame = renderer.render(recipe)
        name = f"projected{index:02d}" if recipe.latent is not None else f"seed{recipe.seed:04d}"
        if not frame.ok:
            raise CliError(f"{name}: {frame.error}")
        save_png(outdir / f"{name}.png", frame.raw, recipe, model=model_path, scale=args.scale, smooth=not args.pixel_exact)
        images.append(frame.raw)
    print(f"wrote {len(images)} image(s) to {outdir}")
    if args.grid:
        grid_path = save_png(outdir / "grid.png", make_grid(images), scale=args.scale, smooth=not args.pixel_exact)
        print(f"wrote {grid_path}")
    return 0
