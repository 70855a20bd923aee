"""``latentstudio convert IN OUT.safetensors``: write the native format."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("convert", help="convert a model file to latentstudio's .safetensors format")
    parser.add_argument("source", help="model file to read (any format load_model reads)")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--all", action="store_true", help="also keep G and D (for training), not only G_ema")
    parser.add_argument("--fp16", action="store_true", help="store weights as float16 (half the size)")
    return parser


def run(args: argparse.Namespace) -> int:
    import torch

    from latentstudio.cli import CliError
    from latentstudio.io import save_native
    from latentstudio.io.loader import read_model_file

    source = Path(args.source)
    networks, provenance, file_format = read_model_file(source)
    if not args.all:
        name = "G_ema" if "G_ema" in networks else "G"
        networks = {name: networks[name]}
    if not networks:
        raise CliError(f"{source} holds no networks")
    provenance = {**provenance, "source_format": file_format, "converted_from": source.name}
    try:
        out = save_native(args.output, networks, provenance, dtype=torch.float16 if args.fp16 else None)
    except OSError as error:
        raise CliError(f"{args.output}: cannot be written ({error.strerror or type(error).__name__})") from None
    print(f"wrote {out} ({', '.join(networks)}, {out.stat().st_size / 1e6:.1f} MB)")
    return 0
