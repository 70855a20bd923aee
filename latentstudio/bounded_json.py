"""JSON from untrusted files, with a size cap and a nesting cap checked before parsing.

``json.loads`` on ``[[[[...]]]]`` a hundred thousand levels deep recurses until CPython gives
up, and on a gigabyte of text it builds a gigabyte of objects. Model headers, recipes (in PNG
chunks and ``.json`` files) and data-set labels all come from files a stranger may have made,
so they are parsed here: the text is refused when longer than ``max_chars`` or nested deeper
than ``max_depth`` (counted on the brackets outside strings, without recursion), and only then
handed to ``json.loads``. ``NaN`` and ``Infinity`` parse as Python's json reads them: callers
validate their values and name the field that holds one.
"""
from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

DEFAULT_MAX_CHARS = 16 << 20
DEFAULT_MAX_DEPTH = 64
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(code for code in range(256) if code not in b"[]{}")


class JSONError(ValueError):
    """Not JSON, or JSON too large or too deep; the message is one short line."""


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of ``text``, ignoring brackets inside strings."""
    brackets = _STRINGS.sub('""', text).encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def loads(text: str | bytes, max_chars: int = DEFAULT_MAX_CHARS, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """``json.loads(text)``, but :class:`JSONError` for text over the caps or not JSON."""
    if len(text) > max_chars:
        raise JSONError(f"JSON text of {len(text):,} characters (at most {max_chars:,} accepted)")
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise JSONError("JSON text that is not UTF-8") from None
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JSONError(f"JSON nested {depth} levels deep (at most {max_depth} accepted)")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        message = " ".join(str(error).split())[:120]
        raise JSONError(f"not valid JSON ({message or type(error).__name__})") from None
