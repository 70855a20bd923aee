"""A generator as the data: teacher images drawn on the fly, and the pairs distillation learns from.

``--teacher`` names a DCGAN generator checkpoint (or ``gan-face-generate``: the weights that
package ships, found without importing its code). Its images replace a data set: every step
draws fresh latents, so the student never sees an image twice (an endless data set, which a
fixed zip of samples is not), and each image comes with the latent it was made from, so with
``--distill`` the student's mapping network takes the very same z and is pulled towards the
teacher's image (:func:`latentstudio.train.losses.reconstruction_loss`). Paired supervision
covers every mode of the teacher by construction, which the adversarial loss alone reaches
slowly.

Determinism, as for image data (:mod:`latentstudio.train.data`): the latents of step ``s``
are a function of ``(seed, s)`` only, so a resumed run draws exactly what the uninterrupted
run drew.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from latentstudio.data.errors import DatasetError
from latentstudio.nets.dcgan import DCGANGenerator

# Teachers that a Python package ships, by name: (package, weights file inside it, how to install).
PACKAGED_TEACHERS = {
    "gan-face-generate": ("gan_face_generate", "weights.tar", "pip install --no-deps gan-face-generate==1.1.1"),
}
LATENT_STREAM = 0x7EAC  # keeps teacher latents apart from the trainer's own draws of the same step
HELD_OUT_STEP = 2**62  # the latents of samples(): a step no run reaches
REFERENCE_SEED = 1000  # the held-out teacher images models are scored against (tools/compare_models.py)


def teacher_file(spec: str) -> Path:
    """The checkpoint ``spec`` names: a packaged teacher's weights, or a path."""
    if spec not in PACKAGED_TEACHERS:
        return Path(spec)
    package, weights, install = PACKAGED_TEACHERS[spec]
    found = importlib.util.find_spec(package)  # locates the package without running its code
    if found is None or not found.submodule_search_locations:
        raise DatasetError(f"--teacher {spec}: the package is not installed ({install})")
    return Path(next(iter(found.submodule_search_locations))) / weights


def load_teacher(spec: str, device: torch.device | str = "cpu") -> DCGANGenerator:
    """The teacher ``spec`` names, on ``device``; :class:`DatasetError` (one line) when unusable."""
    from latentstudio.io.dcgan import read_dcgan
    from latentstudio.io.errors import ModelLoadError

    try:
        return read_dcgan(teacher_file(spec)).to(device)
    except ModelLoadError as error:
        raise DatasetError(f"--teacher: {error}") from None


class TeacherData:
    """Endless batches ``(images uint8 [n, C, R, R], labels [n, 0], z [n, z_dim])`` from a teacher.

    Images are quantised to uint8 exactly as a data set of the teacher's samples would store
    them, and area-downsampled when training below the teacher's resolution.
    """

    label_dim = 0
    skipped: list = []

    def __init__(self, teacher: DCGANGenerator, resolution: int, seed: int, name: str = "teacher") -> None:
        if resolution > teacher.img_resolution or teacher.img_resolution % resolution:
            raise DatasetError(f"--teacher makes {teacher.img_resolution}x{teacher.img_resolution} images; "
                               f"train at {teacher.img_resolution} or a power of two below, not {resolution}")
        self.teacher, self.resolution, self.seed, self.name = teacher, resolution, seed, name
        self.num_channels = teacher.img_channels
        self.z_dim = teacher.z_dim

    def latents(self, step: int, batch: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """This process's share of step ``step``'s teacher latents (a function of ``(seed, step)``)."""
        state = np.random.SeedSequence([self.seed, LATENT_STREAM, step]).generate_state(1, dtype=np.uint64)[0]
        z = torch.randn([batch, self.z_dim], generator=torch.Generator().manual_seed(int(state >> 1)))
        per_process = batch // world_size
        return z[rank * per_process:(rank + 1) * per_process]

    @torch.no_grad()
    def images(self, z: torch.Tensor) -> torch.Tensor:
        """uint8 ``[n, C, R, R]`` teacher images of ``z``."""
        device = next(self.teacher.parameters()).device
        images = self.teacher(z.to(device)).clamp(-1, 1)
        if self.resolution < self.teacher.img_resolution:
            images = F.avg_pool2d(images, self.teacher.img_resolution // self.resolution)
        return ((images + 1) * 127.5).round().to(torch.uint8).cpu()

    def batches(self, start_step: int, batch: int, rank: int = 0,
                world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        step = start_step
        while True:
            z = self.latents(step, batch, rank, world_size)
            yield self.images(z), torch.zeros([len(z), 0]), z
            step += 1

    def samples(self, count: int, chunk: int = 256) -> np.ndarray:
        """``count`` HWC uint8 teacher images ``[count, R, R, C]`` (a reals grid, a reference set).

        Drawn from a stream no training step uses, so with the run's seed they are held out."""
        z = self.latents(HELD_OUT_STEP, count)
        return np.concatenate([self.images(z[start:start + chunk]).permute(0, 2, 3, 1).numpy()
                               for start in range(0, count, chunk)])

    def __len__(self) -> int:
        return 0  # endless: no fixed number of images
