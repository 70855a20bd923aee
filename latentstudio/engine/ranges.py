"""Parsing the integer lists and ranges people type (``0-7,42`` seeds, ``0-5`` layers).

Here, below the CLI, because the GUI's text fields accept the same syntax; the CLI wraps
these for argparse (:mod:`latentstudio.cli.arguments`).
"""
from __future__ import annotations


class RangeSyntaxError(ValueError):
    """The text is not a list of integers and ranges; the message says which part is wrong."""


def parse_int_list(text: str) -> list[int]:
    """``"0-3,7,10-11"`` -> ``[0, 1, 2, 3, 7, 10, 11]`` (order kept, duplicates dropped)."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                split_at = part.index("-", 1)
                first, last = int(part[:split_at]), int(part[split_at + 1 :])
                if last < first:
                    raise RangeSyntaxError(f"range {part!r} ends before it starts")
                values.extend(range(first, last + 1))
            else:
                values.append(int(part))
        except RangeSyntaxError:
            raise
        except ValueError:
            raise RangeSyntaxError(f"{part!r} is not an integer or a range like 0-7") from None
    if not values:
        raise RangeSyntaxError(f"{text!r} names no integers")
    return list(dict.fromkeys(values))


def parse_layer_range(text: str) -> tuple[int, int]:
    """``"0-5"`` -> ``(0, 5)`` inclusive; ``"3"`` -> ``(3, 3)``."""
    values = parse_int_list(text)
    return min(values), max(values)
