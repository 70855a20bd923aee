"""argparse ``type=`` adapters for the engine's parsers: their errors become usage messages."""
from __future__ import annotations

import argparse
import math

from latentstudio.engine.ranges import RangeSyntaxError, parse_int_list, parse_layer_range, parse_point_pairs


def int_list(text: str) -> list[int]:
    """``--seeds 0-7,42``."""
    try:
        return parse_int_list(text)
    except RangeSyntaxError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def layer_range(text: str) -> tuple[int, int]:
    """``--layers 0-5``."""
    try:
        return parse_layer_range(text)
    except RangeSyntaxError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def float_pair(text: str) -> tuple[float, float]:
    """``--range -3,3``: two finite numbers."""
    parts = text.split(",")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 2 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not two numbers like -3,3")
    return values


def grid_shape(text: str) -> tuple[int, int]:
    """``--grid 2x2``: columns x rows."""
    columns, _, rows = text.lower().partition("x")
    if not (columns.isdigit() and rows.isdigit()) or int(columns) < 1 or int(rows) < 1 or int(columns) * int(rows) > 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a grid like 2x2 (columns x rows, at most 256 cells)")
    return int(columns), int(rows)


def bit_rate(text: str) -> int:
    """``--bitrate 8M`` / ``800k`` / ``2000000``: bits per second."""
    number, unit = (text[:-1], text[-1].lower()) if text[-1:].lower() in ("k", "m") else (text, "")
    try:
        value = float(number) * {"": 1, "k": 1e3, "m": 1e6}[unit]
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 1e4 or value > 1e9:
        raise argparse.ArgumentTypeError(f"{text!r} is not a bit rate like 8M or 800k (10k to 1000M)")
    return int(value)


def point_pairs(text: str) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """``--points "x1,y1:x2,y2;..."``."""
    try:
        return parse_point_pairs(text)
    except RangeSyntaxError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
