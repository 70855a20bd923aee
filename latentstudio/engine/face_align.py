"""Face alignment the way FFHQ was made, with a detector that ships inside its package.

FFHQ (Karras et al. 2019) crops each face with a rotated square computed from the eyes and
the mouth: the eye line becomes horizontal, the square is four eye-distances wide (or 3.6
eye-to-mouth distances, if larger) and centred a little below the eyes; the crop is
resampled to the output size and the parts outside the photo are filled by reflection,
blurred and faded to the photo's median colour. A face model trained on such crops only
reconstructs a photo cropped the same way, so projection aligns first.

Landmarks come from OpenCV's Haar cascades (``haarcascade_frontalface_default.xml`` and
``haarcascade_eye.xml``, shipped in the ``opencv-python-headless`` wheel under ``cv2.data``,
Intel License Agreement, a BSD-3-style licence; nothing is downloaded). The cascades find
faces and eyes reliably but not mouths, so the mouth is placed from the eyes with FFHQ's mean
proportions (it only moves the crop centre by a tenth of the eye-to-mouth distance). The
image is also searched at +-25 degrees, as the frontal cascade misses tilted heads. When no
face is found the caller gets the centred square (:func:`centered_box`), and the GUI lets
the person move, scale and rotate the box (:class:`CropBox`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

DETECT_SIDE = 1024  # detection runs on a copy at most this large
SEARCH_ANGLES = (0.0, 25.0, -25.0)
MOUTH_BELOW_EYES = 0.95  # FFHQ mean: eye-to-mouth distance / eye-to-eye distance
# Where the eyes sit in a Haar frontal-face box (measured on photographs), for faces whose
# eyes the eye cascade misses.
EYES_IN_FACE_BOX = ((0.30, 0.38), (0.70, 0.38))


@dataclass(frozen=True)
class CropBox:
    """A square in image pixels (x right, y down), possibly rotated.

    ``angle`` is in degrees, clockwise on screen: the direction of the box's top edge,
    from its left corner to its right one, is ``(cos angle, sin angle)``.
    """

    cx: float
    cy: float
    size: float
    angle: float = 0.0

    def __post_init__(self) -> None:
        values = (self.cx, self.cy, self.size, self.angle)
        if not all(math.isfinite(v) for v in values) or self.size <= 0:
            raise ValueError(f"a crop box needs a finite centre and angle and a positive size, not {values}")

    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        """Half-side vectors along the box's x (right) and y (down) edges."""
        a = math.radians(self.angle)
        half = self.size / 2
        return np.array([math.cos(a), math.sin(a)]) * half, np.array([-math.sin(a), math.cos(a)]) * half

    def corners(self) -> np.ndarray:
        """``[4, 2]``: top-left, bottom-left, bottom-right, top-right (Pillow's QUAD order)."""
        x, y = self.axes()
        c = np.array([self.cx, self.cy])
        return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])

    @classmethod
    def from_corners(cls, top_left, bottom_left, bottom_right, top_right) -> "CropBox":
        """The square closest to a quad (e.g. a GUI handle's four corners)."""
        tl, bl, br, tr = (np.asarray(p, dtype=np.float64) for p in (top_left, bottom_left, bottom_right, top_right))
        centre = (tl + bl + br + tr) / 4
        across = ((tr - tl) + (br - bl)) / 2
        down = ((bl - tl) + (br - tr)) / 2
        size = (np.hypot(*across) + np.hypot(*down)) / 2
        return cls(float(centre[0]), float(centre[1]), float(size), math.degrees(math.atan2(across[1], across[0])))

    def scaled(self, factor: float) -> "CropBox":
        """The same box in an image resized by ``factor``."""
        return CropBox(self.cx * factor, self.cy * factor, self.size * factor, self.angle)


@dataclass(frozen=True)
class FaceLandmarks:
    """Eye centres (image left and image right) and mouth centre, in image pixels."""

    left_eye: tuple[float, float]
    right_eye: tuple[float, float]
    mouth: tuple[float, float]
    method: str  # how they were found, for reports

    def crop_box(self) -> CropBox:
        """FFHQ's crop square for these landmarks."""
        left, right, mouth = (np.asarray(p, dtype=np.float64) for p in (self.left_eye, self.right_eye, self.mouth))
        eye_avg = (left + right) / 2
        eye_to_eye = right - left
        eye_to_mouth = mouth - eye_avg
        x = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])  # the eye line, bent to stay square to the mouth
        x /= max(np.hypot(*x), 1e-9)
        half = max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
        centre = eye_avg + eye_to_mouth * 0.1
        return CropBox(float(centre[0]), float(centre[1]), float(2 * half), math.degrees(math.atan2(x[1], x[0])))


def landmarks_from_eyes(left_eye, right_eye, method: str) -> FaceLandmarks:
    """Landmarks with the mouth placed below the eyes at FFHQ's mean proportion."""
    left, right = np.asarray(left_eye, dtype=np.float64), np.asarray(right_eye, dtype=np.float64)
    eye_to_eye = right - left
    down = np.array([-eye_to_eye[1], eye_to_eye[0]])  # the eye line turned 90 degrees clockwise (y down)
    mouth = (left + right) / 2 + MOUTH_BELOW_EYES * down
    return FaceLandmarks(tuple(left), tuple(right), tuple(mouth), method)


@dataclass(frozen=True)
class Alignment:
    """An aligned crop: ``image`` (S x S x 3 uint8), the ``box`` it came from, and how the box
    was chosen (``method``: ``"face"``, ``"face-box"``, ``"center"`` or ``"manual"``)."""

    image: np.ndarray
    box: CropBox
    method: str
    landmarks: FaceLandmarks | None = None
    message: str = ""


def centered_box(image: np.ndarray) -> CropBox:
    """The largest centred square of the photo."""
    height, width = image.shape[:2]
    return CropBox(width / 2, height / 2, float(min(height, width)))


def align_portrait(image: np.ndarray, size: int, detect: bool = True, box: CropBox | None = None) -> Alignment:
    """Crop ``image`` (H x W x 3 uint8) for a model of resolution ``size``.

    ``box`` given: that crop (``"manual"``). Otherwise, with ``detect``, FFHQ alignment from
    the detected face; without a face (or ``detect=False``) the centred square.
    """
    if box is not None:
        return Alignment(extract_crop(image, box, size), box, "manual", message="crop box set by hand")
    landmarks = detect_landmarks(image) if detect else None
    if landmarks is None:
        box = centered_box(image)
        message = "no face found: centred square crop" if detect else "alignment off: centred square crop"
        return Alignment(extract_crop(image, box, size), box, "center", message=message)
    box = landmarks.crop_box()
    method = "face" if landmarks.method.endswith("eyes") else "face-box"
    return Alignment(extract_crop(image, box, size), box, method, landmarks, f"aligned: {landmarks.method}")


# -- resampling ------------------------------------------------------------------------------
def extract_crop(image: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Resample the (rotated) square ``box`` of ``image`` to ``size x size``, FFHQ style: the
    photo is first reduced towards twice the output size (anti-aliasing), and whatever lies
    outside it is reflected, blurred and faded to the median colour."""
    if size < 1:
        raise ValueError(f"crop size must be positive, not {size}")
    picture = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    shrink = int(math.floor(box.size / size * 0.5))
    if shrink > 1:
        picture = picture.reduce(shrink)
        box = box.scaled(1.0 / shrink)
    quad = box.corners()
    border = max(int(round(box.size * 0.1)), 3)
    left, top = np.floor(quad.min(axis=0)).astype(int) - border
    right, bottom = np.ceil(quad.max(axis=0)).astype(int) + border
    inside = (max(left, 0), max(top, 0), min(right, picture.width), min(bottom, picture.height))
    if inside[2] <= inside[0] or inside[3] <= inside[1]:
        raise ValueError("the crop box lies entirely outside the photo")
    region = np.asarray(picture.crop(inside), dtype=np.float32)
    pads = (inside[0] - left, inside[1] - top, right - inside[2], bottom - inside[3])  # left, top, right, bottom
    if max(pads) > 0:
        region = _pad_blurred(region, pads, blur=box.size * 0.02)
    quad = quad - np.array([left, top])
    supersampled = Image.fromarray(np.clip(region + 0.5, 0, 255).astype(np.uint8)).transform(
        (2 * size, 2 * size), Image.Transform.QUAD, tuple(quad.flatten()), Image.Resampling.BILINEAR)
    return np.asarray(supersampled.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8).copy()


def _pad_blurred(region: np.ndarray, pads: tuple[int, int, int, int], blur: float) -> np.ndarray:
    """Reflect-pad ``region`` (H x W x 3 float) by ``pads`` (left, top, right, bottom); the
    padding is blurred and faded towards the median colour with the distance from the photo."""
    left, top, right, bottom = pads
    padded = np.pad(region, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    height, width = padded.shape[:2]
    y, x = np.ogrid[:height, :width]
    # 0 inside the photo, rising to 1 at the outer edge of each padded side.
    fade_x = np.maximum(np.where(x < left, (left - x) / max(left, 1), 0), np.where(x >= width - right, (x - (width - right) + 1) / max(right, 1), 0))
    fade_y = np.maximum(np.where(y < top, (top - y) / max(top, 1), 0), np.where(y >= height - bottom, (y - (height - bottom) + 1) / max(bottom, 1), 0))
    mask = np.maximum(fade_x, fade_y).astype(np.float32)[..., None]
    blurred = ndimage.gaussian_filter(padded, (blur, blur, 0))
    padded += (blurred - padded) * np.clip(mask * 3.0 + (mask > 0), 0.0, 1.0)
    padded += (np.median(region, axis=(0, 1)) - padded) * np.clip(mask, 0.0, 1.0)
    return padded


# -- detection -------------------------------------------------------------------------------
def detect_landmarks(image: np.ndarray) -> FaceLandmarks | None:
    """Eyes (and an estimated mouth) of the largest face, or ``None`` when no face is found
    (or OpenCV is missing). Tries the photo upright, then turned by +-25 degrees."""
    try:
        import cv2
    except ImportError:
        return None
    gray = np.asarray(Image.fromarray(np.ascontiguousarray(image[..., :3])).convert("L"))
    scale = min(1.0, DETECT_SIDE / max(gray.shape))
    if scale < 1:
        gray = cv2.resize(gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    faces_xml, eyes_xml = (cv2.data.haarcascades + name for name in ("haarcascade_frontalface_default.xml", "haarcascade_eye.xml"))
    face_cascade, eye_cascade = cv2.CascadeClassifier(faces_xml), cv2.CascadeClassifier(eyes_xml)
    if face_cascade.empty() or eye_cascade.empty():
        return None
    fallback = None
    for angle in SEARCH_ANGLES:
        rotated, to_original = _rotated(gray, angle, cv2)
        found = _find_face(rotated, face_cascade, eye_cascade)
        if found is None:
            continue
        (left, right), method = found
        left, right = (to_original(p) / scale for p in (left, right))
        landmarks = landmarks_from_eyes(left, right, method)
        if method.endswith("eyes"):
            return landmarks
        fallback = fallback or landmarks
    return fallback


def _rotated(gray: np.ndarray, angle: float, cv2):
    """``gray`` turned by ``angle`` degrees on a canvas that holds all of it, and a function
    taking a point of the turned image back to the original."""
    if angle == 0:
        return gray, lambda p: np.asarray(p, dtype=np.float64)
    height, width = gray.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(height * sin + width * cos), int(height * cos + width * sin)
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    inverse = cv2.invertAffineTransform(matrix)
    rotated = cv2.warpAffine(gray, matrix, (new_w, new_h), borderMode=cv2.BORDER_REPLICATE)
    return rotated, lambda p: inverse @ np.array([p[0], p[1], 1.0])


def _find_face(gray: np.ndarray, face_cascade, eye_cascade):
    """``((left_eye, right_eye), method)`` for the largest face in ``gray``, or ``None``."""
    min_face = max(24, int(min(gray.shape) * 0.08))
    faces = face_cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_face, min_face))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    upper = gray[y : y + int(h * 0.6), x : x + w]
    min_eye = max(6, w // 10)
    eyes = eye_cascade.detectMultiScale(upper, scaleFactor=1.05, minNeighbors=3, minSize=(min_eye, min_eye), maxSize=(w // 2, w // 2))
    pair = _best_eye_pair([(ex + ew / 2, ey + eh / 2, ew) for ex, ey, ew, eh in eyes], w)
    if pair is None:
        (lx, ly), (rx, ry) = EYES_IN_FACE_BOX
        return ((x + lx * w, y + ly * h), (x + rx * w, y + ry * h)), "opencv face box (eyes estimated)"
    (lx, ly, _), (rx, ry, _) = pair
    return ((x + lx, y + ly), (x + rx, y + ry)), "opencv face and eyes"


def _best_eye_pair(eyes: list[tuple[float, float, float]], face_width: float):
    """The two detections most like a pair of eyes: one in each half of the face, about a
    third to two thirds of the face apart, nearly level, of similar size."""
    best, best_score = None, math.inf
    for i, a in enumerate(eyes):
        for b in eyes[i + 1 :]:
            left, right = (a, b) if a[0] < b[0] else (b, a)
            dx, dy = right[0] - left[0], right[1] - left[1]
            if not (left[0] < face_width / 2 < right[0] and 0.25 * face_width < dx < 0.7 * face_width and abs(dy) < 0.35 * dx):
                continue
            score = abs(dy) / dx + abs(left[2] - right[2]) / max(left[2], right[2]) + abs(dx / face_width - 0.45)
            if score < best_score:
                best, best_score = (left, right), score
    return best
