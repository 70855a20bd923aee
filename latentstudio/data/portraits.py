"""Procedural cartoon portraits whose generating factors are known exactly.

A GAN trained on these images can be checked for disentanglement against ground truth: each
image is drawn from nine independently sampled factors (``FACTORS``), and nothing else varies
(clothes, eye colour and light are fixed). Faces are built from polygons in unit coordinates,
so head tilt is an exact rotation of the points rather than a resampling of pixels, drawn at 4x
the output size and box-downsampled for anti-aliasing.

``sample_factors`` draws a ``[n, len(FACTORS)]`` uniform matrix row by row, so for one seed a
longer data set starts with the images of a shorter one.
"""
from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 4


@dataclass(frozen=True)
class Factor:
    """One generating factor: sampled uniformly in ``[low, high]`` (binary: 0 or 1, p = 0.5)."""

    name: str
    low: float
    high: float
    description: str
    binary: bool = False


FACTORS: tuple[Factor, ...] = (
    Factor("face_shape", 0.0, 1.0, "0 round and wide .. 1 long with a narrow chin"),
    Factor("skin_tone", 0.0, 1.0, "0 very light .. 1 very dark"),
    Factor("hair_color", 0.0, 1.0, "black, dark brown, brown, auburn, ginger, blonde, platinum (0..1)"),
    Factor("hair_length", 0.0, 1.0, "0 cropped .. 1 shoulder length"),
    Factor("eye_size", 0.0, 1.0, "0 small .. 1 large"),
    Factor("mouth_curve", -1.0, 1.0, "-1 frown .. 0 neutral .. 1 smile"),
    Factor("head_tilt", -20.0, 20.0, "degrees; positive tilts the head clockwise on the image"),
    Factor("glasses", 0.0, 1.0, "1 wears round glasses, 0 does not", binary=True),
    Factor("background_hue", 0.0, 1.0, "hue of the pastel background (0 and 1 are both red)"),
)
FACTOR_NAMES: tuple[str, ...] = tuple(factor.name for factor in FACTORS)
FACTORS_BY_NAME: dict[str, Factor] = {factor.name: factor for factor in FACTORS}

_SKIN = np.array([(255, 226, 204), (241, 194, 160), (224, 170, 128), (190, 128, 86),
                  (141, 88, 58), (92, 58, 40)], dtype=np.float64)
_HAIR = np.array([(28, 24, 24), (64, 42, 30), (112, 70, 38), (142, 58, 30),
                  (196, 106, 48), (222, 186, 108), (236, 226, 196)], dtype=np.float64)
_SHIRT = (58, 72, 104)
_IRIS = (74, 52, 40)
_DARK = (38, 30, 30)
_LIPS = (158, 64, 66)
_FRAME = (30, 30, 36)
_PIVOT = (0.5, 0.66)  # the head tilts about the top of the neck
_STEPS16 = np.linspace(0.0, 1.0, 16)
_STEPS24 = np.linspace(0.0, 1.0, 24)
_ZOOM = 1.12  # the layout below is drawn in a unit square, then enlarged about its centre


def _to_image(degrees: float, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Affine map ``p -> p @ matrix + offset`` from layout units to pixels, tilting the head
    by ``degrees`` about the neck, then zooming about the centre."""
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    matrix = rotation.T * _ZOOM * size
    offset = ((np.array(_PIVOT) - np.array(_PIVOT) @ rotation.T - 0.5) * _ZOOM + 0.5) * size
    return matrix, offset


def sample_factors(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` independent factor draws: name -> float32 array ``[n]``."""
    uniform = rng.random((n, len(FACTORS)))  # row-major, so a prefix of rows is seed-stable
    factors: dict[str, np.ndarray] = {}
    for column, factor in enumerate(FACTORS):
        u = uniform[:, column]
        value = (u < 0.5).astype(np.float64) if factor.binary else factor.low + (factor.high - factor.low) * u
        factors[factor.name] = value.astype(np.float32)
    return factors


def factors_to_matrix(factors: Mapping[str, np.ndarray]) -> np.ndarray:
    """``float32 [n, len(FACTORS)]`` with columns in ``FACTOR_NAMES`` order."""
    return np.stack([np.asarray(factors[name], dtype=np.float32) for name in FACTOR_NAMES], axis=1)


def _palette(colors: np.ndarray, t: float) -> tuple[int, int, int]:
    stops = np.linspace(0.0, 1.0, len(colors))
    return tuple(int(round(np.interp(t, stops, colors[:, c]))) for c in range(3))


def _shade(color: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, round(c * factor))) for c in color)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


@functools.lru_cache(maxsize=64)
def _unit_arc(t0: float, t1: float, n: int) -> np.ndarray:
    """``[n, 2]`` points (cos t, sin t) for t from t0 to t1; cached, it is most of the cost."""
    t = np.linspace(t0, t1, n)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _ellipse(cx: float, cy: float, rx: float, ry: float, t0: float = 0.0, t1: float = 2 * math.pi,
             n: int = 48) -> np.ndarray:
    return _unit_arc(t0, t1, n) * (rx, ry) + (cx, cy)


@dataclass(frozen=True)
class _Layout:
    """Where everything goes, in unit coordinates before the tilt; shared with ``eye_region``."""

    cx: float
    cy: float
    half_width: float
    half_height: float
    eye_dx: float
    eye_y: float
    eye_rx: float
    eye_ry: float
    glasses_radius: float
    brow_y: float

    @classmethod
    def from_factors(cls, f: Mapping[str, float]) -> _Layout:
        shape, eye = f["face_shape"], f["eye_size"]
        half_width = 0.212 - 0.045 * shape
        half_height = 0.21 + 0.075 * shape
        cy = 0.45
        eye_rx = 0.02 + 0.026 * eye
        eye_ry = eye_rx * 0.62
        eye_y = cy + 0.005
        return cls(0.5, cy, half_width, half_height, 0.45 * half_width, eye_y, eye_rx, eye_ry,
                   0.052, eye_y - eye_ry - 0.03)


class _Painter:
    """Draws unit-coordinate shapes on the supersampled canvas, rotating head parts."""

    def __init__(self, image: Image.Image, tilt_degrees: float):
        self.draw = ImageDraw.Draw(image)
        self.scale = image.size[0]
        self.head = _to_image(tilt_degrees, self.scale)
        self.body = _to_image(0.0, self.scale)

    def _map(self, points: np.ndarray, rotate: bool) -> list[float]:
        matrix, offset = self.head if rotate else self.body
        return (np.asarray(points, dtype=np.float64).reshape(-1, 2) @ matrix + offset).ravel().tolist()

    def polygon(self, points: np.ndarray, fill, rotate: bool = True) -> None:
        self.draw.polygon(self._map(points, rotate), fill=fill)

    def stroke(self, points: np.ndarray, fill, width: float) -> None:
        """A thick polyline with round ends."""
        xy = self._map(points, True)
        pixels = max(1, round(width * _ZOOM * self.scale))
        self.draw.line(xy, fill=fill, width=pixels, joint="curve")
        for x, y in (xy[:2], xy[-2:]):
            r = pixels / 2
            self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def disc(self, centre: tuple[float, float], radius: float, fill=None, outline=None, width: float = 0) -> None:
        """A circle: rotation moves only its centre."""
        x, y = self._map(np.array(centre), True)
        r = radius * _ZOOM * self.scale
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=outline,
                          width=max(1, round(width * _ZOOM * self.scale)) if outline else 0)


def _clipped(factors: Mapping[str, float]) -> dict[str, float]:
    missing = [name for name in FACTOR_NAMES if name not in factors]
    if missing:
        raise KeyError(f"portrait factors missing: {', '.join(missing)}")
    return {f.name: float(np.clip(float(factors[f.name]), f.low, f.high)) for f in FACTORS}


def _draw_back_hair(paint: _Painter, lay: _Layout, f: Mapping[str, float], hair: tuple, hair_end: float) -> None:
    """Volume above the head, falling to ``hair_end`` beside the neck."""
    cx, a, b = lay.cx, lay.half_width, lay.half_height
    hair_rx = a + 0.045
    bottom_rx = hair_rx + 0.02 * f["hair_length"]
    back = np.concatenate([
        _ellipse(cx, lay.cy - 0.015, hair_rx, b + 0.06, math.pi, 2 * math.pi),
        _ellipse(cx + bottom_rx - 0.05, hair_end - 0.05, 0.05, 0.05, 0, 0.5 * math.pi, 8),
        _ellipse(cx - bottom_rx + 0.05, hair_end - 0.05, 0.05, 0.05, 0.5 * math.pi, math.pi, 8),
    ])
    paint.polygon(back, hair)


def _draw_body(paint: _Painter, lay: _Layout, skin: tuple) -> None:
    """Shoulders and a neck with a V neckline; the body does not tilt."""
    paint.polygon(_ellipse(0.5, 1.06, 0.44, 0.26, math.pi, 2 * math.pi), _SHIRT, rotate=False)
    neck = np.array([(0.5 - 0.065, lay.cy + 0.1), (0.5 - 0.065, 0.83), (0.5, 0.88), (0.5 + 0.065, 0.83),
                     (0.5 + 0.065, lay.cy + 0.1)])
    paint.polygon(neck, _shade(skin, 0.86), rotate=False)


def _face_half_width(lay: _Layout, taper: float, sin_t: np.ndarray) -> np.ndarray:
    """Half-width of the egg-shaped face at height ``cy + b * sin_t``; the chin narrows by ``taper``."""
    return lay.half_width * np.sqrt(1 - sin_t**2) * (1 - taper * np.clip(sin_t, 0, None) ** 2)


def _draw_face(paint: _Painter, lay: _Layout, f: Mapping[str, float], skin: tuple, taper: float) -> None:
    """Ears, the face, cheeks, nose and mouth."""
    cx, cy, a, b = lay.cx, lay.cy, lay.half_width, lay.half_height
    for side in (-1, 1):
        paint.polygon(_ellipse(cx + side * a * 0.97, cy + 0.02, 0.032, 0.05), _shade(skin, 0.92))
    circle = _unit_arc(0.0, 2 * math.pi, 72)
    chin = 1 - taper * np.clip(circle[:, 1], 0, None) ** 2
    paint.polygon(np.stack([cx + a * circle[:, 0] * chin, cy + b * circle[:, 1]], axis=1), skin)

    blush = _mix(skin, (232, 120, 120), 0.22)
    for side in (-1, 1):
        paint.disc((cx + side * 0.58 * a, cy + 0.085), 0.03, fill=blush)
    nose = _ellipse(cx, cy + 0.063, 0.018, 0.012, 0.15 * math.pi, 0.85 * math.pi, 12)
    paint.stroke(nose, _shade(skin, 0.78), 0.009)
    x = _unit_arc(math.pi, 0.0, 17)[:, 0]  # -1 .. 1, denser at the corners
    curve = f["mouth_curve"] * (0.032 * (1 - x**2) - 0.012)  # > 0: corners up, a smile
    paint.stroke(np.stack([cx + 0.055 * x, cy + 0.58 * b + curve], axis=1), _LIPS, 0.013)


def _draw_eyes(paint: _Painter, lay: _Layout, hair: tuple) -> None:
    """White, iris, pupil, glint and upper lid; brows in a darker hair colour."""
    for side in (-1, 1):
        ex, ey = lay.cx + side * lay.eye_dx, lay.eye_y
        paint.polygon(_ellipse(ex, ey, lay.eye_rx, lay.eye_ry, n=32), (250, 250, 250))
        iris = lay.eye_ry
        paint.disc((ex, ey), iris, fill=_IRIS)
        paint.disc((ex, ey), iris * 0.55, fill=(10, 10, 12))
        paint.disc((ex + iris * 0.35, ey - iris * 0.35), iris * 0.3, fill=(255, 255, 255))
        lid = _ellipse(ex, ey, lay.eye_rx * 1.05, lay.eye_ry * 1.1, math.pi, 2 * math.pi, 16)
        paint.stroke(lid, _DARK, 0.008)
        brow = _ellipse(ex, lay.brow_y + 0.012, 0.04, 0.014, 1.15 * math.pi, 1.85 * math.pi, 12)
        paint.stroke(brow, _shade(hair, 0.75), 0.012)


def _draw_front_hair(paint: _Painter, lay: _Layout, hair: tuple, hair_end: float, taper: float) -> None:
    """A cap down to the temples with a side-swept fringe, and locks beside the face that
    reach ``hair_end`` and so cover the ears as the hair grows."""
    cx, cy, a, b = lay.cx, lay.cy, lay.half_width, lay.half_height
    outer = _ellipse(cx, cy - 0.01, a + 0.03, b + 0.05, 0.96 * math.pi, 2.04 * math.pi, 40)
    hairline = np.stack([cx + (a + 0.01) * (1 - 2 * _STEPS24),  # right temple -> left temple
                         cy - 0.02 - (0.10 + 0.07 * _STEPS24) * np.sin(math.pi * _STEPS24) ** 0.5], axis=1)
    paint.polygon(np.concatenate([outer, hairline]), hair)

    lock_end = hair_end - 0.04
    y = cy - 0.07 + (lock_end - cy + 0.07) * _STEPS16
    inner = _face_half_width(lay, taper, (np.minimum(y, cy + 0.35 * b) - cy) / b) - 0.02  # hug the cheeks, then fall
    for side in (-1, 1):
        inner_edge = np.stack([cx + side * inner, y], axis=1)
        outer_edge = np.stack([np.full_like(y, cx + side * (a + 0.03)), y], axis=1)[::-1]
        tip = np.array([(cx + side * (a + 0.005), lock_end + 0.02)])
        paint.polygon(np.concatenate([inner_edge, tip, outer_edge]), hair)


def _draw_glasses(paint: _Painter, lay: _Layout) -> None:
    """Round frames of a fixed size, a bridge and short arms to the face edge: all inside ``eye_region``."""
    r, ey = lay.glasses_radius, lay.eye_y
    for side in (-1, 1):
        ex = lay.cx + side * lay.eye_dx
        paint.disc((ex, ey), r, outline=_FRAME, width=0.011)
        paint.stroke(np.array([(ex + side * r, ey - 0.01), (lay.cx + side * lay.half_width, ey - 0.018)]),
                     _FRAME, 0.01)
    paint.stroke(_ellipse(lay.cx, ey - 0.002, lay.eye_dx - r, 0.012, 1.1 * math.pi, 1.9 * math.pi, 10),
                 _FRAME, 0.01)


def draw_portrait(factors: Mapping[str, float], res: int = 64) -> Image.Image:
    """One RGB portrait of ``res`` x ``res`` pixels; factor values are clipped to their ranges."""
    f = _clipped(factors)
    lay = _Layout.from_factors(f)
    skin = _palette(_SKIN, f["skin_tone"])
    hair = _palette(_HAIR, f["hair_color"])
    background = tuple(round(255 * c) for c in colorsys.hsv_to_rgb(f["background_hue"] % 1.0, 0.32, 0.93))
    hair_end = lay.cy + 0.03 + (0.88 - lay.cy - 0.03) * f["hair_length"]
    taper = 0.10 + 0.16 * f["face_shape"]

    canvas = Image.new("RGB", (res * SUPERSAMPLE, res * SUPERSAMPLE), background)
    paint = _Painter(canvas, f["head_tilt"])
    _draw_back_hair(paint, lay, f, hair, hair_end)
    _draw_body(paint, lay, skin)
    _draw_face(paint, lay, f, skin, taper)
    _draw_eyes(paint, lay, hair)
    _draw_front_hair(paint, lay, hair, hair_end, taper)
    if f["glasses"] >= 0.5:
        _draw_glasses(paint, lay)
    return canvas.reduce(SUPERSAMPLE)


def eye_region(factors: Mapping[str, float], res: int = 64) -> tuple[int, int, int, int]:
    """Pixel box ``(left, top, right, bottom)`` (exclusive) holding eyes, brows and glasses."""
    f = _clipped(factors)
    lay = _Layout.from_factors(f)
    top = min(lay.brow_y - 0.02, lay.eye_y - lay.glasses_radius - 0.01)
    bottom = lay.eye_y + lay.glasses_radius + 0.01
    left, right = lay.cx - lay.half_width - 0.01, lay.cx + lay.half_width + 0.01
    corners = np.array([(left, top), (right, top), (right, bottom), (left, bottom)])
    matrix, offset = _to_image(f["head_tilt"], res)
    pixels = corners @ matrix + offset
    x0, y0 = np.floor(pixels.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(pixels.max(axis=0)).astype(int) + 1
    return max(0, x0), max(0, y0), min(res, x1), min(res, y1)


def generate(count: int, res: int = 64, seed: int = 0) -> Iterator[tuple[Image.Image, dict[str, float]]]:
    """``count`` portraits with their factors, deterministic for ``seed``."""
    factors = sample_factors(np.random.default_rng(seed), count)
    for i in range(count):
        row = {name: float(values[i]) for name, values in factors.items()}
        yield draw_portrait(row, res), row
