"""Writing images: PNGs that carry their recipe, grids, and reading a recipe back from a PNG.

The recipe goes into an iTXt chunk (UTF-8, keyword ``latentstudio-recipe``), which every PNG
reader ignores and Pillow round-trips, so an exported image is also its own project file.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from latentstudio.atomic import atomic_path
from latentstudio.engine.recipe import EditRecipe, RecipeError
from latentstudio.untrusted import open_regular_file, prefixed

RECIPE_KEY = "latentstudio-recipe"
MODEL_KEY = "latentstudio-model"


def to_pil(image: np.ndarray) -> Image.Image:
    """H x W x C uint8 (C = 1, 3 or 4) -> a PIL image of the matching mode."""
    if image.ndim == 3 and image.shape[-1] == 1:
        return Image.fromarray(image[..., 0], mode="L")
    return Image.fromarray(np.ascontiguousarray(image))


def upscale(image: Image.Image, factor: int, smooth: bool = True) -> Image.Image:
    """Upscaling by an integer factor (1 returns the image unchanged): Lanczos, or with
    ``smooth=False`` nearest neighbour (each pixel an exact ``factor`` x ``factor`` block)."""
    if factor == 1:
        return image
    if factor not in (2, 4, 8):
        raise ValueError(f"upscale factor must be 1, 2, 4 or 8, not {factor}")
    resample = Image.Resampling.LANCZOS if smooth else Image.Resampling.NEAREST
    return image.resize((image.width * factor, image.height * factor), resample)


def save_png(
    path: str | os.PathLike,
    image: np.ndarray | Image.Image,
    recipe: EditRecipe | None = None,
    model: str | None = None,
    scale: int = 1,
    smooth: bool = True,
) -> Path:
    """Save a PNG with the recipe (and model path) embedded as iTXt chunks, upscaled ``scale``
    times (see :func:`upscale`).

    The file is written atomically: a reader that polls it (the Training tab watching a run's
    sample grids) sees the previous picture or the new one, never half of one.
    """
    path = Path(path)
    picture = image if isinstance(image, Image.Image) else to_pil(image)
    info = PngImagePlugin.PngInfo()
    if recipe is not None:
        info.add_itxt(RECIPE_KEY, recipe.to_json())
    if model is not None:
        info.add_itxt(MODEL_KEY, str(model))
    with atomic_path(path) as tmp:
        upscale(picture, scale, smooth).save(tmp, format="PNG", pnginfo=info)
    return path


def read_png_recipe(path: str | os.PathLike) -> tuple[EditRecipe, str | None]:
    """The recipe (and model path, if recorded) embedded in a latentstudio PNG.

    Only the chunks before the pixels are read (where :func:`save_png` puts them): a
    decompression bomb is never decoded, and Pillow caps the size of text chunks. Raises
    :class:`RecipeError` when the file is not a PNG or carries no recipe.
    """
    with open_regular_file(path, prefixed(RecipeError), "PNG image") as (stream, _):
        try:
            with warnings.catch_warnings():  # pixels are never decoded here: a bomb cannot go off
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                picture = Image.open(stream, formats=["PNG"])
            with picture:
                text = {key: value for key, value in picture.info.items() if key in (RECIPE_KEY, MODEL_KEY)}
        except Exception as error:  # noqa: BLE001 - Pillow raises many types for hostile files
            detail = " ".join(str(error).split())[:120] or type(error).__name__
            raise RecipeError(f"{path}: not a readable PNG image ({detail})") from None
    if not isinstance(text.get(RECIPE_KEY), str):
        raise RecipeError(f"{path}: this image carries no latentstudio recipe")
    model = text.get(MODEL_KEY)
    try:
        return EditRecipe.from_json(text[RECIPE_KEY]), model if isinstance(model, str) else None
    except RecipeError as error:
        raise RecipeError(f"{path}: {error}") from None


def make_grid(images: Sequence[np.ndarray], columns: int | None = None, padding: int = 0, background: int = 0) -> np.ndarray:
    """Tile equally sized H x W x C images row by row into one image."""
    if not images:
        raise ValueError("no images to tile")
    height, width, channels = images[0].shape
    columns = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    grid = np.full(
        (rows * height + (rows - 1) * padding, columns * width + (columns - 1) * padding, channels),
        background,
        dtype=np.uint8,
    )
    for index, image in enumerate(images):
        if image.shape != (height, width, channels):
            raise ValueError(f"image {index} has shape {image.shape}, expected {(height, width, channels)}")
        row, column = divmod(index, columns)
        top, left = row * (height + padding), column * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid
