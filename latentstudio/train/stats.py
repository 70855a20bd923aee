"""Bookkeeping: per-tick statistics in ``stats.jsonl`` and progress events for whoever watches.

``stats.jsonl`` gets one JSON object per tick (keys in :data:`STAT_KEYS` plus ``step``,
``kimg``, timings); the GUI plots it while the run goes on. Progress events are one JSON
object per line on stdout (``{"event": "tick", ...}``, ``"snapshot"``, ``"done"``...), printed
only when asked (``--events``), so the Training tab can follow a run it started.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, TextIO

import torch

from latentstudio import bounded_json
from latentstudio.train.distributed import all_reduce_sum
from latentstudio.untrusted import open_regular_file, prefixed

STATS_FILE = "stats.jsonl"
MAX_READ_BYTES = 4 << 20  # what one read of a growing JSON-lines file takes in (the rest comes next time)
# Means over the steps of a tick (or over the steps a regulariser ran, for R1, R2 and PL);
# "distill" is the reconstruction loss against the teacher's images.
STAT_KEYS = ("G_loss", "D_loss", "D_real_acc", "D_fake_acc", "R1", "R2", "PL", "distill")


class TickStats:
    """Sums of per-step values as tensors, so nothing waits on the GPU until the tick ends."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._sums = torch.zeros([len(STAT_KEYS), 2], dtype=torch.float64, device=device)  # (key, [sum, count])

    def add(self, key: str, values: torch.Tensor) -> None:
        """Add per-sample values ``[N]`` of one step."""
        row = STAT_KEYS.index(key)
        self._sums[row, 0] += values.detach().double().sum()
        self._sums[row, 1] += values.numel()

    def collect(self) -> dict[str, float | None]:
        """Means over all processes since the last call (None for what did not run), then reset."""
        sums = all_reduce_sum(self._sums.clone()).cpu()
        self._sums.zero_()
        return {key: (float(total / count) if count > 0 else None) for key, (total, count) in zip(STAT_KEYS, sums.tolist())}


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class StatsLog:
    """Appends ticks to ``stats.jsonl``; on resume drops lines written after the checkpoint."""

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        self.path = run_dir / STATS_FILE
        if resume_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and _line_step(line) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as stream:
            stream.write(json.dumps({key: _finite_or_none(value) for key, value in record.items()}) + "\n")


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # a torn last line from a killed run: drop it


def read_stats(path: Path, offset: int = 0, max_bytes: int = MAX_READ_BYTES) -> tuple[list[dict[str, Any]], int]:
    """Complete records of ``stats.jsonl`` from byte ``offset``, and the offset to read on from.

    A line still being written (no newline yet) is left for the next call. At most
    ``max_bytes`` are read per call (a longer line is skipped); lines that are not JSON
    objects are skipped; a path that is not a regular file (a pipe) reads as nothing yet.
    """
    try:
        with open_regular_file(path, prefixed(OSError), "stats file") as (stream, _):
            stream.seek(offset)
            data = stream.read(max_bytes)
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1 or (len(data) if len(data) == max_bytes else 0)
    records = []
    for line in data[:end].splitlines():
        try:
            record = bounded_json.loads(line, max_chars=max_bytes, max_depth=8)
        except bounded_json.JSONError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, offset + end


class EventStream:
    """Progress events as JSON lines on ``stream`` (stdout), or nowhere when disabled."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stdout

    def emit(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        self.stream.write(json.dumps({"event": event, **{k: _finite_or_none(v) for k, v in fields.items()}}) + "\n")
        self.stream.flush()
