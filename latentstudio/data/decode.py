"""Bytes of one PNG / JPEG / WebP file -> a square uint8 CHW array at the training resolution.

Every pixel format Pillow can hand us ends up as 8-bit L or RGB: 16-bit grey is rescaled (not
clipped, which would turn most of a 16-bit image white), transparency is composited over
white (the colour under fully transparent pixels is undefined, often black junk), palettes and
CMYK are expanded, and the EXIF orientation of camera JPEGs is applied.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})
TRANSPARENT_BACKGROUND = (255, 255, 255)
MAX_PIXELS = 1 << 26  # 8192 x 8192: what one image may decode to (JPEGs count at their draft scale)
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def to_channels(image: Image.Image, channels: int) -> Image.Image:
    """Convert any Pillow mode to ``L`` (``channels=1``) or ``RGB`` (``channels=3``)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, not {channels}")
    if image.mode in _WIDE_GREY_MODES:
        wide = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
        image = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")
    elif image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, TRANSPARENT_BACKGROUND + (255,))
        image = Image.alpha_composite(background, rgba).convert("RGB")
    target = "L" if channels == 1 else "RGB"
    return image if image.mode == target else image.convert(target)


def center_crop_resize(image: Image.Image, resolution: int) -> Image.Image:
    """The centred square of side ``min(width, height)``, resampled to ``resolution``.

    Cropped first (resizing with ``box=`` would let the filter reach outside the square),
    then Lanczos with Pillow's ``reducing_gap``, so that large downscales first take a cheap
    exact box (area) reduction and only the last factor of ~3 goes through Lanczos.
    """
    width, height = image.size
    side = min(width, height)
    if (width, height) != (side, side):
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if side == resolution:
        return image
    return image.resize((resolution, resolution), Image.Resampling.LANCZOS, reducing_gap=3.0)


def open_image(data: bytes) -> Image.Image:
    """Pillow's image for ``data``; its decompression-bomb warning is silenced, since
    :func:`check_pixels` refuses such images with a reason before anything is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def check_pixels(image: Image.Image) -> None:
    """Refuse decompression bombs before decoding: a few kilobytes can declare gigapixels."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ValueError(f"{width}x{height} pixels, more than {MAX_PIXELS:,} (a decompression bomb or a huge image)")


def decode_image(data: bytes, resolution: int, channels: int = 3) -> np.ndarray:
    """Decode, convert, crop and resize; returns ``uint8 [channels, resolution, resolution]``.

    Raises whatever Pillow raises for a broken or truncated file (``OSError``, ``SyntaxError``,
    ``ValueError``...), and ``ValueError`` for more than :data:`MAX_PIXELS` pixels; callers
    decide whether that skips the file.
    """
    with open_image(data) as image:
        image.draft(None, (resolution, resolution))  # JPEG: decode at 1/2..1/8 scale when big
        check_pixels(image)
        image = ImageOps.exif_transpose(image)
        image = center_crop_resize(to_channels(image, channels), resolution)
        pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        return pixels[np.newaxis].copy()  # (1, R, R)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (H, W, C) -> (C, H, W)


def verify_image(data: bytes) -> None:
    """Cheap structural check (header, and chunk CRCs for PNG) without decoding pixels."""
    with open_image(data) as image:
        check_pixels(image)
        image.verify()
