"""``latentstudio drag MODEL --seed S --points "x1,y1:x2,y2"``: DragGAN point editing from the shell."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from latentstudio.cli.arguments import point_pairs


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "drag", help="move points of an image to targets (DragGAN) and write the result as PNG",
        description="Drag each handle point of the image to its target by optimising the latent (DragGAN). "
                    "Coordinates are pixels of the model's output, x to the right and y down from the top-left pixel.")
    parser.add_argument("model", help="model file")
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--seed", type=int, help="start from this seed")
    start.add_argument("--recipe", metavar="PNG_OR_JSON",
                       help="start from an exported latentstudio PNG (or a recipe .json), e.g. an edited or projected image")
    parser.add_argument("--trunc", type=float, default=None, metavar="PSI", help="truncation psi with --seed (default 1)")
    parser.add_argument("--class", dest="class_index", type=int, default=None, metavar="K", help="class for conditional models")
    parser.add_argument("--points", type=point_pairs, required=True, metavar='"x1,y1:x2,y2;..."',
                        help="handle:target pairs, separated by ;")
    parser.add_argument("--mask", metavar="PNG", help="the region that may change (white; the rest is kept), "
                        "an image of the model's size or a square one that is resized to it")
    parser.add_argument("--steps", type=int, default=200, metavar="N", help="at most N optimisation steps (default 200)")
    parser.add_argument("--lr", type=float, default=None, help="Adam step size (default: the engine's for the model size)")
    parser.add_argument("--feature-layer", type=int, default=None, metavar="I",
                        help="StyleGAN2 block / StyleGAN3 layer index whose features are used (default: DragGAN's choice)")
    parser.add_argument("--layers", type=int, default=None, metavar="N", help="optimise the first N ws rows (default 6/16 of them)")
    parser.add_argument("--mask-weight", type=float, default=None, metavar="LAMBDA",
                        help="how strongly --mask holds the rest of the image (default: the engine's for the model size)")
    parser.add_argument("--stop-distance", type=float, default=None, metavar="PX",
                        help="stop when every handle is this close to its target (default 1 px, 2 px for 5+ handles)")
    parser.add_argument("--out", required=True, help="the result, a PNG carrying its recipe")
    parser.add_argument("--report", metavar="JSON", help="also write tracked points per step and final distances")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cuda if available)")
    return parser


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from latentstudio.cli import CliError
    from latentstudio.engine.drag import DragError, DragSettings, drag, load_mask
    from latentstudio.engine.export import save_png
    from latentstudio.engine.recipe import RecipeError
    from latentstudio.engine.renderer import Renderer
    from latentstudio.io import load_model

    if args.recipe is not None and args.trunc is not None:
        raise CliError("--trunc goes with --seed; a recipe carries its own truncation")
    G = load_model(args.model, device=args.device)
    recipe = _start_recipe(args, G)
    mask = None
    if args.mask is not None:
        try:
            mask = load_mask(args.mask, G.img_resolution)
        except DragError as error:
            raise CliError(str(error)) from None
    settings = DragSettings(steps=args.steps, lr=args.lr, feature_layer=args.feature_layer, num_layers=args.layers,
                            stop_distance=args.stop_distance, mask_weight=args.mask_weight)
    handles = [pair[0] for pair in args.points]
    targets = [pair[1] for pair in args.points]
    bar = tqdm(total=args.steps, desc="drag", unit="step", file=sys.stderr, disable=None)

    def show(progress) -> None:
        bar.n = progress.step
        bar.set_postfix(distance=f"{max(progress.state['distances']):.1f}px", refresh=False)
        bar.refresh()

    try:
        result = drag(G, recipe, handles, targets, mask=mask, settings=settings, callback=show, every=10)
    except (DragError, RecipeError) as error:
        raise CliError(str(error)) from None
    finally:
        bar.close()
    frame = Renderer(G).render(result.recipe)
    if not frame.ok:
        raise CliError(frame.error)
    out = save_png(args.out, frame.raw, result.recipe, model=str(Path(args.model).resolve()))
    distances = ", ".join(f"{d:.1f}" for d in result.distances)
    print(f"wrote {out}: {result.steps} steps ({result.reason}, {result.seconds:.1f} s), final distance {distances} px")
    if args.report:
        report = {"model": str(Path(args.model).resolve()), "start": recipe.to_dict(), **result.report()}
        Path(args.report).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.report}")
    return 0


def _start_recipe(args: argparse.Namespace, G):
    """The recipe to drag: a seed's, or the one stored in ``--recipe`` (PNG or JSON)."""
    from latentstudio.cli import CliError
    from latentstudio.engine.export import read_png_recipe
    from latentstudio.engine.recipe import EditRecipe, RecipeError

    class_index = args.class_index
    if G.c_dim and class_index is None and args.recipe is None:
        raise CliError(f"{args.model} is conditional ({G.c_dim} classes): pass --class K")
    try:
        if args.recipe is None:
            return EditRecipe(seed=args.seed, truncation_psi=1.0 if args.trunc is None else args.trunc,
                              class_index=class_index if G.c_dim else None, model=G.info.fingerprint)
        path = Path(args.recipe)
        if path.suffix.lower() == ".json":
            recipe = EditRecipe.from_file(path)
        else:
            recipe, _ = read_png_recipe(path)
        return recipe.replace(class_index=class_index) if class_index is not None else recipe
    except RecipeError as error:
        message = str(error)
        raise CliError(message if args.recipe is None or str(args.recipe) in message else f"{args.recipe}: {message}") from None
