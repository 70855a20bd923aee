"""``python -m latentstudio.train ...``: the trainer as its own process (torchrun, the GUI)."""
import argparse
import sys

from latentstudio.cli import CliError
from latentstudio.cli.train import add_arguments, run
from latentstudio.io.errors import ModelLoadError

parser = add_arguments(argparse.ArgumentParser(prog="python -m latentstudio.train", description=__doc__))
try:
    sys.exit(run(parser.parse_args()))
except (CliError, ModelLoadError) as error:
    print(f"latentstudio.train: error: {error}", file=sys.stderr)
    sys.exit(2)
