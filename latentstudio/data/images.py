"""``ImageDataset``: an image folder or zip archive as a PyTorch data set for GAN training.

Items follow NVlabs ``ImageFolderDataset``, so training code written for it works unchanged:
``dataset[i] -> (image, label)`` with ``image`` a ``uint8`` numpy array ``[C, R, R]``
(``C`` = ``num_channels``, 1 or 3; ``R`` = ``resolution``) and ``label`` a ``float32`` numpy
array ``[label_dim]`` (one-hot for integer classes, the stored vector otherwise, ``[0]`` when
unconditional). The default ``DataLoader`` collate turns both into tensors.

Broken files never stop training. Every file is checked when the data set is opened
(``check="decode"`` fully decodes each one, ``"verify"`` only checks headers and PNG CRCs);
failures go to ``skipped`` with their reason and one warning is logged. A file that still
fails later (changed on disk, truncated JPEG under ``"verify"``) is logged and replaced by the
next good image. Only an unusable data set as a whole raises ``DatasetError``, and it does so
here, before training starts.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

import numpy as np
import torch.utils.data

from latentstudio.data.decode import IMAGE_EXTENSIONS, decode_image, verify_image
from latentstudio.data.errors import DatasetError
from latentstudio.data.labels import LabelSource, LabelTable, RawLabel, resolve_labels
from latentstudio.data.sources import FolderSource, ZipSource, open_source

logger = logging.getLogger(__name__)

CheckMode = Literal["decode", "verify"]
_SCAN_THREADS = min(8, os.cpu_count() or 1)  # Pillow decodes with the GIL released


class SkippedFile(NamedTuple):
    name: str
    reason: str


def _is_image_name(name: str) -> bool:
    """Image extensions only, leaving out hidden files and macOS ``__MACOSX`` zip debris."""
    path = PurePosixPath(name)
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in path.parts)
    return not hidden and path.suffix.lower() in IMAGE_EXTENSIONS


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class ImageDataset(torch.utils.data.Dataset):
    """Square uint8 images at ``resolution`` from a folder (recursive) or a zip archive.

    ``xflip=True`` appends a mirrored copy of every image (``len`` doubles; index
    ``i + n`` is image ``i`` flipped left-right), as NVlabs ``--mirror``.
    ``labels``: ``"auto"`` (``dataset.json`` if it has labels, else unconditional),
    ``"json"``, ``"folders"`` (one class per top-level sub-folder, sorted) or ``"none"``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        resolution: int,
        *,
        channels: int = 3,
        xflip: bool = False,
        labels: LabelSource = "auto",
        check: CheckMode = "decode",
    ):
        if resolution < 1:
            raise ValueError(f"resolution must be positive, not {resolution}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, not {channels}")
        if check not in ("decode", "verify"):
            raise ValueError(f"check must be 'decode' or 'verify', not {check!r}")
        self.path = Path(path)
        self._resolution = resolution
        self._channels = channels
        self.xflip = xflip
        self._source: FolderSource | ZipSource = open_source(self.path)
        where = str(self.path)

        candidates = [name for name in self._source.list_files() if _is_image_name(name)]
        if not candidates:
            raise DatasetError(f"{where}: no PNG, JPEG or WebP images found")
        self._labels: LabelTable | None = resolve_labels(self._source, candidates, labels, where)

        self.skipped: list[SkippedFile] = []
        unlabelled = [n for n in candidates if n not in self._labels.by_name] if self._labels else []
        if unlabelled:
            reason = "no label in dataset.json" if labels != "folders" else "not inside a class folder"
            self.skipped += [SkippedFile(name, reason) for name in unlabelled]
            candidates = [name for name in candidates if name in self._labels.by_name]
        problems = self._scan(candidates, check)
        self.skipped += [SkippedFile(n, p) for n, p in zip(candidates, problems) if p is not None]
        self.names: list[str] = [n for n, p in zip(candidates, problems) if p is None]
        self._failed_here: set[int] = set()  # raw indices that failed after the scan, per process

        if not self.names:
            total = len(candidates) + len(unlabelled)
            first = self.skipped[0]
            raise DatasetError(
                f"{where}: none of the {total} image files is usable "
                f"({len(self.skipped)} skipped; first: {first.name}: {first.reason})"
            )
        if self.skipped:
            shown = "; ".join(f"{s.name}: {s.reason}" for s in self.skipped[:3])
            more = f" and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            logger.warning("%s: skipped %d of %d image files (%s%s)", where, len(self.skipped),
                           len(self.skipped) + len(self.names), shown, more)

    def _check_one(self, name: str, check: CheckMode) -> str | None:
        """None when the file is usable, else why not."""
        try:
            data = self._source.read(name)
            if check == "verify":
                verify_image(data)
            else:
                decode_image(data, self._resolution, self._channels)
        except Exception as error:  # noqa: BLE001 - Pillow raises many types for broken files
            return _describe(error)
        return None

    def _scan(self, names: list[str], check: CheckMode) -> list[str | None]:
        with ThreadPoolExecutor(_SCAN_THREADS) as pool:
            return list(pool.map(lambda name: self._check_one(name, check), names))

    # -- what the trainer reads -------------------------------------------------------------

    @property
    def name(self) -> str:
        """The file or folder name without extension, e.g. ``"portraits"`` (as NVlabs)."""
        return self.path.stem if self.path.is_file() else self.path.name

    @property
    def resolution(self) -> int:
        return self._resolution

    @property
    def num_channels(self) -> int:
        return self._channels

    @property
    def image_shape(self) -> list[int]:
        return [self._channels, self._resolution, self._resolution]

    @property
    def has_labels(self) -> bool:
        return self._labels is not None

    @property
    def label_dim(self) -> int:
        return 0 if self._labels is None else self._labels.label_dim

    @property
    def label_shape(self) -> list[int]:
        return [self.label_dim]

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """Names of the integer classes when known (folder names, or ``dataset.json``)."""
        return None if self._labels is None else self._labels.class_names

    @property
    def has_class_labels(self) -> bool:
        return self._labels is not None and self._labels.is_class

    def __len__(self) -> int:
        return len(self.names) * (2 if self.xflip else 1)

    def _raw_index(self, index: int) -> tuple[int, bool]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index %= len(self)
        return index % len(self.names), index >= len(self.names)

    def get_label(self, index: int) -> np.ndarray:
        raw, _ = self._raw_index(index)
        if self._labels is None:
            return np.zeros(0, dtype=np.float32)
        return self._labels.vector(self.names[raw])

    def raw_label(self, index: int) -> RawLabel | None:
        """The label as stored (class index or float list), for writing it back out."""
        raw, _ = self._raw_index(index)
        return None if self._labels is None else self._labels.by_name[self.names[raw]]

    def load_image(self, index: int) -> np.ndarray:
        """``uint8 [C, R, R]``; flipped for the mirrored half. Raises for a broken file."""
        raw, flip = self._raw_index(index)
        image = decode_image(self._source.read(self.names[raw]), self._resolution, self._channels)
        return np.ascontiguousarray(image[:, :, ::-1]) if flip else image

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        raw, flip = self._raw_index(index)
        for attempt in range(len(self.names)):
            candidate = (raw + attempt) % len(self.names)
            if candidate in self._failed_here:
                continue
            position = candidate + (len(self.names) if flip else 0)
            try:
                return self.load_image(position), self.get_label(position)
            except Exception as error:  # noqa: BLE001 - a broken file must not stop training
                self._failed_here.add(candidate)
                logger.warning("%s: %s became unreadable (%s); using the next image instead",
                               self.path, self.names[candidate], _describe(error))
        raise DatasetError(f"{self.path}: every image failed to load in this process")
