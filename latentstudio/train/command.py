"""The trainer's command line: arguments, options from them, and running a training.

Shared by ``python -m latentstudio.train`` (what torchrun and the GUI run) and the
``latentstudio train`` subcommand, and kept here, in the trainer's package, so that starting
the trainer never goes through the CLI package. ``--gpus N`` starts N processes itself; under
torchrun leave it out.
"""
from __future__ import annotations

import argparse
import os
import sys

from latentstudio.train.config import AUGMENTS, DEFAULT_PRESET, DISTILL_LOSSES, LOSSES, PRESETS

# Options that may be given again with --resume (everything else comes from the checkpoint).
RESUME_OVERRIDES = ("kimg", "tick", "snap", "keep", "workers", "device")


class TrainUsageError(Exception):
    """Unusable options, data, checkpoint or ``--init`` model: one line for the person, no traceback."""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every training option (shared by the subcommand and ``python -m latentstudio.train``).

    Defaults are None where the preset or the checkpoint decides.
    """
    add = parser.add_argument
    add("--data", help="image folder, zip archive, 'portraits' (procedural faces, drawn on the fly) or "
                       "'teacher' (the images of --teacher, drawn on the fly; the default when --teacher is given)")
    add("--outdir", help="run folder for stats.jsonl, sample grids and checkpoints")
    add("--res", dest="resolution", type=int, default=None, help="training resolution, a power of two (default 64)")
    add("--kimg", type=float, default=None, help="train until this many thousand images were shown (default 500)")
    add("--cfg", choices=tuple(PRESETS), default=None, help=f"network and optimiser preset (default {DEFAULT_PRESET})")
    add("--batch", type=int, default=None, help="global batch size (default: from --cfg)")
    add("--loss", choices=LOSSES, default=None,
        help="ns: non-saturating logistic + R1 (default); wgan-gp; hinge; r3gan: relativistic pairing + R1 and R2")
    add("--lr-g", type=float, default=None, help="generator learning rate")
    add("--lr-d", type=float, default=None, help="discriminator learning rate")
    add("--gamma", type=float, default=None, help="R1 weight (default 0.0002 * res^2 / batch)")
    add("--label-smoothing", type=float, default=None, metavar="TARGET",
        help="one-sided label smoothing: target for real images in the ns loss, e.g. 0.9 (default 1)")
    add("--pl-weight", type=float, default=None, help="path-length regularisation weight (0: off)")
    add("--style-mixing", type=float, default=None, help="style-mixing probability")
    add("--ema-kimg", type=float, default=None, help="half-life of G_ema in thousands of images (default: from --cfg)")
    add("--augment", choices=AUGMENTS, default=None,
        help="ada: differentiable augmentation with adaptive strength (default); fixed: --augment-p; none")
    add("--augment-p", type=float, default=None, help="starting (ada) or fixed augmentation probability")
    add("--mirror", action="store_true", default=None, help="also train on left-right mirrored images")
    add("--cond", action="store_true", default=None, help="conditional training on the data set's labels")
    add("--portraits", type=int, default=None, metavar="COUNT", help="size of the procedural data set (default 10000)")
    add("--seed", type=int, default=None, help="random seed (default 0)")
    add("--tick", type=float, default=None, help="kimg between progress lines and stats.jsonl records (default 0.5)")
    add("--snap", type=float, default=None, help="kimg between checkpoints and sample grids (default 5)")
    add("--keep", type=int, default=None, help="checkpoints kept on disk (default 3)")
    add("--teacher", default=None, metavar="DCGAN",
        help="a DCGAN generator checkpoint, or 'gan-face-generate' (that package's weights): its images are the data")
    add("--distill", type=float, default=None, metavar="WEIGHT",
        help="also pull G(z) towards the teacher's image of the same z with this weight (needs --teacher)")
    add("--distill-loss", choices=DISTILL_LOSSES, default=None,
        help="pyramid: L1 at four scales (default); l1: L1 of the pixels")
    add("--adversarial", type=float, default=None, metavar="WEIGHT",
        help="weight of G's adversarial loss (default 1; 0 with --distill: distillation only)")
    add("--z-dim", type=int, default=None, help="latent size (default: from --cfg, or the teacher's when distilling)")
    add("--init", default=None, metavar="MODEL", help="fine-tune from a model file (any format latentstudio reads)")
    add("--resume", default=None, metavar="PATH", help="continue a run: its folder or a checkpoint file")
    add("--gpus", type=int, default=1, help="processes to start (one per GPU; gloo CPU processes without CUDA)")
    add("--workers", type=int, default=None, help="data loader worker processes (default: 2 with CUDA, 0 on a CPU)")
    add("--device", default=None, help="cpu, cuda (default: cuda if available)")
    add("--events", action="store_true", help="print progress events as JSON lines on stdout (for the GUI)")
    return parser


def options_from_args(args: argparse.Namespace):
    """TrainOptions from the command line (or from the checkpoint, with --resume)."""
    from latentstudio.train.checkpoints import CheckpointError
    from latentstudio.train.config import TrainOptions
    from latentstudio.train.run import options_for_resume

    given = {key: value for key, value in vars(args).items() if value is not None}
    try:
        if args.resume:
            overrides = {key: given[key] for key in RESUME_OVERRIDES if key in given}
            ignored = sorted(set(given) - set(RESUME_OVERRIDES) - {"resume", "gpus", "events", "_run", "_prepare",
                                                                    "command", "outdir", "data"})
            if ignored:
                print(f"note: --resume continues with the checkpoint's settings; ignoring --{', --'.join(ignored)}",
                      file=sys.stderr)
            options, _, _ = options_for_resume(args.resume, overrides)
            return options
        if getattr(args, "teacher", None) and not args.data:
            given["data"] = "teacher"
        if not given.get("data") or not args.outdir:
            raise TrainUsageError("--data (or --teacher) and --outdir are required (or --resume PATH)")
        known = {key: given[key] for key in TrainOptions.__dataclass_fields__ if key in given}
        return TrainOptions(**known)
    except CheckpointError as error:
        raise TrainUsageError(str(error)) from None
    except ValueError as error:
        raise TrainUsageError(str(error)) from None


def prefer_passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the user chose otherwise).

    On a CPU shared with other work, spinning threads of torch's intra-op pool steal the
    cores they wait for: a training step was 3.6x slower with 2 threads than with 1 on a busy
    2-core machine, and as fast as 1 thread with passive waiting. Only effective before
    torch is imported: ``latentstudio train`` runs it as the subcommand's ``_prepare`` hook and
    ``python -m latentstudio.train`` first thing.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run(args: argparse.Namespace) -> int:
    from latentstudio.data.errors import DatasetError
    from latentstudio.train.checkpoints import CheckpointError
    from latentstudio.train.distributed import spawn

    options = options_from_args(args)
    try:
        if args.gpus > 1:
            spawn(_train_process, args.gpus, (options, args.resume, args.events))
        else:
            _train_process(options, args.resume, args.events)  # alone, or one of torchrun's processes
    except (DatasetError, CheckpointError, ValueError) as error:  # unusable data, checkpoint or --init model
        raise TrainUsageError(str(error)) from None
    return 0


def _train_process(options, resume, events) -> None:
    """Train in this process (module level, so ``spawn`` can start it in others too)."""
    from latentstudio.train.distributed import shutdown
    from latentstudio.train.run import train

    try:
        train(options, resume=resume, events=events)
    finally:
        shutdown()
