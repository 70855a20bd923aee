"""``latentstudio dataset``: build training archives (from images or portraits) and check them."""
from __future__ import annotations

import argparse
import sys

from latentstudio.cli import CliError

_SHOWN_SKIPPED = 20


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "dataset",
        help="make or check a training data set (NVlabs zip layout)",
        description="Make NVlabs-style training archives from an image folder or from procedural "
        "portraits with known factors, or check a data set for broken images.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    folder = actions.add_parser(
        "folder",
        help="image folder or zip -> square PNG archive",
        description="Centre-crop and resize every PNG / JPEG / WebP under IN (recursively) to "
        "--res and write an NVlabs zip. Broken images are skipped and listed.",
    )
    folder.add_argument("input", metavar="IN", help="image folder or zip archive")
    folder.add_argument("--res", type=_positive, required=True, help="output resolution in pixels")
    folder.add_argument("--out", required=True, help="archive to write (.zip)")
    folder.add_argument("--mirror", action="store_true", help="also write a left-right mirrored copy of every image")
    folder.add_argument("--channels", type=int, choices=(1, 3), default=3, help="1 = grayscale, 3 = RGB (default)")
    folder.add_argument("--labels", choices=("auto", "json", "folders", "none"), default="auto",
                        help="auto: from IN/dataset.json when present (default); folders: one class per sub-folder")

    portraits = actions.add_parser(
        "portraits",
        help="procedural portraits with known factors",
        description="Draw COUNT cartoon portraits from independently sampled factors and write "
        "them with factors.npy / factors.json (unconditional unless --label-factor).",
    )
    portraits.add_argument("--count", type=_positive, required=True)
    portraits.add_argument("--res", type=_positive, default=64, help="resolution in pixels (default 64)")
    portraits.add_argument("--out", required=True, help="archive to write (.zip)")
    portraits.add_argument("--seed", type=int, default=0, help="same seed, same images (default 0)")
    portraits.add_argument("--label-factor", metavar="FACTOR",
                           help="use this factor as the label (binary -> 2 classes, continuous -> a value)")

    inspect = actions.add_parser(
        "inspect",
        help="open a data set as the trainer would and report it",
        description="Open PATH as the trainer would: count images, labels and factors, list broken files.",
    )
    inspect.add_argument("path", metavar="PATH", help="image folder or zip archive")
    inspect.add_argument("--res", type=_positive, default=64, help="resolution to decode at (default 64)")
    inspect.add_argument("--labels", choices=("auto", "json", "folders", "none"), default="auto")
    return parser


def _progress_bar(description: str, total: int):
    """A tqdm bar and the ``progress(done, total)`` callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(desc=description, total=total, unit="img", file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.update(done - bar.n)

    return bar, update


def _report_skipped(dataset) -> None:
    if not dataset.skipped:
        return
    print(f"skipped {len(dataset.skipped)} unusable file(s):", file=sys.stderr)
    for skipped in dataset.skipped[:_SHOWN_SKIPPED]:
        print(f"  {skipped.name}: {skipped.reason}", file=sys.stderr)
    if len(dataset.skipped) > _SHOWN_SKIPPED:
        print(f"  ... and {len(dataset.skipped) - _SHOWN_SKIPPED} more", file=sys.stderr)


def _open(path: str, res: int, channels: int, labels: str, xflip: bool = False):
    from latentstudio.data.images import ImageDataset

    return ImageDataset(path, res, channels=channels, labels=labels, xflip=xflip)


def _run_folder(args: argparse.Namespace) -> int:
    from latentstudio.data.build import convert_dataset

    dataset = _open(args.input, args.res, args.channels, args.labels, xflip=args.mirror)
    _report_skipped(dataset)
    bar, update = _progress_bar("writing", len(dataset))
    with bar:
        out = convert_dataset(dataset, args.out, update)
    labels = f", {dataset.label_dim}-dim labels" if dataset.has_labels else ", no labels"
    print(f"wrote {out}: {len(dataset)} images at {args.res}x{args.res}{labels}")
    return 0


def _run_portraits(args: argparse.Namespace) -> int:
    from latentstudio.data.build import write_portraits
    from latentstudio.data.portraits import FACTOR_NAMES

    if args.label_factor is not None and args.label_factor not in FACTOR_NAMES:
        raise CliError(f"unknown factor {args.label_factor!r}; choose from {', '.join(FACTOR_NAMES)}")
    bar, update = _progress_bar("drawing", args.count)
    with bar:
        out = write_portraits(args.out, args.count, args.res, args.seed, args.label_factor, update)
    print(f"wrote {out}: {args.count} portraits at {args.res}x{args.res}, seed {args.seed}")
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    from latentstudio.data.archive import load_factors
    from latentstudio.data.errors import DatasetError

    dataset = _open(args.path, args.res, 3, args.labels)
    print(f"{args.path}: {len(dataset)} usable images, {len(dataset.skipped)} skipped")
    if dataset.has_class_labels:
        names = f" ({', '.join(dataset.class_names)})" if dataset.class_names else ""
        print(f"labels: {dataset.label_dim} classes{names}")
    elif dataset.has_labels:
        print(f"labels: vectors of {dataset.label_dim} values")
    else:
        print("labels: none (unconditional)")
    try:
        factors = load_factors(args.path)
        print(f"factors: {', '.join(factors.names)} for {len(factors.files)} images")
    except DatasetError:
        pass
    _report_skipped(dataset)
    return 0


def run(args: argparse.Namespace) -> int:
    from latentstudio.data.errors import DatasetError

    handlers = {"folder": _run_folder, "portraits": _run_portraits, "inspect": _run_inspect}
    try:
        return handlers[args.action](args)
    except DatasetError as error:
        raise CliError(str(error)) from None
