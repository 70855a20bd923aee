"""Checkpoints: the networks as a native ``.safetensors`` file plus a small training state file.

A checkpoint at step ``s`` is the pair ``network-snapshot-{s}.safetensors`` (G, D, G_ema: any
latentstudio tool opens it) and ``training-state-{s}.pt`` (optimizers, step, augmentation and
path-length state, options). Both are written to a temporary file, fsynced and renamed, the
state file last, so a checkpoint is complete exactly when its state file exists: a run killed
at any moment leaves only complete checkpoints behind. The state file holds only tensors and
plain Python values; it is written with ``torch.save`` and read as data by the bounded torch-zip
reader of :mod:`latentstudio.io.torch_zip` (never ``torch.load``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from latentstudio.atomic import atomic_path

NETWORK_PATTERN = "network-snapshot-{step:06d}.safetensors"
STATE_PATTERN = "training-state-{step:06d}.pt"
STATE_RE = re.compile(r"training-state-(\d+)\.pt$")
NETWORK_RE = re.compile(r"network-snapshot-(\d+)\.safetensors$")
STATE_FORMAT = "latentstudio-training-state"
STATE_VERSION = 1


class CheckpointError(Exception):
    """No usable checkpoint where one was asked for."""


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_state_atomically(path: Path, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file next to ``path``, fsync, rename."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    _fsync_dir(path.parent)
    return path


def save_checkpoint(run_dir: Path, step: int, networks: dict[str, torch.nn.Module], state: dict[str, Any],
                    provenance: dict[str, Any], keep: int) -> Path:
    """Write the checkpoint of ``step``, drop all but the newest ``keep``; returns the network file."""
    from latentstudio.io import save_native

    network_path = run_dir / NETWORK_PATTERN.format(step=step)
    save_native(network_path, networks, provenance)
    _fsync_dir(run_dir)
    full_state = {"format": STATE_FORMAT, "version": STATE_VERSION, "network": network_path.name, **state}
    write_state_atomically(run_dir / STATE_PATTERN.format(step=step), full_state)
    prune_checkpoints(run_dir, keep)
    return network_path


def checkpoint_steps(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints in ``run_dir``, oldest first."""
    steps = []
    for path in run_dir.glob("training-state-*.pt"):
        match = STATE_RE.search(path.name)
        if match and (run_dir / NETWORK_PATTERN.format(step=int(match.group(1)))).exists():
            steps.append(int(match.group(1)))
    return sorted(steps)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete checkpoints older than the newest ``keep`` (state file first: never half a pair)."""
    for step in checkpoint_steps(run_dir)[:-keep] if keep > 0 else []:
        (run_dir / STATE_PATTERN.format(step=step)).unlink(missing_ok=True)
        (run_dir / NETWORK_PATTERN.format(step=step)).unlink(missing_ok=True)


def find_checkpoint(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(network file, state file)`` for ``--resume PATH``: a run folder (its newest complete
    checkpoint), a state file, or a network file that has a state file beside it."""
    path = Path(path)
    if path.is_dir():
        steps = checkpoint_steps(path)
        if not steps:
            raise CheckpointError(f"{path}: no complete checkpoint (network-snapshot-*.safetensors with "
                                  f"its training-state-*.pt) in this folder")
        step = steps[-1]
        return path / NETWORK_PATTERN.format(step=step), path / STATE_PATTERN.format(step=step)
    for regex, other in ((STATE_RE, NETWORK_PATTERN), (NETWORK_RE, STATE_PATTERN)):
        match = regex.search(path.name)
        if match:
            partner = path.parent / other.format(step=int(match.group(1)))
            pair = (partner, path) if regex is STATE_RE else (path, partner)
            missing = [p for p in pair if not p.exists()]
            if missing:
                raise CheckpointError(f"{path}: incomplete checkpoint, missing {missing[0]}")
            return pair
    raise CheckpointError(f"{path}: not a run folder, training-state-*.pt or network-snapshot-*.safetensors")


def latest_network(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint's network file in ``run_dir``, if any."""
    steps = checkpoint_steps(Path(run_dir))
    return Path(run_dir) / NETWORK_PATTERN.format(step=steps[-1]) if steps else None


def load_state(path: Path) -> dict[str, Any]:
    """A training state file, read as data: the regular file only, through the bounded
    unpickler with checked tensor storages (never ``torch.load``), every tensor finite."""
    from latentstudio.io.safe_pickle import ALLOWED_GLOBALS, UnsafePickle
    from latentstudio.io.tensors import TENSOR_GLOBALS
    from latentstudio.io.torch_zip import read_torch_zip
    from latentstudio.untrusted import open_regular_file, prefixed

    with open_regular_file(path, prefixed(CheckpointError), "training state file") as (stream, size):
        try:
            state = read_torch_zip(stream, size, {**ALLOWED_GLOBALS, **TENSOR_GLOBALS})
        except UnsafePickle as error:
            raise CheckpointError(f"{path}: unreadable training state ({' '.join(str(error).split())[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a latentstudio training state file")
    version = state.get("version", 0)
    if type(version) is not int or version > STATE_VERSION:
        raise CheckpointError(f"{path}: training state version {version!r:.20} is newer than this latentstudio")
    bad = next((name for name, tensor in _tensors(state) if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())), None)
    if bad is not None:
        raise CheckpointError(f"{path}: the training state holds NaN or Inf values ({bad[:80]})")
    return state


def _tensors(value: Any, name: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in a (checked, plain, bounded) state, with where it is."""
    if isinstance(value, torch.Tensor):
        return [(name, value)]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    return [found for key, child in items for found in _tensors(child, f"{name}.{key}" if name else str(key))]
