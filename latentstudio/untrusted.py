"""Opening and reading files a stranger may have made: regular files only, bounded reads.

A path can name a named pipe (``open`` then blocks forever), a directory, a socket or a
device, be too long for the file system or unreadable, and a regular file can be far larger
than anything it claims to be. :func:`open_regular_file` looks first (``os.stat``), refuses
anything but a regular file at once, opens without blocking (``O_NONBLOCK``, so a path
swapped for a FIFO after the check cannot hang us either) and checks the opened descriptor
again; :func:`read_regular_file` also caps the size. :func:`read_npz` reads ``.npz`` archives
(numpy's ``savez``) with every entry's size checked before it is inflated. :func:`read_image`
decodes an image (photos, masks, sample grids) in the formats named only (Pillow's plugins
for other formats never see the file: its EPS reader runs Ghostscript), with the file size
and the pixel count checked before any pixel is decoded.

Each function takes ``error(path, problem) -> Exception``, the exception its caller raises
(``ModelLoadError``, or ``prefixed(RecipeError)`` for one-message exception types), so every
failure reads the same way everywhere: the path, then what is wrong, on one line.
"""
from __future__ import annotations

import errno
import io
import math
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

ErrorFactory = Callable[[str, str], Exception]
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)
MAX_NPZ_ENTRIES = 64
MAX_TABLE_BYTES = 8 << 30  # what a table of latents, labels or factors (.npz) may inflate to
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")  # Pillow's names (JPEG opens MPO phone photos too)


def prefixed(error_type: Callable[[str], Exception]) -> ErrorFactory:
    """An error factory for exception types that take one message: ``"<path>: <problem>"``."""
    return lambda path, problem: error_type(f"{path}: {problem}")


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def describe(failure: BaseException, limit: int = 120) -> str:
    """An exception as ``Type: message`` on one line of at most about ``limit`` characters."""
    detail = " ".join(str(failure)[: 4 * limit].split())[:limit]  # a huge text costs nothing
    return f"{type(failure).__name__}: {detail}" if detail else type(failure).__name__


def os_problem(error: OSError, path: str) -> str:
    """An ``OSError`` from opening ``path``, in words."""
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, PermissionError):
        return "permission denied (the file cannot be read)"
    if error.errno == errno.ENAMETOOLONG:
        return f"the path is too long for the file system ({len(path):,} characters)"
    if error.errno == errno.ELOOP:
        return "the path has too many levels of symbolic links"
    if error.errno == errno.ENOTDIR:
        return "a part of the path is not a folder"
    return f"cannot be read ({error.strerror or type(error).__name__})"


@contextmanager
def open_regular_file(path: str | os.PathLike, error: ErrorFactory, what: str = "file") -> Iterator[tuple[BinaryIO, int]]:
    """``(stream, size)`` of the regular file at ``path``; ``error(path, problem)`` otherwise.

    ``what`` names what was expected (``"model file"``) in the refusal of folders, pipes...
    """
    text = os.fsdecode(path)
    try:
        info = os.stat(path)
    except ValueError:  # a NUL character in the path
        raise error(text, "the path contains a NUL character") from None
    except OSError as failure:
        raise error(text, os_problem(failure, text)) from None
    if not stat.S_ISREG(info.st_mode):
        raise error(text, f"{file_kind(info.st_mode)}, not a {what}")
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _BINARY)
    except OSError as failure:
        raise error(text, os_problem(failure, text)) from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise error(text, f"{file_kind(opened.st_mode)}, not a {what}")
        stream = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with stream:
        yield stream, opened.st_size


def read_regular_file(path: str | os.PathLike, max_bytes: int, error: ErrorFactory, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; ``error(path, problem)`` otherwise."""
    with open_regular_file(path, error, what) as (stream, size):
        if size > max_bytes:
            raise error(os.fsdecode(path), f"{size:,} bytes, more than a {what} can be ({max_bytes:,})")
        try:
            return stream.read(max_bytes + 1)[:max_bytes]
        except OSError as failure:
            raise error(os.fsdecode(path), os_problem(failure, os.fsdecode(path))) from None


def read_npz(path: str | os.PathLike, max_bytes: int, error: ErrorFactory, what: str = ".npz file") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, refusing pickled (object) arrays and any entry or array
    whose size, declared or inflated, is beyond ``max_bytes`` in total."""
    text = os.fsdecode(path)

    def damaged(failure: Exception) -> Exception:
        return error(text, f"not a {what}, or a damaged one ({describe(failure, 100)})")

    with open_regular_file(path, error, what) as (stream, _):
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as failure:
            raise damaged(failure) from None
        with archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            if len(infos) > MAX_NPZ_ENTRIES:
                raise error(text, f"a {what} of {len(infos):,} entries (at most {MAX_NPZ_ENTRIES})")
            if sum(info.file_size for info in infos) > max_bytes:
                raise error(text, f"a {what} that inflates to more than {max_bytes:,} bytes")
            arrays = {}
            for info in infos:
                try:
                    data = archive.read(info)
                except (zipfile.BadZipFile, EOFError, NotImplementedError, ValueError, OSError, RuntimeError) as failure:
                    raise damaged(failure) from None
                name = info.filename.removesuffix(".npy")
                arrays[name] = npy_array(data, text, name, error)
            return arrays


def npy_array(data: bytes, path: str, name: str, error: ErrorFactory) -> np.ndarray:
    """One ``.npy`` payload, its header checked against its bytes before numpy allocates."""
    stream = io.BytesIO(data)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(stream)
        if version not in readers:
            raise ValueError(f".npy format version {version}, not 1.0 or 2.0")
        shape, _, dtype = readers[version](stream, max_header_size=10_000)
    except ValueError as failure:
        raise error(path, f"array {name[:40]} has a damaged header ({' '.join(str(failure).split())[:100]})") from None
    if dtype.hasobject:
        raise error(path, f"array {name[:40]} holds Python objects (pickled data is refused)")
    if len(data) - stream.tell() != math.prod(shape) * dtype.itemsize:
        raise error(path, f"array {name[:40]} declares shape {list(shape)[:8]} but holds {len(data) - stream.tell():,} bytes")
    stream.seek(0)
    return np.lib.format.read_array(stream, allow_pickle=False)


def read_image(path: str | os.PathLike, max_bytes: int, max_pixels: int, error: ErrorFactory, what: str = "image",
               formats: tuple[str, ...] = IMAGE_FORMATS, draft: tuple[int, int] | None = None) -> "Image.Image":
    """The first frame of the image file at ``path``, decoded; ``error(path, problem)`` otherwise.

    A regular file of at most ``max_bytes``, in one of ``formats`` (Pillow's names), of at
    most ``max_pixels`` pixels: counted after ``draft`` (JPEG's cheap 1/2 to 1/8 scaling
    towards that size), and before decoding, so a few bytes declaring gigapixels (a
    decompression bomb) cost nothing. Truncated, corrupt and unknown files are one line too.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    data = read_regular_file(path, max_bytes, error, what)
    try:
        with warnings.catch_warnings():  # bombs are refused below, with the reason
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data), formats=list(formats))
        declared = picture.size
        if draft is not None:
            picture.draft(None, draft)
        if picture.width * picture.height <= max_pixels:
            picture.load()
            return picture
        problem = f"{declared[0]}x{declared[1]} pixels, more than a {what} may have ({max_pixels:,}; a decompression bomb?)"
    except UnidentifiedImageError:
        problem = f"not a readable {what}: not an image (formats read: {', '.join(formats)})"
    except Image.DecompressionBombError:
        problem = f"more pixels than a {what} may have ({max_pixels:,}; a decompression bomb?)"
    except Exception as failure:  # noqa: BLE001 - Pillow raises many types for hostile files
        problem = f"not a readable {what}: cannot be read as an image ({describe(failure)})"
    raise error(os.fsdecode(path), problem)
