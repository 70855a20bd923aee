"""Building training archives: from an image folder / zip, and from the portrait generator."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from latentstudio.data import portraits
from latentstudio.data.archive import DatasetZipWriter, FactorTable, Progress, add_factors
from latentstudio.data.images import ImageDataset


def convert_dataset(dataset: ImageDataset, out: str | os.PathLike, progress: Progress | None = None) -> Path:
    """Write every item of ``dataset`` (cropped, resized, mirrored copies included when the
    data set has ``xflip``) with its label to an NVlabs zip at ``out``."""
    class_names = dataset.class_names if dataset.has_class_labels else None
    with DatasetZipWriter(out, class_names=class_names) as writer:
        for index in range(len(dataset)):
            pixels = dataset.load_image(index).transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
            writer.add(pixels[..., 0] if pixels.shape[2] == 1 else pixels, dataset.raw_label(index))
            if progress is not None:
                progress(index + 1, len(dataset))
    return Path(out)


def portrait_label(factor_name: str, value: float) -> int | list[float]:
    """A binary factor becomes a class (0 or 1); a continuous one a 1-vector of its value."""
    return int(value >= 0.5) if portraits.FACTORS_BY_NAME[factor_name].binary else [float(value)]


def write_portraits(
    out: str | os.PathLike,
    count: int,
    res: int = 64,
    seed: int = 0,
    label_factor: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """``count`` procedural portraits plus their factors; unconditional unless
    ``label_factor`` names the factor to use as the label."""
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    if label_factor is not None and label_factor not in portraits.FACTOR_NAMES:
        raise ValueError(f"unknown factor {label_factor!r}; factors: {', '.join(portraits.FACTOR_NAMES)}")
    binary = label_factor is not None and portraits.FACTORS_BY_NAME[label_factor].binary
    class_names = [f"{label_factor}=0", f"{label_factor}=1"] if binary else None
    values = np.zeros((count, len(portraits.FACTOR_NAMES)), dtype=np.float32)
    with DatasetZipWriter(out, class_names=class_names) as writer:
        for index, (image, row) in enumerate(portraits.generate(count, res, seed)):
            label = None if label_factor is None else portrait_label(label_factor, row[label_factor])
            writer.add(image, label)
            values[index] = [row[name] for name in portraits.FACTOR_NAMES]
            if progress is not None:
                progress(index + 1, count)
        info = {
            "generator": "latentstudio.data.portraits",
            "seed": seed,
            "resolution": res,
            "factors": [
                {"name": f.name, "low": f.low, "high": f.high, "binary": f.binary, "description": f.description}
                for f in portraits.FACTORS
            ],
        }
        add_factors(writer, FactorTable(portraits.FACTOR_NAMES, values, tuple(writer.names), info))
    return Path(out)
