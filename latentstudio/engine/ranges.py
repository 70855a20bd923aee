"""Parsing the integer lists, ranges and points people type (``0-7,42`` seeds, ``0-5`` layers,
``10,20:14,20`` drag points).

Here, below the CLI, because the GUI's text fields accept the same syntax; the CLI wraps
these for argparse (:mod:`latentstudio.cli.arguments`).
"""
from __future__ import annotations

import math


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


def parse_point_pairs(text: str) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """``"10,20:14,20;30,5:30,9"`` -> ``[((10, 20), (14, 20)), ((30, 5), (30, 9))]``.

    Pairs are separated by ``;``, a pair's two points by ``:``, a point's x and y by ``,``
    (the drag handles and their targets, in pixels).
    """
    pairs = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        points = part.split(":")
        if len(points) != 2:
            raise RangeSyntaxError(f"{part!r} is not a pair like x1,y1:x2,y2")
        pairs.append((_parse_point(points[0], part), _parse_point(points[1], part)))
    if not pairs:
        raise RangeSyntaxError(f"{text!r} names no point pairs (write x1,y1:x2,y2;...)")
    return pairs


def _parse_point(text: str, pair: str) -> tuple[float, float]:
    values = text.split(",")
    try:
        if len(values) != 2:
            raise ValueError
        x, y = float(values[0]), float(values[1])
    except ValueError:
        raise RangeSyntaxError(f"{text.strip()!r} in {pair!r} is not a point like 12,34") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise RangeSyntaxError(f"{text.strip()!r} in {pair!r} is not a finite point")
    return x, y
