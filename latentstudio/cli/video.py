"""``latentstudio video MODEL ... --out walk.mp4``: seed walks, keyframe videos, sweeps, grids.

The video's source is one of: ``--seeds`` (a walk, or a grid of walks with ``--grid``),
``--keyframes`` (images latentstudio exported, each carrying its recipe: edited portraits
and projected photos alike), ``--direction dirs.npz:K`` (a sweep along one direction),
``--trunc-sweep LO,HI``, or ``--animation`` (a video or animation file made before, to
render again, possibly with other settings). Seeds, truncation, class and noise default
as in ``render``.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from latentstudio.cli.arguments import bit_rate, float_pair, grid_shape, int_list, layer_range


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("video", help="render a latent walk, keyframe video or direction sweep (MP4, GIF, WebP, PNGs)",
                                   description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    # `--range -3,3` and `--trunc-sweep -1,1` must read as values, not as unknown options:
    # argparse only recognises plain negative numbers unless told what a negative value looks like.
    parser._negative_number_matcher = re.compile(r"^-\d*\.?\d+(,-?\d*\.?\d+)?$")
    parser.add_argument("model", help="model file")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--keyframes", nargs="+", metavar="IMAGE", help="keyframes from exported PNGs (or recipe .json files)")
    source.add_argument("--direction", metavar="DIRS.npz:K", help="sweep direction K (index or name) of a direction set")
    source.add_argument("--trunc-sweep", type=float_pair, metavar="LO,HI", help="sweep truncation psi from LO to HI")
    source.add_argument("--animation", metavar="FILE", help="render an animation again: a latentstudio video or its .json")
    parser.add_argument("--seeds", type=int_list, default=None, help="seeds of the walk (default 0-3); the first seed is a sweep's image")
    parser.add_argument("--recipe", metavar="IMAGE", help="for sweeps: start from an exported PNG or recipe .json instead of a seed")
    parser.add_argument("--range", dest="sweep_range", type=float_pair, default=(-3.0, 3.0), metavar="LO,HI",
                        help="direction sweep range in sigma (default -3,3)")
    parser.add_argument("--layers", type=layer_range, default=None, help="direction sweep layers, e.g. 0-5 (default: the direction's own)")
    parser.add_argument("--trunc", type=float, default=1.0, metavar="PSI", help="truncation psi (default 1)")
    parser.add_argument("--trunc-cutoff", type=int, default=None, metavar="N", help="truncate only the first N layers")
    parser.add_argument("--class", dest="class_index", type=int, default=None, metavar="K", help="class for conditional models")
    parser.add_argument("--noise-mode", choices=("const", "random", "none"), default="const")
    parser.add_argument("--noise-seed", type=int, default=0, help="seed of the noise for --noise-mode random")
    parser.add_argument("--grid", type=grid_shape, default=None, metavar="CxR", help="a grid of walks, e.g. 2x2 (seeds split over the cells)")
    parser.add_argument("--frames-per-key", type=int, default=None, metavar="N", help="frames from one key to the next (default 60)")
    parser.add_argument("--fps", type=float, default=None, help="frames per second (default 30)")
    parser.add_argument("--kind", choices=("linear", "cubic"), default=None, help="interpolation (default cubic; sweeps linear)")
    parser.add_argument("--space", choices=("w", "z"), default=None, help="interpolate composed ws (default), or z spherically (plain seeds)")
    parser.add_argument("--easing", choices=("linear", "ease-in-out", "ease-in", "ease-out"), default=None, help="time within each segment")
    parser.add_argument("--loop", action=argparse.BooleanOptionalAction, default=None, help="return from the last key to the first, seamlessly")
    parser.add_argument("--scale", type=int, default=1, choices=(1, 2, 4, 8), help="Lanczos upscale factor")
    quality = parser.add_mutually_exclusive_group()
    quality.add_argument("--crf", type=int, default=None, help="MP4 quality, 0 (lossless) to 51 (default 15)")
    quality.add_argument("--bitrate", type=bit_rate, default=None, help="MP4 bit rate instead of a quality, e.g. 8M")
    parser.add_argument("--batch", type=int, default=None,
                        help="images synthesised per call (default 8; 1 for models over 128 px on the CPU, where batches are slower)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cuda if available)")
    parser.add_argument("--out", required=True, help="output: .mp4, .gif, .webp, or a folder for PNG frames")
    return parser


def run(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from latentstudio.cli import CliError
    from latentstudio.engine.animation import AnimationError, check_model
    from latentstudio.engine.recipe import RecipeError
    from latentstudio.engine.renderer import Renderer
    from latentstudio.engine.video import VideoError, video_format
    from latentstudio.engine.video_export import export_video, video_size
    from latentstudio.io import load_model

    if args.batch is not None and args.batch < 1:
        raise CliError("--batch must be at least 1")
    if args.frames_per_key is not None and args.frames_per_key < 1:
        raise CliError(f"--frames-per-key must be at least 1, not {args.frames_per_key}")
    try:
        video_format(args.out)
    except VideoError as error:
        raise CliError(str(error)) from None
    G = load_model(args.model, device=args.device)
    try:
        animation = build_animation(args, G)
        check_model(animation, G.info.fingerprint)
    except (AnimationError, RecipeError) as error:
        raise CliError(str(error)) from None

    renderer = Renderer(G)
    width, height = video_size(renderer, animation)
    total = animation.num_frames
    bars: list = []  # made at the first frame, so errors found before it print alone
    written = [0]

    def progress(done: int, _total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="video", unit="frame", disable=total < 8))
        written[0] = done
        bars[0].update(done - bars[0].n)

    started = time.perf_counter()
    try:
        path = export_video(renderer, animation, args.out, scale=args.scale, crf=args.crf, bitrate=args.bitrate, batch_size=args.batch,
                            model_path=str(Path(args.model).resolve()), progress=progress)
    except (AnimationError, RecipeError, VideoError) as error:
        raise CliError(str(error)) from None
    except KeyboardInterrupt:
        for bar in bars:
            bar.close()
        if written[0]:
            print(f"interrupted: wrote the first {written[0]} of {total} frames to {args.out}", file=sys.stderr)
        else:
            print("interrupted before the first frame: nothing written", file=sys.stderr)
        return 130
    finally:
        for bar in bars:
            bar.close()
    seconds = time.perf_counter() - started
    print(f"wrote {path}: {total} frames, {width * args.scale}x{height * args.scale}, {animation.fps:g} fps, "
          f"{animation.duration_s:.1f} s ({total / seconds:.1f} frames/s)")
    return 0


def build_animation(args: argparse.Namespace, G):
    """The animation the options describe (settings given on the command line win)."""
    from latentstudio.engine import animation as anim
    from latentstudio.engine.video import read_video_animation

    settings = {name: value for name, value in (("interpolation", args.kind), ("space", args.space), ("easing", args.easing),
                                                ("loop", args.loop), ("fps", args.fps)) if value is not None}
    frames = args.frames_per_key or anim.DEFAULT_FRAMES_PER_KEY
    if args.animation:
        animation, _model_path = read_video_animation(args.animation)
        if args.frames_per_key:
            animation = animation.replace(tracks=tuple(tuple(anim.Keyframe(k.recipe, frames) for k in track) for track in animation.tracks))
        return animation.replace(**settings)
    if args.keyframes:
        if len(args.keyframes) < 2:
            raise anim.AnimationError("--keyframes needs at least two images")
        return anim.Animation.of([read_recipe(path) for path in args.keyframes], frames, **settings)
    base = base_recipe(args, G)
    if args.direction:
        return anim.direction_sweep(base, direction_edit(args, G), *args.sweep_range, frames, **settings)
    if args.trunc_sweep:
        return anim.truncation_sweep(base, *args.trunc_sweep, frames, **settings)
    seeds = args.seeds if args.seeds is not None else [0, 1, 2, 3]
    if args.grid:
        return anim.grid_walk(base, seeds, *args.grid, frames, **{"loop": True, **settings})
    return anim.seed_walk(base, seeds, frames, **settings)


def read_recipe(path: str):
    """A recipe from an exported PNG or a recipe ``.json``."""
    from latentstudio.engine.export import read_png_recipe
    from latentstudio.engine.recipe import EditRecipe

    if Path(path).suffix.lower() == ".json":
        return EditRecipe.from_file(path)
    return read_png_recipe(path)[0]


def base_recipe(args: argparse.Namespace, G):
    """The image a sweep starts from (and the settings every key of a walk shares)."""
    from latentstudio.cli import CliError
    from latentstudio.engine.recipe import EditRecipe

    if args.recipe:
        return read_recipe(args.recipe)
    if G.c_dim and args.class_index is None:
        raise CliError(f"{args.model} is conditional ({G.c_dim} classes): pass --class K")
    seeds = args.seeds or [0]
    return EditRecipe(seed=seeds[0], truncation_psi=args.trunc, truncation_cutoff=args.trunc_cutoff,
                      class_index=args.class_index if G.c_dim else None, noise_mode=args.noise_mode, noise_seed=args.noise_seed,
                      model=G.info.fingerprint)


def direction_edit(args: argparse.Namespace, G):
    """``dirs.npz:K``: direction K (its index, or its name) with ``--layers`` if given."""
    from latentstudio.cli import CliError
    from latentstudio.engine.directions import DirectionSet, DirectionSetError

    path, _, which = args.direction.rpartition(":")
    if not path:
        path, which = which, "0"
    try:
        dset = DirectionSet.load(path, expect_w_dim=G.w_dim)
    except DirectionSetError as error:
        raise CliError(str(error)) from None
    index = int(which) if which.lstrip("-").isdigit() else (dset.names.index(which) if which in dset.names else None)
    if index is None or not 0 <= index < len(dset):
        raise CliError(f"{path} has directions 0-{len(dset) - 1} ({', '.join(dset.names[:5])}...); no {which!r}")
    first, last = args.layers if args.layers is not None else (None, None)
    if first is not None and not 0 <= first < G.num_ws:
        raise CliError(f"--layers {first}-{last}: this model's layers are 0-{G.num_ws - 1}")
    if last is not None and last >= G.num_ws - 1:
        last = -1
    return dset.edit(index, 0.0, first, last)
