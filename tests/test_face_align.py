"""FFHQ-style alignment: known eyes land where FFHQ puts them, rotation and shift are undone,
the detector finds a real face, and the fallbacks are a centred square."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from latentstudio.engine.face_align import (
    CropBox,
    align_portrait,
    centered_box,
    detect_landmarks,
    extract_crop,
    landmarks_from_eyes,
)

SIZE = 128


def synthetic_portrait(eyes, canvas=(420, 360)) -> np.ndarray:
    """A grey face with a red left eye and a blue right eye at known points."""
    image = Image.new("RGB", canvas, (90, 110, 90))
    draw = ImageDraw.Draw(image)
    (lx, ly), (rx, ry) = eyes
    cx, cy, d = (lx + rx) / 2, (ly + ry) / 2, math.hypot(rx - lx, ry - ly)
    draw.ellipse((cx - d, cy - d, cx + d, cy + 1.6 * d), fill=(200, 170, 150))
    for (x, y), colour in (((lx, ly), (255, 0, 0)), ((rx, ry), (0, 0, 255))):
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=colour)
    return np.asarray(image)


def centroid(image: np.ndarray, channel: int) -> np.ndarray:
    others = [c for c in range(3) if c != channel]
    mask = (image[..., channel] > 160) & (image[..., others[0]] < 90) & (image[..., others[1]] < 90)
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def turn(points, angle_degrees, centre, shift):
    """Points as they move when the picture is turned about ``centre`` (clockwise on screen
    for a positive angle, y down) and then shifted."""
    a = math.radians(angle_degrees)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return [tuple(rotation @ (np.asarray(p) - centre) + centre + shift) for p in points]


def test_known_eyes_land_where_ffhq_puts_them_after_rotation_and_shift():
    eyes = [(170.0, 150.0), (250.0, 150.0)]
    upright = align_portrait(synthetic_portrait(eyes), SIZE, box=landmarks_from_eyes(*eyes, "given").crop_box())
    expected_left, expected_right = centroid(upright.image, 0), centroid(upright.image, 2)
    # FFHQ geometry: eyes a quarter of the crop apart, centred, a little above the middle.
    assert np.allclose(expected_left, [SIZE * 0.375, SIZE * 0.476], atol=1.5)
    assert np.allclose(expected_right, [SIZE * 0.625, SIZE * 0.476], atol=1.5)

    moved = turn(eyes, 23.0, np.array([210.0, 150.0]), np.array([-30.0, 40.0]))
    picture = synthetic_portrait(moved)
    landmarks = landmarks_from_eyes(*moved, "given")
    assert landmarks.crop_box().angle == pytest.approx(23.0, abs=1e-6)
    aligned = align_portrait(picture, SIZE, box=landmarks.crop_box())
    assert np.allclose(centroid(aligned.image, 0), expected_left, atol=1.5)
    assert np.allclose(centroid(aligned.image, 2), expected_right, atol=1.5)


def test_crop_box_corners_round_trip_and_validate():
    box = CropBox(100.0, 80.0, 60.0, -35.0)
    again = CropBox.from_corners(*box.corners())
    assert (again.cx, again.cy, again.size, again.angle) == pytest.approx((100, 80, 60, -35))
    with pytest.raises(ValueError):
        CropBox(0, 0, 0)
    with pytest.raises(ValueError):
        CropBox(float("nan"), 0, 10)


def test_padding_outside_the_photo_is_blurred_reflection_not_black():
    photo = np.zeros((100, 100, 3), dtype=np.uint8)
    photo[:, :, 1] = 200
    crop = extract_crop(photo, CropBox(10, 10, 80, 0), 64)  # most of the box is outside the photo
    assert crop.shape == (64, 64, 3) and crop[..., 1].min() > 150
    with pytest.raises(ValueError):
        extract_crop(photo, CropBox(1000, 1000, 20), 64)


def test_fallbacks_are_the_centred_square():
    photo = np.full((300, 500, 3), 128, dtype=np.uint8)
    assert centered_box(photo) == CropBox(250, 150, 300, 0)
    no_face = align_portrait(photo, 32)
    assert no_face.method == "center" and no_face.image.shape == (32, 32, 3) and "no face" in no_face.message
    off = align_portrait(photo, 32, detect=False)
    assert off.method == "center" and "off" in off.message


def astronaut() -> np.ndarray:
    """Eileen Collins, NASA (public domain), as scikit-image's wheel ships it."""
    skimage = pytest.importorskip("skimage")
    from latentstudio.engine.photo import read_photo

    return read_photo(Path(skimage.__file__).parent / "data" / "astronaut.png")


def test_detector_finds_the_eyes_of_a_real_photo_when_turned_and_shifted():
    photo = astronaut()
    found = detect_landmarks(photo)
    assert found is not None and found.method == "opencv face and eyes"
    # The pupils of this photo are at about (204, 101) and (246, 102) (read off a magnified crop).
    assert np.allclose(found.left_eye, (204, 101), atol=5) and np.allclose(found.right_eye, (246, 102), atol=5)

    angle, shift = 20.0, (40, -25)
    turned = Image.fromarray(photo).rotate(-angle, resample=Image.Resampling.BILINEAR, center=(256, 256),
                                           translate=shift, fillcolor=(0, 0, 0))
    again = detect_landmarks(np.asarray(turned))
    assert again is not None
    expected = turn([found.left_eye, found.right_eye], angle, np.array([256.0, 256.0]), np.array(shift))
    assert np.allclose(again.left_eye, expected[0], atol=8) and np.allclose(again.right_eye, expected[1], atol=8)
    assert again.crop_box().angle == pytest.approx(found.crop_box().angle + angle, abs=6)
