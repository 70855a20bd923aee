"""Read-only access to the files of an image folder or a zip archive, by relative name.

Names are POSIX-style paths relative to the root (``"cats/001.png"``), the same in both kinds
of source, so ``dataset.json`` labels written for a zip also match the unpacked folder.
A zip archive is opened lazily, once per process: a ``zipfile.ZipFile`` shares one file
offset, so a handle inherited by forked DataLoader workers (or pickled to spawned ones) would
let workers corrupt each other's reads.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

from latentstudio.data.errors import DatasetError
from latentstudio.untrusted import prefixed, read_regular_file

MAX_MEMBER_BYTES = 256 << 20  # one image or side file of a data set


class FolderSource:
    """Every file under ``root``, recursively."""

    def __init__(self, root: Path):
        self.root = root

    def list_files(self) -> list[str]:
        return sorted(
            path.relative_to(self.root).as_posix() for path in self.root.rglob("*") if path.is_file()
        )

    def read(self, name: str) -> bytes:
        """The file's bytes (regular files of at most :data:`MAX_MEMBER_BYTES` only)."""
        return read_regular_file(self.root / name, MAX_MEMBER_BYTES, prefixed(DatasetError))

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()


class ZipSource:
    """Every file member of a zip archive; the archive is opened on first use in each process."""

    def __init__(self, path: Path):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        try:  # fail now, with a clear message, rather than in a worker later
            self._names = sorted(info.filename for info in self._archive().infolist() if not info.is_dir())
        except (zipfile.BadZipFile, OSError) as error:
            raise DatasetError(f"{path}: not a readable zip archive ({error})") from None

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def list_files(self) -> list[str]:
        return list(self._names)

    def read(self, name: str) -> bytes:
        """The member's bytes, refused before inflating when it declares more than :data:`MAX_MEMBER_BYTES`."""
        archive = self._archive()
        info = archive.getinfo(name)
        if info.file_size > MAX_MEMBER_BYTES:
            raise DatasetError(f"{self.path}: {name} inflates to {info.file_size:,} bytes (at most {MAX_MEMBER_BYTES:,})")
        return archive.read(info)

    def has(self, name: str) -> bool:
        return name in self._names

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_zip"] = None  # an open file handle must not travel to another process
        state["_zip_pid"] = None
        return state


def open_source(path: str | os.PathLike) -> FolderSource | ZipSource:
    """A folder or a ``.zip`` file (sniffed from its bytes, not the extension)."""
    path = Path(path)
    if path.is_dir():
        return FolderSource(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: expected an image folder or a zip archive of images")
    return ZipSource(path)
