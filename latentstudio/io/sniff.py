"""Recognise a file's format from its first bytes, never from its extension.

Only a bounded prefix is ever read (:data:`HEAD` bytes, and :data:`JSON_PREFIX` for text that
looks like JSON), whatever the file's size.
"""
from __future__ import annotations

import struct
from typing import BinaryIO

from latentstudio import bounded_json

PICKLE = "pickle"
TF_PICKLE = "tf-pickle"
SAFETENSORS = "safetensors"
TORCH_ZIP = "torch-zip"
TORCH_LEGACY = "torch-legacy"
HEAD = 64
JSON_PREFIX = 1 << 20

# A TF network pickle's first object is a dnnlib.tflib.network.Network (G of (G, D, Gs)),
# so its first global, named within the first bytes, is that class.
_TF_NETWORK_CLASS = b"dnnlib.tflib.network"
# torch.save before PyTorch 1.6 starts with a pickled magic number (LONG1 of 10 bytes).
_TORCH_LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"

_IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"BM": "a BMP image",
}


def sniff_format(stream: BinaryIO, size: int) -> tuple[str | None, str]:
    """``(format, description)`` of the open file (read from its start; the position is left
    undefined); format is None when the file is no model format we read."""
    stream.seek(0)
    head = stream.read(HEAD)
    if not head:
        return None, "an empty file (0 bytes)"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        if _TF_NETWORK_CLASS in head:
            return TF_PICKLE, f"a TensorFlow-era network pickle (protocol {head[1]})"
        if head[2:].startswith(_TORCH_LEGACY_MAGIC):
            return TORCH_LEGACY, "a PyTorch file in the format torch.save wrote before PyTorch 1.6"
        return PICKLE, f"a Python pickle (protocol {head[1]})"
    if head[:4] == b"PK\x03\x04":
        return TORCH_ZIP, "a zip archive (as written by torch.save)"
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 8 + header_len <= size:
            return SAFETENSORS, "a safetensors file"
    for magic, description in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return None, description
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return None, "a WebP image"
    if head.lstrip()[:1] in (b"{", b"["):
        if size > JSON_PREFIX:
            return None, f"a text file that starts like JSON ({size:,} bytes)"
        stream.seek(0)
        try:
            bounded_json.loads(stream.read(JSON_PREFIX), max_chars=JSON_PREFIX)
            return None, "a JSON document"
        except bounded_json.JSONError:
            pass
    return None, f"an unrecognised format (first bytes {head[:8].hex(' ')})"
