"""Video writers that take frames one at a time: MP4 (H.264), GIF, WebP, a PNG sequence.

Every writer writes to a temporary name next to its target and :meth:`~VideoWriter.close`
publishes the finished file under its name, so a cancelled export (:meth:`~VideoWriter.abort`)
leaves nothing behind and never half-overwrites an older video; closing early (Ctrl+C)
publishes a valid, shorter video. The animation is stored with the video so it can be
reopened and edited: in the MP4's metadata, and next to GIF / WebP files and inside PNG
folders as ``.json`` (:func:`read_video_animation` finds it either way).

- **MP4**: H.264 in yuv420p (what every player opens), through PyAV, whose wheels bundle
  their own FFmpeg build (nothing from the system, nothing downloaded). Quality by CRF
  (default 15: at 64 px, 4:2:0 chroma costs about 1 dB, the encoder another 2-3) or a
  bit rate. Frames stream to the encoder: memory is flat however long the video is.
- **GIF**: one global palette made from sample frames (the keyframes), every frame mapped to
  it with Floyd-Steinberg dithering, so smooth gradients do not band and the palette does not
  flicker from frame to frame. Pillow writes GIFs whole: frames are kept as palette indices
  (one byte a pixel) until :meth:`close`.
- **WebP**: lossy animated WebP (Pillow), frames kept until :meth:`close` (three bytes a pixel).
- **PNG sequence**: ``frame00000.png`` ... in a folder, written as they come.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from latentstudio.atomic import current_umask, publish
from latentstudio.engine.animation import MAX_FILE_BYTES, Animation, AnimationError, animation_json
from latentstudio.engine.export import to_pil, upscale
from latentstudio.untrusted import describe, open_regular_file, prefixed, read_regular_file

METADATA_KEY = "latentstudio-animation"
MODEL_METADATA_KEY = "latentstudio-model"
DEFAULT_CRF = 15
SIDECAR_SUFFIX = ".json"  # walk.gif -> walk.gif.json
SEQUENCE_SIDECAR = "animation.json"
SEQUENCE_PATTERN = "frame{:05d}.png"
KEPT_FRAMES_LIMIT = 4 * 2**30  # bytes a GIF / WebP may hold before writing: beyond it, use MP4
FORMATS = {".mp4": "mp4", ".gif": "gif", ".webp": "webp"}


class VideoError(OSError):
    """A video cannot be written (unwritable path, unknown format, bad settings)."""


def video_format(path: str | os.PathLike) -> str:
    """``mp4``, ``gif``, ``webp`` from the extension, or ``png`` for a folder (no extension)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if suffix == "" or path.is_dir():
        return "png"
    raise VideoError(f"{path}: unknown video format {suffix!r}; use .mp4, .gif, .webp or a folder for PNG frames")


def _even(value: int) -> int:
    """yuv420p needs even sizes: an odd one gets one black edge row / column."""
    return value + (value % 2)


def _check_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VideoError(f"cannot write {path}: {error.strerror or error}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VideoError(f"cannot write {path}: the folder {parent} is not writable")
    if path.exists() and path.is_dir() and video_format(path) != "png":
        raise VideoError(f"cannot write {path}: it is a folder")


class VideoWriter:
    """Frames in, a published file out. Subclasses implement ``_write``, ``_finish``."""

    format = ""

    def __init__(self, path: str | os.PathLike, fps: float, scale: int = 1, animation: Animation | None = None,
                 model_path: str | None = None):
        self.path = Path(path)
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 240):
            raise VideoError(f"fps must be in (0, 240], not {fps}")
        if scale not in (1, 2, 4, 8):
            raise VideoError(f"scale must be 1, 2, 4 or 8, not {scale}")
        self.fps = float(fps)
        self.scale = scale
        self.animation = animation
        self.model_path = model_path
        self.frames_written = 0
        self.closed = False
        _check_parent(self.path)

    def _picture(self, image: np.ndarray) -> Image.Image:
        picture = to_pil(image)
        if picture.mode != "RGB":
            picture = picture.convert("RGB")
        return upscale(picture, self.scale)

    def write(self, image: np.ndarray) -> None:
        """Add one frame (``H x W x C`` uint8, the same size every time)."""
        if self.closed:
            raise VideoError(f"{self.path}: the writer is closed")
        self._write(self._picture(image))
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file and publish it under its name (also with fewer frames than planned)."""
        if self.closed:
            return self.path
        self.closed = True
        if self.frames_written == 0:
            self._discard()
            raise VideoError(f"{self.path}: no frames were written")
        try:
            self._finish()
        except BaseException:
            self._discard()
            raise
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; the target is left as it was."""
        if not self.closed:
            self.closed = True
            self._discard()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None or issubclass(kind, KeyboardInterrupt):
            if self.frames_written:
                self.close()
            else:
                self.abort()
        else:
            self.abort()

    def _sidecar_text(self) -> str | None:
        if self.animation is None:
            return None
        data = self.animation.to_dict()
        if self.model_path is not None:
            data = {**data, "model_path": self.model_path}
        return json.dumps(data)

    # -- for subclasses ------------------------------------------------------------------
    def _write(self, picture: Image.Image) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _discard(self) -> None:
        raise NotImplementedError


class _SingleFileWriter(VideoWriter):
    """A writer of one file, built under a temporary name next to the target."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".part" + self.path.suffix, dir=self.path.parent)
        except OSError as error:
            raise VideoError(f"cannot write {self.path}: {error.strerror or error}") from None
        os.close(fd)
        self.tmp = Path(tmp)

    def _publish(self) -> None:
        publish(self.tmp, self.path)
        sidecar = self._sidecar_text()
        if sidecar is not None and self.format != "mp4":
            side = self.path.with_name(self.path.name + SIDECAR_SUFFIX)
            side_tmp = side.with_name(f".{side.name}.part")
            side_tmp.write_text(sidecar, encoding="utf-8")
            publish(side_tmp, side)

    def _discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


class Mp4Writer(_SingleFileWriter):
    """H.264 yuv420p MP4 through PyAV; the animation goes into the file's metadata."""

    format = "mp4"

    def __init__(self, path, fps, scale=1, animation=None, model_path=None, crf: int | None = None, bitrate: int | None = None):
        super().__init__(path, fps, scale, animation, model_path)
        if crf is not None and not (isinstance(crf, int) and 0 <= crf <= 51):
            raise VideoError(f"crf must be a whole number from 0 (lossless) to 51, not {crf}")
        if bitrate is not None and not (isinstance(bitrate, int) and bitrate >= 10_000):
            raise VideoError(f"bit rate must be at least 10k bits/s, not {bitrate}")
        self.crf = DEFAULT_CRF if crf is None and bitrate is None else crf
        self.bitrate = bitrate
        self._container = None
        self._stream = None

    def _open(self, width: int, height: int) -> None:
        import av

        container = av.open(str(self.tmp), mode="w", format="mp4", options={"movflags": "use_metadata_tags+faststart"})
        sidecar = self._sidecar_text()
        if sidecar is not None:
            container.metadata[METADATA_KEY] = sidecar
        container.metadata["comment"] = "made with latentstudio"
        stream = container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
        stream.width, stream.height = _even(width), _even(height)
        stream.pix_fmt = "yuv420p"
        if self.bitrate is not None:
            stream.bit_rate = self.bitrate
        options = {"preset": "medium"}
        if self.crf is not None:
            options["crf"] = str(self.crf)
        stream.options = options
        self._container, self._stream = container, stream

    def _write(self, picture: Image.Image) -> None:
        import av

        if self._container is None:
            self._open(picture.width, picture.height)
        stream = self._stream
        if (picture.width, picture.height) != (stream.width, stream.height):
            padded = Image.new("RGB", (stream.width, stream.height))  # odd sizes: one black edge row / column
            padded.paste(picture)
            picture = padded
        frame = av.VideoFrame.from_image(picture)
        for packet in stream.encode(frame):
            self._container.mux(packet)

    def _finish(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None
        self._publish()

    def _discard(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is being dropped anyway
                pass
            self._container = None
        super()._discard()


def _durations_ms(count: int, fps: float, step: int = 1) -> list[int]:
    """Per-frame durations in multiples of ``step`` ms whose running sum follows ``count / fps``."""
    ends = [round((i + 1) * 1000 / fps / step) * step for i in range(count)]
    return [max(step, end - start) for start, end in zip([0] + ends[:-1], ends)]


class _KeptFramesWriter(_SingleFileWriter):
    """Pillow writes animated GIF / WebP in one call: frames are kept until :meth:`close`."""

    bytes_per_pixel = 3

    def __init__(self, path, fps, scale=1, animation=None, model_path=None, loop: bool = True, expected_frames: int | None = None,
                 image_size: tuple[int, int] | None = None):
        super().__init__(path, fps, scale, animation, model_path)
        self.loop = loop
        if expected_frames is not None and image_size is not None:
            needed = expected_frames * image_size[0] * image_size[1] * scale * scale * self.bytes_per_pixel
            if needed > KEPT_FRAMES_LIMIT:
                self._discard()
                raise VideoError(f"{self.path}: {expected_frames} frames would hold {needed / 2**30:.1f} GiB in memory "
                                 f"as {self.format.upper()}; write an .mp4 instead, or fewer / smaller frames")
        self.frames: list[Image.Image] = []

    def _discard(self) -> None:
        self.frames = []
        super()._discard()


class GifWriter(_KeptFramesWriter):
    """Animated GIF: a global palette from sample frames, Floyd-Steinberg dithering."""

    format = "gif"
    bytes_per_pixel = 1

    def __init__(self, *args, palette_frames: Sequence[np.ndarray] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.palette: Image.Image | None = None
        if palette_frames:
            self.palette = self._make_palette([self._picture(image) for image in palette_frames])

    @staticmethod
    def _make_palette(pictures: Sequence[Image.Image]) -> Image.Image:
        """A 256-colour palette (median cut) over a mosaic of the sample pictures."""
        width = max(p.width for p in pictures)
        mosaic = Image.new("RGB", (width, sum(p.height for p in pictures)))
        top = 0
        for picture in pictures:
            mosaic.paste(picture, (0, top))
            top += picture.height
        return mosaic.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)

    def _write(self, picture: Image.Image) -> None:
        if self.palette is None:
            self.palette = self._make_palette([picture])
        self.frames.append(picture.quantize(palette=self.palette, dither=Image.Dither.FLOYDSTEINBERG))

    def _finish(self) -> None:
        first, *rest = self.frames
        options = {"loop": 0} if self.loop else {}
        first.save(self.tmp, format="GIF", save_all=True, append_images=rest, duration=_durations_ms(len(self.frames), self.fps, 10),
                   disposal=1, optimize=False, **options)
        self.frames = []
        self._publish()


class WebpWriter(_KeptFramesWriter):
    """Animated lossy WebP (Pillow / libwebp)."""

    format = "webp"

    def __init__(self, *args, quality: int = 90, **kwargs):
        super().__init__(*args, **kwargs)
        self.quality = quality

    def _write(self, picture: Image.Image) -> None:
        self.frames.append(picture)

    def _finish(self) -> None:
        first, *rest = self.frames
        first.save(self.tmp, format="WEBP", save_all=True, append_images=rest, duration=_durations_ms(len(self.frames), self.fps),
                   loop=0 if self.loop else 1, quality=self.quality, method=4)
        self.frames = []
        self._publish()


class PngSequenceWriter(VideoWriter):
    """``frame00000.png``... in a folder, built as a hidden folder next to it and renamed at the end.

    An existing target folder is replaced only if it holds nothing but an earlier sequence
    (frames and ``animation.json``); anything else in it is refused, never deleted.
    """

    format = "png"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.path.exists():
            strangers = [p.name for p in self.path.iterdir() if not _is_sequence_file(p.name)] if self.path.is_dir() else [self.path.name]
            if strangers:
                raise VideoError(f"cannot write PNG frames to {self.path}: it holds other files ({', '.join(sorted(strangers)[:3])})")
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent))
        except OSError as error:
            raise VideoError(f"cannot write {self.path}: {error.strerror or error}") from None

    def _write(self, picture: Image.Image) -> None:
        picture.save(self.tmp / SEQUENCE_PATTERN.format(self.frames_written), format="PNG", compress_level=4)

    def _finish(self) -> None:
        sidecar = self._sidecar_text()
        if sidecar is not None:
            (self.tmp / SEQUENCE_SIDECAR).write_text(sidecar, encoding="utf-8")
        os.chmod(self.tmp, 0o777 & ~current_umask())  # mkdtemp's folder is private; a published one is not
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)

    def _discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _is_sequence_file(name: str) -> bool:
    return name == SEQUENCE_SIDECAR or (name.startswith("frame") and name.endswith(".png") and name[5:-4].isdigit())


def open_writer(path: str | os.PathLike, fps: float, scale: int = 1, animation: Animation | None = None, model_path: str | None = None,
                crf: int | None = None, bitrate: int | None = None, loop: bool = True, expected_frames: int | None = None,
                image_size: tuple[int, int] | None = None, palette_frames: Sequence[np.ndarray] = ()) -> VideoWriter:
    """The writer for ``path``'s format (see :func:`video_format`). Raises :class:`VideoError`
    at once for an unwritable path or bad settings, before anything is rendered."""
    kind = video_format(path)
    common = dict(scale=scale, animation=animation, model_path=model_path)
    if kind == "mp4":
        return Mp4Writer(path, fps, crf=crf, bitrate=bitrate, **common)
    if kind == "gif":
        return GifWriter(path, fps, loop=loop, expected_frames=expected_frames, image_size=image_size, palette_frames=palette_frames, **common)
    if kind == "webp":
        return WebpWriter(path, fps, loop=loop, expected_frames=expected_frames, image_size=image_size, **common)
    return PngSequenceWriter(path, fps, **common)


# -- reading the animation back ----------------------------------------------------------------
def read_video_animation(path: str | os.PathLike) -> tuple[Animation, str | None]:
    """The animation (and model path, if recorded) stored with a video latentstudio wrote, or
    in an animation ``.json``. Raises :class:`AnimationError` with one line otherwise: files
    are read as regular files only, of at most :data:`MAX_FILE_BYTES`
    (:mod:`latentstudio.untrusted`), their JSON with a size and a depth cap."""
    path = Path(path)
    if path.is_dir():
        return _read_sidecar(path / SEQUENCE_SIDECAR, path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _read_sidecar(path, path)
    if suffix == ".mp4":
        text = _mp4_metadata(path)
        if text is not None:
            return _parse(text, path)
    if not path.exists():
        raise AnimationError(f"{path}: no such file")
    return _read_sidecar(path.with_name(path.name + SIDECAR_SUFFIX), path)


def _mp4_metadata(path: Path) -> str | None:
    import av

    with open_regular_file(path, prefixed(AnimationError), "video file") as (stream, _):
        try:
            with av.open(stream) as container:
                return container.metadata.get(METADATA_KEY)
        except Exception as error:  # noqa: BLE001 - FFmpeg's errors for a hostile file are many
            raise AnimationError(f"{path}: not a readable video ({describe(error)})") from None


def _read_sidecar(sidecar: Path, video: Path) -> tuple[Animation, str | None]:
    if sidecar != video and not os.path.lexists(sidecar):
        raise AnimationError(f"{video}: no latentstudio animation is stored with it (looked for {sidecar.name})")
    return _parse(read_regular_file(sidecar, MAX_FILE_BYTES, prefixed(AnimationError), "animation file"), sidecar)


def _parse(text: str | bytes, where: Path) -> tuple[Animation, str | None]:
    try:
        data = animation_json(text)
        model_path = data.pop("model_path", None) if isinstance(data, dict) else None
        return Animation.from_dict(data), model_path if isinstance(model_path, str) else None
    except AnimationError as error:
        raise AnimationError(f"{where}: {error}") from None
