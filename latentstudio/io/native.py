"""The native model format: one ``.safetensors`` file, settings and provenance as JSON metadata.

safetensors holds only tensors and a string-to-string header, so reading it can never run
code. Tensor names are ``<network>.<state_dict key>`` (``G_ema.mapping.fc0.weight``); the
header key ``latentstudio`` holds, as JSON, each network's kind, class and constructor
kwargs plus provenance, which is all that is needed to rebuild the networks.
"""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from latentstudio.atomic import atomic_path
from latentstudio.io.architectures import UnsupportedNetwork, build_network, load_weights
from latentstudio.io.errors import ModelLoadError

FORMAT_NAME = "latentstudio-native"
FORMAT_VERSION = 1
HEADER_KEY = "latentstudio"


def save_native(
    path: str | os.PathLike,
    networks: dict[str, nn.Module],
    provenance: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``networks`` (e.g. ``{"G_ema": G}``) to ``path`` atomically.

    Each network must carry ``init_kwargs`` and ``kind`` attributes (set by every loader and
    by the trainer). ``dtype=torch.float16`` halves the file; floating tensors are cast back
    to float32 on load.
    """
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    described: dict[str, Any] = {}
    for name, network in networks.items():
        described[name] = {
            "kind": network.kind,
            "class": type(network).__name__,
            "init_kwargs": network.init_kwargs,
        }
        for key, value in network.state_dict().items():
            value = value.detach().to("cpu")
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            tensors[f"{name}.{key}"] = value.contiguous().clone()
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "networks": described,
        "provenance": {"written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **(provenance or {})},
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={HEADER_KEY: json.dumps(header)})
    return path


def read_native(path: Path) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Networks in a native file by name, and its provenance."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelLoadError(path, f"a damaged .safetensors file ({error})") from None
    try:
        header = json.loads(metadata[HEADER_KEY])
        described = header["networks"]
        if header.get("format") != FORMAT_NAME or not isinstance(described, dict):
            raise KeyError("format")
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ModelLoadError(
            path,
            "a .safetensors file without latentstudio settings (its header lacks the 'latentstudio' "
            "entry describing the networks); write native files with `latentstudio convert`",
        ) from None
    if header.get("version", 0) > FORMAT_VERSION:
        raise ModelLoadError(path, f"native format version {header['version']} is newer than this latentstudio understands ({FORMAT_VERSION})")

    networks: dict[str, nn.Module] = {}
    for name, spec in described.items():
        prefix = f"{name}."
        state = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
        try:
            network = build_network(spec["kind"], spec["class"], spec["init_kwargs"])
            networks[name] = load_weights(network, state, spec["kind"], spec["init_kwargs"])
        except UnsupportedNetwork as error:
            raise ModelLoadError(path, f"network {name}: {error}") from None
        except (KeyError, TypeError) as error:
            raise ModelLoadError(path, f"network {name}: malformed description ({error})") from None
    return networks, dict(header.get("provenance") or {})
