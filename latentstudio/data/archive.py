"""Writing NVlabs-style data set archives, atomically, and reading their portrait factors back.

Layout (what NVlabs ``dataset_tool.py`` writes and ``ImageFolderDataset`` reads):
``00000/img00000000.png ... 00001/img00001000.png ...`` stored uncompressed (PNG already is),
and ``dataset.json`` = ``{"labels": [[name, label], ...]}`` or ``{"labels": null}``; we add
``"class_names"`` when the classes have names. Portrait archives also hold ``factors.npy``
(``float32 [N, K]``, row i is image i) and ``factors.json`` (factor names, ranges,
descriptions, the generator settings, and the file name of every row).

The archive is written to a temporary file next to the target and renamed over it at the end,
so an interrupted run never leaves a half-written archive under the final name.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from latentstudio import bounded_json
from latentstudio.data.errors import DatasetError
from latentstudio.atomic import publish
from latentstudio.data.labels import RawLabel
from latentstudio.data.sources import MAX_MEMBER_BYTES, open_source
from latentstudio.untrusted import npy_array, prefixed

Progress = Callable[[int, int], None]
FACTORS_JSON = "factors.json"
FACTORS_NPY = "factors.npy"


def archive_name(index: int) -> str:
    """NVlabs naming: 1000 images per folder."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def _png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """PNG of a PIL image or of a uint8 array ``[H, W]`` / ``[H, W, 3]``."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)  # ~the size of the default 6, faster
    return buffer.getvalue()


class DatasetZipWriter:
    """Collects images (and labels) into an NVlabs zip; the file appears only on ``close()``.

    Use as a context manager: on an exception the temporary file is removed and the target,
    if it existed, is left untouched.
    """

    def __init__(self, path: str | os.PathLike, class_names: Sequence[str] | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(handle)
        self._temporary = Path(temporary)
        self._zip = zipfile.ZipFile(self._temporary, "w", compression=zipfile.ZIP_STORED)
        self._class_names = list(class_names) if class_names is not None else None
        self._labels: list[list] = []
        self.names: list[str] = []

    def add(self, image: Image.Image | np.ndarray, label: RawLabel | None = None) -> str:
        """Append one image (PIL, or uint8 ``[H, W]`` / ``[H, W, 3]``) with its label, or with
        None for every image of an unconditional set. Returns its name in the archive."""
        if self.names and (label is None) != (not self._labels):
            raise ValueError("either every image has a label or none has")
        name = archive_name(len(self.names))
        self._zip.writestr(name, _png_bytes(image))
        self.names.append(name)
        if label is not None:
            self._labels.append([name, label])
        return name

    def add_file(self, name: str, data: bytes) -> None:
        self._zip.writestr(name, data)

    def close(self) -> Path:
        """Write ``dataset.json``, then move the archive into place."""
        if not self.names:
            self.abort()
            raise DatasetError(f"{self.path}: nothing to write, no images were added")
        document: dict = {"labels": self._labels or None}
        if self._class_names is not None and self._labels:
            document["class_names"] = self._class_names
        self._zip.writestr("dataset.json", json.dumps(document))
        self._zip.close()
        publish(self._temporary, self.path)
        return self.path

    def abort(self) -> None:
        self._zip.close()
        self._temporary.unlink(missing_ok=True)

    def __enter__(self) -> DatasetZipWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


@dataclass(frozen=True)
class FactorTable:
    """Ground-truth factors of a generated data set: ``values[i]`` belongs to ``files[i]``."""

    names: tuple[str, ...]
    values: np.ndarray  # float32 [N, K]
    files: tuple[str, ...]
    info: dict = field(default_factory=dict)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]


def add_factors(writer: DatasetZipWriter, table: FactorTable) -> None:
    """Store ``factors.npy`` and ``factors.json`` in the archive being written."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(table.values, dtype=np.float32), allow_pickle=False)
    writer.add_file(FACTORS_NPY, buffer.getvalue())
    document = {**table.info, "names": list(table.names), "files": list(table.files)}
    writer.add_file(FACTORS_JSON, json.dumps(document).encode())


def load_factors(path: str | os.PathLike) -> FactorTable:
    """The factors stored with a data set (zip or folder); ``DatasetError`` when there are none."""
    source = open_source(path)
    if not (source.has(FACTORS_JSON) and source.has(FACTORS_NPY)):
        raise DatasetError(f"{path}: no {FACTORS_JSON} / {FACTORS_NPY}: not a data set with known factors")
    try:
        document = bounded_json.loads(source.read(FACTORS_JSON), max_chars=MAX_MEMBER_BYTES, max_depth=8)
        values = npy_array(source.read(FACTORS_NPY), str(path), FACTORS_NPY, prefixed(DatasetError))
        names, files = tuple(document.pop("names")), tuple(document.pop("files"))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DatasetError(f"{path}: unreadable factors ({' '.join(str(error).split())[:160]})") from None
    if values.shape != (len(files), len(names)):
        raise DatasetError(f"{path}: factors.npy is {values.shape}, expected ({len(files)}, {len(names)})")
    return FactorTable(names, values.astype(np.float32), files, document)
