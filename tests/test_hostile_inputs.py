"""The other inputs a stranger may hand over (recipes in JSON and PNG, direction .npz files,
data-set images and side files, training state files) are refused with one clear line, before
anything large is read, inflated or decoded."""
from __future__ import annotations

import argparse
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

from latentstudio.data import ImageDataset
from latentstudio.data.sources import MAX_MEMBER_BYTES
from latentstudio.engine.directions import DirectionSet, DirectionSetError
from latentstudio.engine.export import RECIPE_KEY, read_png_recipe, save_png
from latentstudio.engine.recipe import MAX_RECIPE_CHARS, EditRecipe, RecipeError
from latentstudio.train.checkpoints import STATE_FORMAT, CheckpointError, load_state


def one_line(error: BaseException, path: Path, *phrases: str) -> None:
    message = str(error)
    assert message.startswith(str(path)) and "\n" not in message and len(message) < 400, message
    for phrase in phrases:
        assert phrase in message, message


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def inflated_size(archive: Path, size: int) -> Path:
    """Make every entry of a zip claim ``size`` uncompressed bytes (a forged zip bomb)."""
    data = bytearray(archive.read_bytes())
    start = 0
    while (start := data.find(b"PK\x01\x02", start)) >= 0:
        data[start + 24:start + 28] = struct.pack("<I", size)
        start += 4
    archive.write_bytes(bytes(data))
    return archive


# -- recipes -------------------------------------------------------------------------------------
def test_recipe_files_are_capped_in_size_and_depth(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    big = tmp_path / "big.json"
    big.write_text('{"version": 1, "seed": 1, "pad": "' + "x" * MAX_RECIPE_CHARS + '"}')
    for path, phrase in ((deep, "nested 50000 levels deep"), (big, "more than a recipe file can be"),
                         (fifo(tmp_path / "pipe.json"), "named pipe"), (tmp_path, "a folder")):
        with pytest.raises(RecipeError) as caught:
            EditRecipe.from_file(path)
        one_line(caught.value, path, phrase)
    good = tmp_path / "good.json"
    good.write_text(EditRecipe(seed=5).to_json())
    assert EditRecipe.from_file(good).seed == 5


def test_png_recipes_never_decode_pixels_and_cap_the_text(tmp_path):
    bomb = tmp_path / "bomb.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt(RECIPE_KEY, EditRecipe(seed=3).to_json())
    Image.new("1", (12_000, 12_000)).save(bomb, pnginfo=info)  # 144 megapixels, about 20 kB
    recipe, _ = read_png_recipe(bomb)
    assert recipe.seed == 3  # read from the chunks before the pixels, which are never decoded

    deep = tmp_path / "deep.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt(RECIPE_KEY, "[" * 10_000 + "]" * 10_000)
    Image.new("RGB", (4, 4)).save(deep, pnginfo=info)
    huge_text = tmp_path / "huge_text.png"
    info = PngImagePlugin.PngInfo()
    info.add_itxt(RECIPE_KEY, "x" * (32 << 20), zip=True)  # 32 MB of text in a few kB
    Image.new("RGB", (4, 4)).save(huge_text, pnginfo=info)
    giant = tmp_path / "giant.png"
    Image.new("1", (20_000, 20_000)).save(giant)
    for path, phrase in ((deep, "nested"), (huge_text, "not a readable PNG"), (giant, "not a readable PNG"),
                         (fifo(tmp_path / "pipe.png"), "named pipe")):
        with pytest.raises(RecipeError) as caught:
            read_png_recipe(path)
        one_line(caught.value, path, phrase)
    plain = save_png(tmp_path / "plain.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(RecipeError, match="carries no latentstudio recipe"):
        read_png_recipe(plain)


# -- direction sets ----------------------------------------------------------------------------------
def _direction_file(tmp_path: Path, **arrays) -> Path:
    path = tmp_path / f"set{len(list(tmp_path.iterdir()))}.npz"
    np.savez(path, format=np.array("latentstudio-directions"), version=np.array(1), **arrays)
    return path


def test_direction_files_are_checked_before_anything_is_inflated(tmp_path):
    bomb = inflated_size(_direction_file(tmp_path, vectors=np.zeros((2, 4), np.float32)), 0xFFFFFFF0)
    header_lies = tmp_path / "lies.npz"  # a header declaring 2**40 floats, then 16 bytes of them
    header = {**np.lib.format.header_data_from_array_1_0(np.zeros(4, np.float32)), "shape": (1 << 40,)}
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    with zipfile.ZipFile(header_lies, "w") as archive:
        archive.writestr("vectors.npy", stream.getvalue() + np.zeros(4, np.float32).tobytes())
    objects = tmp_path / "objects.npz"
    np.savez(objects, names=np.array([object()], dtype=object))
    for path, phrase in ((bomb, "inflates to more than"), (header_lies, "declares shape [1099511627776]"),
                         (objects, "holds Python objects"), (fifo(tmp_path / "pipe.npz"), "named pipe")):
        with pytest.raises(DirectionSetError) as caught:
            DirectionSet.load(path)
        one_line(caught.value, path, phrase)


# -- data sets -------------------------------------------------------------------------------------
def test_data_sets_skip_bombs_and_oversized_members(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        Image.new("RGB", (16, 16), (index * 60, 0, 0)).save(folder / f"ok{index}.png")
    Image.new("1", (10_000, 10_000)).save(folder / "bomb.png")  # 100 megapixels: over the cap
    with open(folder / "huge.png", "wb") as handle:
        handle.truncate(MAX_MEMBER_BYTES + 1)  # sparse
    os.mkfifo(folder / "pipe.png")  # not a regular file: never listed, never opened
    dataset = ImageDataset(folder, 8)
    assert len(dataset) == 3
    reasons = {s.name: s.reason for s in dataset.skipped}
    assert set(reasons) == {"bomb.png", "huge.png"}
    assert "pixels" in reasons["bomb.png"] and "more than" in reasons["huge.png"]

    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for index in range(3):
            out.write(folder / f"ok{index}.png", f"ok{index}.png")
    inflated_size(archive, 0xFFFFFFF0)
    with pytest.raises(Exception) as caught:
        ImageDataset(archive, 8)
    assert "inflates to" in str(caught.value) and "\n" not in str(caught.value)


# -- training state ----------------------------------------------------------------------------------
def test_training_state_files_are_read_as_data(tmp_path):
    good = tmp_path / "training-state-000001.pt"
    torch.save({"format": STATE_FORMAT, "version": 1, "pl_mean": torch.zeros([]), "step": 1}, good)
    assert load_state(good)["step"] == 1
    namespace = tmp_path / "namespace.pt"
    torch.save({"format": STATE_FORMAT, "version": 1, "args": argparse.Namespace(lr=1)}, namespace)
    nan = tmp_path / "nan.pt"
    torch.save({"format": STATE_FORMAT, "version": 1, "opt": {"state": {0: {"exp_avg": torch.tensor([float("nan")])}}}}, nan)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    for path, phrase in ((namespace, "argparse.Namespace"), (nan, "NaN or Inf values (opt.state.0.exp_avg)"),
                         (truncated, "unreadable training state"), (fifo(tmp_path / "pipe.pt"), "named pipe")):
        with pytest.raises(CheckpointError) as caught:
            load_state(path)
        one_line(caught.value, path, phrase)
