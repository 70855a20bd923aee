"""Portrait generation speed at 64x64 on one core: drawing only, and drawing + writing a zip.

Goal: 50,000 portraits in a few minutes (>= ~300 images/s end to end).
Run: ``python benchmarks/portraits_speed.py [--count 5000] [--res 64]``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from latentstudio.data.build import write_portraits
from latentstudio.data.portraits import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--res", type=int, default=64)
    args = parser.parse_args()

    start = time.perf_counter()
    for _ in generate(args.count, args.res, seed=0):
        pass
    draw_rate = args.count / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_portraits(Path(folder) / "portraits.zip", args.count, args.res, seed=0)
        write_rate = args.count / (time.perf_counter() - start)

    print(f"{args.count} portraits at {args.res}x{args.res}")
    print(f"draw only:         {draw_rate:7.0f} images/s")
    print(f"draw + PNG + zip:  {write_rate:7.0f} images/s  (50,000 in {50_000 / write_rate / 60:.1f} min)")


if __name__ == "__main__":
    main()
