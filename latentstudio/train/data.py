"""Feeding the loop: which data set, and which images in which order.

The order of images is a pure function of ``(seed, step)``: epoch ``e`` is the permutation
``default_rng([seed, e])`` of the data set, and step ``s`` takes the global batch starting at
image ``s * batch`` of that endless sequence, each process its own slice. No iterator state
needs saving, so a resumed run (or one with another number of data-loader workers) reads
exactly the images the uninterrupted run would have read.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.utils.data

from latentstudio.train.config import TrainOptions

PORTRAITS = "portraits"
TEACHER_DATA = "teacher"  # --data teacher: the images of --teacher, drawn on the fly


def batch_indices(seed: int, step: int, batch: int, size: int) -> np.ndarray:
    """Data set indices ``[batch]`` of global step ``step``."""
    start = step * batch
    indices = np.empty(batch, dtype=np.int64)
    filled = 0
    while filled < batch:
        epoch, offset = divmod(start + filled, size)
        order = np.random.default_rng([seed, epoch]).permutation(size)
        take = min(batch - filled, size - offset)
        indices[filled:filled + take] = order[offset:offset + take]
        filled += take
    return indices


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Endless batches for one process, starting at ``start_step``."""

    def __init__(self, size: int, batch: int, seed: int, start_step: int, rank: int = 0, world_size: int = 1):
        assert batch % world_size == 0
        self.size, self.batch, self.seed, self.start_step = size, batch, seed, start_step
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        per_process = self.batch // self.world_size
        step = self.start_step
        while True:
            indices = batch_indices(self.seed, step, self.batch, self.size)
            yield indices[self.rank * per_process:(self.rank + 1) * per_process].tolist()
            step += 1


class ProceduralPortraits(torch.utils.data.Dataset):
    """``count`` procedural portraits drawn on demand (``latentstudio.data.portraits``),
    unconditional, in the ``(uint8 [3, R, R], float32 [0])`` items of ``ImageDataset``."""

    def __init__(self, count: int, resolution: int, seed: int = 0):
        from latentstudio.data.portraits import FACTOR_NAMES, sample_factors

        self.resolution = resolution
        self.num_channels = 3
        self.label_dim = 0
        self.skipped: list = []
        factors = sample_factors(np.random.default_rng(seed), count)
        self._rows = [{name: float(factors[name][i]) for name in FACTOR_NAMES} for i in range(count)]

    def __len__(self) -> int:
        return len(self._rows)

    def get_label(self, index: int) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        from latentstudio.data.portraits import draw_portrait

        pixels = np.asarray(draw_portrait(self._rows[index], self.resolution), dtype=np.uint8)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1)), self.get_label(index)


def open_training_data(options: TrainOptions) -> torch.utils.data.Dataset:
    """The data set ``options.data`` names; raises ``DatasetError`` when it is unusable.

    ``--cond`` takes the labels of ``dataset.json`` when there is one, else one class per
    sub-folder.
    """
    from latentstudio.data.errors import DatasetError

    if options.data == TEACHER_DATA:
        raise DatasetError("--data teacher: the images come from --teacher; give it (e.g. --teacher gan-face-generate)")
    if options.data == PORTRAITS:
        if options.cond:
            raise DatasetError("--cond: procedural portraits drawn on the fly have no labels; write them with "
                               "`latentstudio dataset portraits --label-factor FACTOR` and train on that archive")
        return ProceduralPortraits(options.portraits, options.resolution, seed=options.seed)
    from latentstudio.data.images import ImageDataset
    from latentstudio.data.sources import open_source

    labels = "none"
    if options.cond:
        labels = "json" if open_source(options.data).has("dataset.json") else "folders"
    return ImageDataset(options.data, options.resolution, xflip=options.mirror, labels=labels)


def make_loader(dataset: torch.utils.data.Dataset, options: TrainOptions, start_step: int,
                rank: int, world_size: int, cuda: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless ``(images uint8 [B, C, R, R], labels float32 [B, c_dim])`` for this process.

    Without a GPU the default is no worker process: decoding a batch takes milliseconds
    next to seconds of CPU training, and workers would only compete for the cores.
    """
    sampler = StepBatchSampler(len(dataset), options.batch_size, options.seed, start_step, rank, world_size)
    workers = options.workers if options.workers is not None else (2 if cuda else 0)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                         pin_memory=cuda, persistent_workers=workers > 0,
                                         prefetch_factor=2 if workers > 0 else None)
    return iter(loader)
