"""``latentstudio train --data DIR|ZIP|portraits --res 64 --outdir runs/NAME --kimg 500``.

The arguments and the run live in :mod:`latentstudio.train.command` (shared with ``python -m
latentstudio.train``); this module only registers the subcommand.
"""
from __future__ import annotations

import argparse

from latentstudio.train.command import TrainUsageError, add_arguments, prefer_passive_openmp
from latentstudio.train.command import run as run_training


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("train", help="train or fine-tune a StyleGAN2 model",
                                   description="Train a StyleGAN2 generator; resumable, several GPUs with --gpus.")
    parser.set_defaults(_prepare=prefer_passive_openmp)
    return add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from latentstudio.cli import CliError

    try:
        return run_training(args)
    except TrainUsageError as error:
        raise CliError(str(error)) from None
