"""Datasets: image folders and zip archives, and procedural portraits with known factors.

- ``ImageDataset`` (``images.py``): a folder or zip as a PyTorch data set, broken files skipped.
- ``portraits.py``: cartoon faces drawn from nine known, independent factors.
- ``archive.py`` / ``build.py``: NVlabs-style zips written atomically; ``load_factors``.

Names are imported on first use, so ``import latentstudio.data.portraits`` stays free of torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "DatasetError": "latentstudio.data.errors",
    "ImageDataset": "latentstudio.data.images",
    "SkippedFile": "latentstudio.data.images",
    "DatasetZipWriter": "latentstudio.data.archive",
    "FactorTable": "latentstudio.data.archive",
    "load_factors": "latentstudio.data.archive",
    "convert_dataset": "latentstudio.data.build",
    "write_portraits": "latentstudio.data.build",
    "FACTORS": "latentstudio.data.portraits",
    "FACTOR_NAMES": "latentstudio.data.portraits",
    "draw_portrait": "latentstudio.data.portraits",
    "generate": "latentstudio.data.portraits",
    "sample_factors": "latentstudio.data.portraits",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'latentstudio.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
