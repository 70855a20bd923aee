"""Reading a photograph for projection: any common file, as an upright 8-bit RGB array.

People bring phone photos (EXIF-rotated JPEGs), scans (16-bit TIFF or PNG, grayscale),
cut-outs with transparency and 8000 x 6000 camera originals. Each becomes an ``H x W x 3``
uint8 array the right way up, no side longer than ``max_side`` (JPEGs are decoded at reduced
size straight away, so a huge file costs little), and anything unreadable is one
:class:`PhotoError` line naming the file: a folder or a named pipe, more than
:data:`MAX_BYTES` bytes or :data:`MAX_PIXELS` pixels (a decompression bomb), a truncated or
damaged file, a format other than JPEG, PNG, WebP, BMP, TIFF and GIF.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps

from latentstudio.untrusted import describe, prefixed, read_image

MAX_SIDE = 4096  # enough for a 1024 px face crop from any ordinary portrait
MAX_PIXELS = 1 << 26  # 8192 x 8192 decoded (JPEGs count at their draft scale): more is refused as a bomb
MAX_BYTES = MAX_PIXELS * 8 + (1 << 20)  # an uncompressed 16-bit RGBA TIFF of MAX_PIXELS, the largest photo there is
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
ALPHA_BACKGROUND = (255, 255, 255)  # transparent parts become white, as in a print


class PhotoError(ValueError):
    """A photo cannot be used (missing, not an image, truncated, absurdly large)."""


def read_photo(path: str | os.PathLike, max_side: int = MAX_SIDE) -> np.ndarray:
    """The photo at ``path`` as ``H x W x 3`` uint8, EXIF orientation applied; one
    :class:`PhotoError` line naming the file for anything else (:func:`read_image`)."""
    picture = read_image(path, MAX_BYTES, MAX_PIXELS, prefixed(PhotoError), "photo", draft=(max_side, max_side))
    try:
        with picture:
            return photo_array(picture, max_side)
    except PhotoError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged EXIF block, an unsupported mode
        raise PhotoError(f"{os.fsdecode(path)}: not a readable photo: cannot be read as an image ({describe(error)})") from None


def photo_array(picture: Image.Image | np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """An opened image (or an array) as upright ``H x W x 3`` uint8, at most ``max_side``."""
    if isinstance(picture, np.ndarray):
        picture = _array_to_image(picture)
    picture = ImageOps.exif_transpose(picture)
    rgb = _to_rgb8(picture)
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).copy()


def _to_rgb8(picture: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB: high bit depths rescaled (not clipped), alpha flattened."""
    mode = picture.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(picture, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        if mode == "F" and values.max(initial=0) <= 1.0:
            top = 1.0
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode == "P":
        picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        picture = picture.convert("RGBA")
    if picture.mode == "RGBA":
        background = Image.new("RGB", picture.size, ALPHA_BACKGROUND)
        background.paste(picture, mask=picture.getchannel("A"))
        return background
    return picture.convert("RGB")


def _array_to_image(array: np.ndarray) -> Image.Image:
    """H x W, H x W x 1/3/4 arrays (uint8, uint16 or float in [0, 1]) -> a Pillow image."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)) or min(array.shape[:2]) < 1:
        raise PhotoError(f"an image array must be H x W or H x W x 1/3/4, not {array.shape}")
    if array.dtype == np.uint16:
        array = (array.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise PhotoError("the image array holds NaN or infinite values")
        array = (np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise PhotoError(f"image arrays must be uint8, uint16 or float, not {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))
