"""Opening a model file without trusting the path: regular files only, every failure one line.

A path can name a named pipe (``open`` then blocks forever), a directory, a socket or a
device, be too long for the file system, or be unreadable. :func:`open_regular_file` looks
first (``os.stat``), refuses anything but a regular file at once, opens without blocking
(``O_NONBLOCK``, so a path swapped for a FIFO after the check cannot hang us either) and
checks the opened descriptor again. Every failure is a :class:`ModelLoadError` naming the file.

API: ``with open_regular_file(path) as (stream, size): ...`` (``stream`` is a buffered binary
file, ``size`` its size when opened); :func:`file_kind` names what a ``stat`` result is.
"""
from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from latentstudio.io.errors import ModelLoadError

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)


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


def _os_problem(error: OSError, path: str) -> str:
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
def open_regular_file(path: str | os.PathLike) -> Iterator[tuple[BinaryIO, int]]:
    """``(stream, size)`` of the regular file at ``path``, or :class:`ModelLoadError`."""
    text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    try:
        info = os.stat(path)
    except (OSError, ValueError) as error:  # ValueError: a NUL character in the path
        raise ModelLoadError(text, _os_problem(error, text) if isinstance(error, OSError) else "the path contains a NUL character") from None
    if not stat.S_ISREG(info.st_mode):
        raise ModelLoadError(text, f"{file_kind(info.st_mode)}, not a model file")
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _BINARY)
    except OSError as error:
        raise ModelLoadError(text, _os_problem(error, text)) from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise ModelLoadError(text, f"{file_kind(opened.st_mode)}, not a model file")
        stream = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with stream:
        yield stream, opened.st_size

