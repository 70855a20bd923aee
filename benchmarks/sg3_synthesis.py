"""Batch-1 synthesis time of a 256x256 config-T StyleGAN3 on the CPU (random weights).

Default channel widths (``channel_base`` 32768, ``channel_max`` 512), float32,
``torch.inference_mode``. Prints the median of ``--runs`` timed runs after one warm-up, in
milliseconds. The yardstick is the same network, same weights, in the same process, with
the filtered leaky ReLU computed the NVlabs reference way (``upfirdn2d`` + ``bias_act``
from :mod:`latentstudio.nets.ops`); the ratio says what the matrix-product resampling of
:mod:`latentstudio.nets.filtered_lrelu` buys.

    python benchmarks/sg3_synthesis.py [--runs 3] [--threads N] [--skip-reference] [--editing]

``--editing`` also times the editor's renderer on the same network (``latentstudio.bench``):
full frames, plain vs incremental, and fine edits that re-run only the last layers.
"""
from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import torch

from latentstudio.nets import ops, stylegan3
from latentstudio.nets.stylegan3 import Generator


def reference_filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=2**0.5,
                             slope=0.2, clamp=None, flip_filter=False):
    """The NVlabs reference op sequence: bias, upfirdn2d up, lrelu + gain + clamp, upfirdn2d down."""
    x = ops.bias_act(x, b)
    x = ops.upfirdn2d(x, fu, up=up, padding=padding, gain=up**2, flip_filter=flip_filter)
    x = ops.bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return ops.upfirdn2d(x, fd, down=down, flip_filter=flip_filter)


def median_ms(G: Generator, ws: torch.Tensor, runs: int) -> tuple[float, torch.Tensor]:
    with torch.inference_mode():
        img = G.synthesis(ws)  # warm-up
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            img = G.synthesis(ws)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, img


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-reference", action="store_true", help="time only latentstudio's path")
    parser.add_argument("--editing", action="store_true", help="also time the editor's renderer: full frames and fine edits")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3).eval()
    with torch.inference_mode():
        ws = G.mapping(torch.randn([1, G.z_dim]), None)
    print(f"StyleGAN3-T 256x256, batch 1, float32 CPU, torch threads {torch.get_num_threads()}, "
          f"median of {args.runs} runs after 1 warm-up")

    ours, img = median_ms(G, ws, args.runs)
    print(f"latentstudio synthesis:       {ours:9.1f} ms")
    if not args.skip_reference:
        with mock.patch.object(stylegan3, "filtered_lrelu", reference_filtered_lrelu):
            reference, ref_img = median_ms(G, ws, args.runs)
        print(f"reference-op synthesis:       {reference:9.1f} ms")
        print(f"speed-up: {reference / ours:.2f}x   max abs difference: {(img - ref_img).abs().max().item():.2e}")
    if args.editing:
        from latentstudio.bench import bench_renderer

        G.kind = "stylegan3"
        print("\neditor renderer (latentstudio.bench):")
        for name, value in bench_renderer(G, "sg3-t 256", repeats=args.runs).rows:
            print(f"  {name:<34}{value}")


if __name__ == "__main__":
    main()
