"""The ``latentstudio`` command line.

Each subcommand lives in its own module of this package, which defines
``add_parser(subparsers)`` (cheap: no torch or Qt import at module level) and
``run(args) -> int``. Heavy imports happen inside ``run`` so ``--help`` is instant.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from latentstudio import __version__

# Subcommand name -> module under latentstudio.cli. Order is the order shown in --help.
SUBCOMMANDS: dict[str, str] = {
    "info": "info",
    "render": "render",
    "convert": "convert",
    "train": "train",
    "directions": "directions",
    "analyze": "analyze",
    "gui": "gui",
    "dataset": "dataset",
    "bench": "bench",
    "project": "project",
    "video": "video",
    "drag": "drag",
}


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentstudio",
        description="An interactive studio for style-based image generators (StyleGAN2, StyleGAN3).",
    )
    parser.add_argument("--version", action="version", version=f"latentstudio {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f"latentstudio.cli.{module_name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and not argv[0].startswith("-") and os.path.isfile(argv[0])):
        argv = ["gui", *argv]  # `latentstudio` and `latentstudio MODEL` open the editor
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 0
    if getattr(args, "_prepare", None) is not None:
        args._prepare()  # process settings a subcommand needs before torch is imported
    from latentstudio.io.errors import ModelLoadError

    try:
        if getattr(args, "device", None):
            from latentstudio.io.loader import check_device

            try:
                check_device(args.device)
            except ValueError as error:
                raise CliError(str(error)) from None
        return int(args._run(args) or 0)
    except (CliError, ModelLoadError) as error:
        print(f"latentstudio {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `latentstudio info MODEL | head`
        sys.stderr.close()
        return 0
