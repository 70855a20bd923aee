"""Reading photos: EXIF orientation, grayscale, alpha, 16-bit, huge files and clear errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from latentstudio.engine.photo import PhotoError, photo_array, read_photo


def gradient(width: int = 60, height: int = 40) -> np.ndarray:
    """A colour ramp whose orientation is visible: red grows to the right, green downwards."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return np.stack([x, y, np.full_like(x, 80)], axis=-1).astype(np.uint8)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": what phones write for a portrait shot
    Image.fromarray(gradient()).save(path, exif=exif, quality=95)
    photo = read_photo(path)
    assert photo.shape == (60, 40, 3)  # upright: the 60 x 40 landscape pixels are shown turned
    assert photo[0, -1, 0] < 40 and photo[-1, -1, 0] > 200  # red now grows downwards on the right


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "I", "F", "CMYK", "1"])
def test_every_mode_becomes_8_bit_rgb(tmp_path, mode):
    base = Image.fromarray(gradient())
    if mode == "I;16":
        picture = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
    elif mode == "F":
        picture = Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) / 255.0)
    else:
        picture = base.convert(mode)
    suffix = ".tiff" if mode in ("I;16", "I", "F", "CMYK") else ".png"
    path = tmp_path / f"image{suffix}"
    picture.save(path)
    photo = read_photo(path)
    assert photo.shape == (40, 60, 3) and photo.dtype == np.uint8
    if mode in ("I;16", "F", "L"):  # high bit depths are rescaled, not clipped to white
        assert abs(int(photo[20, 30, 0]) - int(np.asarray(base.convert("L"))[20, 30])) <= 2


def test_alpha_is_flattened_on_white_and_16_bit_arrays_are_scaled():
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
    photo = photo_array(rgba)
    assert photo[0, 0].tolist() == [255, 0, 0] and photo[7, 0].tolist() == [255, 255, 255]
    assert photo_array(np.full((4, 4, 3), 65535, dtype=np.uint16))[0, 0].tolist() == [255, 255, 255]
    with pytest.raises(PhotoError):
        photo_array(np.full((4, 4), np.nan, dtype=np.float32))
    with pytest.raises(PhotoError):
        photo_array(np.zeros((4, 4, 2), dtype=np.uint8))


def test_huge_photos_are_decoded_small(tmp_path):
    path = tmp_path / "camera.jpg"
    Image.new("RGB", (8000, 6000), (120, 60, 30)).save(path, quality=70)
    photo = read_photo(path, max_side=1024)
    assert max(photo.shape[:2]) <= 1024 and photo.shape[1] > photo.shape[0]
    assert abs(int(photo[100, 100, 0]) - 120) < 4


def test_unreadable_files_are_one_line_errors(tmp_path):
    truncated = tmp_path / "cut.jpg"
    Image.fromarray(gradient(400, 300)).save(tmp_path / "whole.jpg")
    truncated.write_bytes((tmp_path / "whole.jpg").read_bytes()[:600])
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    for path, words in ((tmp_path / "missing.jpg", "no such file"), (tmp_path, "a folder"),
                        (tmp_path / "text.jpg", "not an image"), (tmp_path / "empty.png", "not an image"),
                        (truncated, "cannot be read")):
        with pytest.raises(PhotoError) as error:
            read_photo(path)
        assert words in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)
