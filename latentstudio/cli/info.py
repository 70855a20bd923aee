"""``latentstudio info MODEL``: what a model file is."""
from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("info", help="describe a model file (format, resolution, layers, provenance)")
    parser.add_argument("model", help="model file (NVlabs .pkl, PyTorch or TensorFlow; rosinality .pt; latentstudio .safetensors)")
    parser.add_argument("--json", action="store_true", help="print the description as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    from latentstudio.io import load_model

    info = load_model(args.model, device="cpu").info
    if args.json:
        print(json.dumps(info.to_dict(), indent=2, default=str))
        return 0
    classes = f"{info.c_dim}" + (f" ({', '.join(info.class_names)})" if info.class_names else "") if info.c_dim else "unconditional"
    rows = [
        ("file", info.path),
        ("format", info.format_name),
        ("kind", f"{info.kind} ({info.config})"),
        ("networks", ", ".join(info.networks)),
        ("resolution", f"{info.resolution}x{info.resolution}, {info.img_channels} channel(s)"),
        ("latents", f"z_dim {info.z_dim}, w_dim {info.w_dim}, num_ws {info.num_ws}"),
        ("classes", classes),
        ("parameters", f"{info.num_params:,} (generator)"),
        ("fingerprint", info.fingerprint),
    ]
    rows += [(f"provenance.{key}", _flat(value)) for key, value in info.provenance.items()]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("layers (ws index: what it drives):")
    for index, name in enumerate(info.layer_names):
        print(f"  {index:>3}: {name}")
    return 0


def _flat(value: object) -> str:
    """A provenance value on one line (``key=value, ...`` for a dict)."""
    if isinstance(value, dict):
        return ", ".join(f"{key}={_flat(item)}" for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(_flat, value))
    return str(value)
