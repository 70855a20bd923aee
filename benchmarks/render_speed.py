"""Rendering speed on this machine: config-f StyleGAN2 with random weights, plain vs fast paths.

    python benchmarks/render_speed.py [--sizes 64,128,256] [--device cpu] [--repeats 5]

Same as ``latentstudio bench``; prints absolute times and ratios against the plain
(NVlabs-equivalent) path measured in the same run.
"""
import sys

from latentstudio.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
