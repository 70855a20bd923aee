"""Seeded mutations of valid model files, aimed where a parser decides things.

``mutated(source, seed)`` returns ``(bytes, description)``: the same pair for the same source
and seed, on any machine. Most mutations land on structure (pickle opcodes and their
arguments, the headers of the legacy storages inside NVlabs pickles, a safetensors file's
JSON header), where a flipped bit changes what the parser does, rather than on tensor bytes,
where it only changes a weight.
"""
from __future__ import annotations

import functools
import pickletools
import random
import struct
from pathlib import Path

OPCODES = [op.code.encode("latin-1") for op in pickletools.opcodes]
LENGTHS = [0, 1, 255, 256, 65535, 2**31 - 1, 2**32 - 1, 2**40, 2**62, 2**63 - 1]


@functools.lru_cache(maxsize=8)
def structure(source: str) -> tuple[bytes, tuple[int, ...], tuple[int, ...]]:
    """The file, the offsets of its parsing decisions, and the offsets of its length fields."""
    data = Path(source).read_bytes()
    if data[:1] != b"\x80":  # safetensors: the length and the JSON header
        (length,) = struct.unpack("<Q", data[:8])
        return data, tuple(range(0, 8 + length)), (0,)
    decisions, lengths = [], []
    for op, arg, position in pickletools.genops(data):
        decisions.append(position)
        if op.name in ("BINBYTES", "BINUNICODE", "BINBYTES8", "BINUNICODE8", "LONG_BINPUT", "LONG_BINGET", "FRAME"):
            lengths.append(position + 1)
        if op.name in ("BINBYTES", "SHORT_BINBYTES") and isinstance(arg, bytes) and arg[:2] == b"\x80\x02":
            # an embedded legacy storage: its five small pickles and the element count
            start = position + (5 if op.name == "BINBYTES" else 2)
            decisions.extend(range(start, start + min(len(arg), 300)))
    return data, tuple(decisions), tuple(lengths)


def mutated(source: str, seed: int) -> tuple[bytes, str]:
    data, decisions, lengths = structure(source)
    rng = random.Random(seed)
    out = bytearray(data)
    spot = rng.choice(decisions) if rng.random() < 0.85 else rng.randrange(len(data))
    kind = rng.choice(["flip", "byte", "opcode", "truncate", "insert", "delete", "duplicate", "length", "splice"])
    if kind == "flip":
        for _ in range(rng.randint(1, 3)):
            out[spot] ^= 1 << rng.randrange(8)
            spot = min(spot + rng.randint(0, 3), len(out) - 1)
    elif kind == "byte":
        out[spot] = rng.randrange(256)
    elif kind == "opcode":
        out[spot:spot + 1] = rng.choice(OPCODES)
    elif kind == "truncate":
        del out[spot:]
    elif kind == "insert":
        out[spot:spot] = rng.choice(OPCODES) * rng.randint(1, 64) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 16))
    elif kind == "delete":
        del out[spot:spot + rng.randint(1, 64)]
    elif kind == "duplicate":
        chunk = data[spot:spot + rng.randint(1, 256)]
        out[spot:spot] = chunk * rng.randint(1, 8)
    elif kind == "length":
        spot = rng.choice(lengths)
        width = 8 if data[:1] != b"\x80" or data[spot - 1:spot] in (b"\x8e", b"\x8d", b"\x95") else 4
        out[spot:spot + width] = (rng.choice(LENGTHS) % (1 << (8 * width))).to_bytes(width, "little")
    else:  # splice: a stretch of the file copied over another place
        other = rng.choice(decisions)
        out[spot:spot + 32] = data[other:other + 32]
    return bytes(out), f"{kind} at byte {spot}"
