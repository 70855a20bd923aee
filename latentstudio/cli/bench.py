"""``latentstudio bench [MODEL]``: rendering speed, fast paths against the plain path."""
from __future__ import annotations

import argparse

from latentstudio.cli import CliError
from latentstudio.cli.arguments import int_list


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("bench", help="measure rendering speed (fast paths vs the plain reference path)")
    parser.add_argument("model", nargs="?", help="a model file; without it, random config-f generators at --sizes")
    parser.add_argument("--sizes", type=int_list, default=[64, 128, 256], help="resolutions without MODEL (default 64,128,256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed frames per measurement (median)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")
    parser.add_argument("--fp16", action="store_true",
                        help="random generators with fp16 in the 4 highest resolutions (used on CUDA only, as in NVlabs models)")
    parser.add_argument("--cold-start", action="store_true", help="also time a fresh process to its first frame (needs MODEL)")
    return parser


def run(args: argparse.Namespace) -> int:
    import platform

    import torch

    from latentstudio.bench import bench_renderer, cold_start_ms, config_f_generator
    from latentstudio.io import load_model

    bad_sizes = [size for size in args.sizes if size < 8 or size & (size - 1)]
    if bad_sizes and not args.model:
        raise CliError(f"--sizes: {', '.join(map(str, bad_sizes))} is not a power of two of 8 or more")
    device = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor() or platform.machine()
    print(f"device {args.device} ({device}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if args.model:
        G = load_model(args.model, device=args.device)
        targets = [(G.info.name, G)]
    else:
        precision = "fp16" if args.fp16 else "fp32"
        targets = [(f"config-f {size}x{size} {precision}", config_f_generator(size, args.device, fp16=args.fp16))
                   for size in args.sizes]
    for label, G in targets:
        result = bench_renderer(G, label, repeats=args.repeats, class_index=0)
        print(f"\n{label}")
        for name, value in result.rows:
            print(f"  {name:<30}{value}")
    if args.cold_start and args.model:
        print(f"\ncold start (process start to first frame): {cold_start_ms(args.model):.0f} ms")
    return 0
