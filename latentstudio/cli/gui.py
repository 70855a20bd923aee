"""``latentstudio gui [MODEL] [--screenshot PATH]``: the editor window."""
from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "gui",
        help="open the editor window (also what `latentstudio [MODEL]` does)",
        description="Open the editor on MODEL, or on the bundled default model.",
    )
    parser.add_argument("model", nargs="?", default=None, help="model file (default: the bundled model)")
    parser.add_argument(
        "--screenshot",
        metavar="PATH",
        default=None,
        help="open offscreen, wait for the first frame, save a screenshot of the window to PATH and exit",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from latentstudio.gui.app import run_editor

    return run_editor(args.model, screenshot=args.screenshot)
