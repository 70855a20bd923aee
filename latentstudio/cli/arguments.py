"""argparse ``type=`` adapters for the engine's parsers: their errors become usage messages."""
from __future__ import annotations

import argparse

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


def point_pairs(text: str) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """``--points "x1,y1:x2,y2;..."``."""
    try:
        return parse_point_pairs(text)
    except RangeSyntaxError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
