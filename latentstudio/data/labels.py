"""Where conditional labels come from: an NVlabs ``dataset.json``, or class sub-folders.

``dataset.json`` is ``{"labels": [["00000/img00000000.png", 6], ...]}`` (or a dict
name -> label, or ``"labels": null`` for an unconditional set). A label is either an integer
class (one-hot encoded here, ``label_dim = max class + 1``) or a list of floats used as is.
We also read an optional ``"class_names"`` list, which our own archives write.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from latentstudio import bounded_json
from latentstudio.data.errors import DatasetError
from latentstudio.data.sources import FolderSource, ZipSource

LabelSource = Literal["auto", "json", "folders", "none"]
RawLabel = int | list[float]


@dataclass(frozen=True)
class LabelTable:
    """Raw labels by file name, and how to turn one into the float32 vector a network sees."""

    by_name: dict[str, RawLabel]
    label_dim: int
    is_class: bool
    class_names: tuple[str, ...] | None = None

    def vector(self, name: str) -> np.ndarray:
        raw = self.by_name[name]
        if self.is_class:
            one_hot = np.zeros(self.label_dim, dtype=np.float32)
            one_hot[raw] = 1.0
            return one_hot
        return np.asarray(raw, dtype=np.float32)


MAX_LABELS_JSON = 256 << 20  # characters of dataset.json


def read_json_labels(source: FolderSource | ZipSource, where: str) -> LabelTable | None:
    """Labels from ``dataset.json`` at the root, or None when absent or ``"labels": null``."""
    if not source.has("dataset.json"):
        return None
    try:
        document = bounded_json.loads(source.read("dataset.json"), max_chars=MAX_LABELS_JSON, max_depth=8)
        labels = document.get("labels")
    except (ValueError, AttributeError) as error:
        raise DatasetError(f"{where}: dataset.json is not a JSON object ({error})") from None
    if labels is None:
        return None
    try:
        by_name = {str(name).replace("\\", "/"): label for name, label in dict(labels).items()}
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: dataset.json 'labels' must be [[file name, label], ...]") from None
    if not by_name:
        return None
    values = list(by_name.values())
    if all(isinstance(value, int) and value >= 0 for value in values):
        class_names = document.get("class_names")
        label_dim = max(values) + 1
        if class_names is not None and len(class_names) < label_dim:
            raise DatasetError(f"{where}: dataset.json has {len(class_names)} class_names for {label_dim} classes")
        return LabelTable(by_name, label_dim, True, tuple(map(str, class_names)) if class_names else None)
    vectors = [np.atleast_1d(np.asarray(value)) for value in values]
    if any(v.ndim != 1 or v.dtype.kind not in "biuf" for v in vectors) or len({v.shape for v in vectors}) != 1:
        raise DatasetError(
            f"{where}: dataset.json labels must all be non-negative integer classes "
            "or all be number lists of the same length"
        )
    return LabelTable({n: v.astype(float).tolist() for n, v in zip(by_name, vectors)}, len(vectors[0]), False)


def folder_labels(image_names: list[str], where: str) -> LabelTable:
    """One class per top-level folder, numbered in sorted order; images at the root get none."""
    class_names = sorted({name.split("/", 1)[0] for name in image_names if "/" in name})
    if not class_names:
        raise DatasetError(f"{where}: labels from folders asked for, but the images are in no sub-folder")
    index = {class_name: i for i, class_name in enumerate(class_names)}
    by_name: dict[str, RawLabel] = {
        name: index[name.split("/", 1)[0]] for name in image_names if "/" in name
    }
    return LabelTable(by_name, len(class_names), True, tuple(class_names))


def resolve_labels(
    source: FolderSource | ZipSource, image_names: list[str], labels: LabelSource, where: str
) -> LabelTable | None:
    """``auto``: ``dataset.json`` labels when it has any, else unconditional."""
    if labels not in ("auto", "json", "folders", "none"):
        raise ValueError(f"labels must be one of auto, json, folders, none; not {labels!r}")
    if labels == "none":
        return None
    if labels == "folders":
        return folder_labels(image_names, where)
    table = read_json_labels(source, where)
    if labels == "json" and table is None:
        raise DatasetError(f"{where}: labels from dataset.json asked for, but it has none")
    return table
