"""The native model format: one ``.safetensors`` file, settings and provenance as JSON metadata.

safetensors holds only tensors and a string-to-string header, so reading it can never run
code. Tensor names are ``<network>.<state_dict key>`` (``G_ema.mapping.fc0.weight``); the
header key ``latentstudio`` holds, as JSON, each network's kind, class and constructor
kwargs plus provenance, which is all that is needed to rebuild the networks.

Files are written with the safetensors library. They are read here, from one bounded pass
over the bytes: the header's size is capped before it is read, its JSON (and the JSON inside
it) is parsed with size and depth caps (:mod:`latentstudio.bounded_json`), every tensor's
dtype, shape and byte range is checked against the file (contiguous, non-overlapping,
exactly shape x itemsize), and the tensors are copied out as checked storages.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors.torch import save_file
from torch import nn

from latentstudio import bounded_json
from latentstudio.atomic import atomic_path
from latentstudio.io.architectures import UnsupportedNetwork, build_checked
from latentstudio.io.errors import ModelLoadError, describe_error
from latentstudio.io.safe_pickle import Budget, UnsafePickle

FORMAT_NAME = "latentstudio-native"
FORMAT_VERSION = 1
HEADER_KEY = "latentstudio"
MAX_HEADER = 16 << 20  # bytes of safetensors header JSON
MAX_SETTINGS = 4 << 20  # characters of the latentstudio entry
MAX_NETWORKS = 16
DTYPES = {
    "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
    "I8": torch.int8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
    "U8": torch.uint8, "BOOL": torch.bool,
}


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


def read_safetensors(path: Path, stream: BinaryIO, size: int, budget: Budget) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Every tensor of a ``.safetensors`` file and its string metadata, checked (see module docstring)."""
    if size < 8:
        raise ModelLoadError(path, "a damaged .safetensors file (shorter than its header length)")
    (header_len,) = struct.unpack("<Q", stream.read(8))
    if header_len > min(MAX_HEADER, size - 8):
        raise ModelLoadError(path, f"a damaged .safetensors file (its header claims {header_len:,} bytes)")
    try:
        header = bounded_json.loads(stream.read(header_len), max_chars=MAX_HEADER, max_depth=8)
    except bounded_json.JSONError as error:
        raise ModelLoadError(path, f"a damaged .safetensors file (header: {error})") from None
    if not isinstance(header, dict):
        raise ModelLoadError(path, "a damaged .safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelLoadError(path, "a damaged .safetensors file (its metadata is not a table of strings)")
    data_size = size - 8 - header_len
    spans = sorted(((_span(path, name, entry, data_size), name) for name, entry in header.items()), key=lambda s: s[0][:2])
    position = 0
    for (start, end, _, _), name in spans:
        if start != position:
            raise ModelLoadError(path, f"a damaged .safetensors file (tensor {name[:80]} overlaps another or leaves a gap)")
        position = end
    if position != data_size:
        raise ModelLoadError(path, f"a damaged .safetensors file (its tensors cover {position:,} of {data_size:,} data bytes)")
    try:
        budget.charge_bytes(data_size, "the tensor data")
    except UnsafePickle as error:
        raise ModelLoadError(path, f"a .safetensors file too large for its size ({describe_error(error)})") from None
    data = torch.empty(data_size, dtype=torch.uint8)  # read straight into one aligned buffer
    if data_size and stream.readinto(memoryview(data.numpy())) != data_size:
        raise ModelLoadError(path, "a damaged .safetensors file (truncated)")
    tensors = {}
    for (start, end, dtype, shape), name in spans:
        chunk = data[start:end]
        tensors[name] = (chunk if start % dtype.itemsize == 0 else chunk.clone()).view(dtype).reshape(shape)
    return tensors, metadata


def _span(path: Path, name: Any, entry: Any, data_size: int) -> tuple[int, int, torch.dtype, tuple[int, ...]]:
    """``(start, end, dtype, shape)`` of one header entry, checked."""
    def damaged(why: str) -> ModelLoadError:
        return ModelLoadError(path, f"a damaged .safetensors file (tensor {str(name)[:80]}: {why})")

    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise damaged("malformed entry")
    dtype = DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        raise damaged(f"unsupported dtype {str(entry['dtype'])[:20]}")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or len(shape) > 32 or any(type(n) is not int or n < 0 for n in shape):
        raise damaged("malformed shape")
    if not isinstance(offsets, list) or len(offsets) != 2 or any(type(n) is not int for n in offsets):
        raise damaged("malformed data offsets")
    start, end = offsets
    if not 0 <= start <= end <= data_size or end - start != math.prod(shape) * dtype.itemsize:
        raise damaged(f"its bytes {start:,}..{end:,} do not hold shape {shape[:8]} within the file")
    return start, end, dtype, tuple(shape)


def read_native(path: Path, stream: BinaryIO, size: int, budget: Budget) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Networks in a native file by name, and its provenance."""
    tensors, metadata = read_safetensors(path, stream, size, budget)
    try:
        header = bounded_json.loads(metadata.get(HEADER_KEY, "{}"), max_chars=MAX_SETTINGS, max_depth=32)
    except bounded_json.JSONError as error:
        raise ModelLoadError(path, f"a native file whose latentstudio settings are damaged ({error})") from None
    try:
        described = header["networks"]
        if header.get("format") != FORMAT_NAME or not isinstance(described, dict):
            raise KeyError("format")
    except (KeyError, TypeError, AttributeError):
        raise ModelLoadError(
            path,
            "a .safetensors file without latentstudio settings (its header lacks the 'latentstudio' "
            "entry describing the networks); write native files with `latentstudio convert`",
        ) from None
    version = header.get("version", 0)
    if type(version) is not int:
        raise ModelLoadError(path, "a native file whose format version is not a number")
    if version > FORMAT_VERSION:
        raise ModelLoadError(path, f"native format version {version} is newer than this latentstudio understands ({FORMAT_VERSION})")
    if len(described) > MAX_NETWORKS:
        raise ModelLoadError(path, f"a native file describing {len(described)} networks (at most {MAX_NETWORKS})")

    networks: dict[str, nn.Module] = {}
    for name, spec in described.items():
        prefix = f"{name}."
        state = {key[len(prefix):]: value for key, value in tensors.items() if key.startswith(prefix)}
        try:
            if not isinstance(spec, dict) or not isinstance(spec.get("init_kwargs"), dict):
                raise UnsupportedNetwork("malformed description (no init_kwargs)")
            kind, class_name = spec.get("kind"), spec.get("class")
            if not isinstance(kind, str) or not isinstance(class_name, str):
                raise UnsupportedNetwork("malformed description (no kind or class)")
            networks[name] = build_checked(kind, class_name, spec["init_kwargs"], state, name)
        except UnsupportedNetwork as error:
            raise ModelLoadError(path, f"network {name[:40]}: {describe_error(error, 240)}") from None
    provenance = header.get("provenance")
    return networks, dict(provenance) if isinstance(provenance, dict) else {}
