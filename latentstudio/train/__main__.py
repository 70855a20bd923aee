"""``python -m latentstudio.train ...``: the trainer as its own process (torchrun, the GUI)."""
import argparse
import sys

from latentstudio.train.command import prefer_passive_openmp

prefer_passive_openmp()  # before anything imports torch

from latentstudio.io.errors import ModelLoadError  # noqa: E402
from latentstudio.train.command import TrainUsageError, add_arguments, run  # noqa: E402

parser = add_arguments(argparse.ArgumentParser(prog="python -m latentstudio.train", description=__doc__))
try:
    sys.exit(run(parser.parse_args()))
except (TrainUsageError, ModelLoadError) as error:
    print(f"latentstudio.train: error: {error}", file=sys.stderr)
    sys.exit(2)
