"""Training options, the ``--cfg`` presets they start from, and building the networks.

A preset sizes the networks and the optimisation for a kind of data set and machine:
``tiny`` (tests, a first look on a laptop CPU), ``small`` (the default: a few thousand images
at 32 to 128 pixels, trainable on one consumer GPU or slowly on a CPU) and ``paper`` (the
StyleGAN2 paper's config F widths and 8-layer mapping). Anything a preset sets can be
overridden by an explicit option. ``TrainOptions`` is saved in every training state file,
so a resumed run continues with exactly the settings it started with.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports this module for --help; torch loads only when training
    from torch import nn

LOSSES = ("ns", "wgan-gp", "hinge", "r3gan")
DISTILL_LOSSES = ("pyramid", "l1")
AUGMENTS = ("ada", "fixed", "none")


@dataclass(frozen=True)
class Preset:
    """Network widths and optimisation defaults for one ``--cfg``."""

    channel_base: int  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int
    z_dim: int
    w_dim: int
    map_layers: int
    batch: int
    lr: float
    ema_kimg: float  # half-life of G_ema, in thousands of images
    pl_weight: float  # path-length regularisation weight (0: off)
    style_mixing: float  # probability of mixing two latents in one batch
    mbstd_group: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset(channel_base=512, channel_max=32, z_dim=64, w_dim=64, map_layers=2, batch=16,
                   lr=0.0025, ema_kimg=0.5, pl_weight=0.0, style_mixing=0.0, mbstd_group=4),
    "small": Preset(channel_base=2048, channel_max=128, z_dim=128, w_dim=128, map_layers=2, batch=32,
                    lr=0.0025, ema_kimg=10.0, pl_weight=0.0, style_mixing=0.9, mbstd_group=4),
    "paper": Preset(channel_base=32768, channel_max=512, z_dim=512, w_dim=512, map_layers=8, batch=32,
                    lr=0.002, ema_kimg=10.0, pl_weight=2.0, style_mixing=0.9, mbstd_group=4),
}
DEFAULT_PRESET = "small"


@dataclass
class TrainOptions:
    """Everything that defines a run. ``None`` means "take it from the preset"."""

    data: str  # image folder, zip archive, or "portraits"
    outdir: str
    resolution: int = 64
    cfg: str = DEFAULT_PRESET
    kimg: float = 500.0
    batch: int | None = None
    loss: str = "ns"
    lr_g: float | None = None
    lr_d: float | None = None
    gamma: float | None = None  # R1 weight; None: 0.0002 * resolution**2 / batch (NVlabs heuristic)
    gp_weight: float = 10.0  # WGAN-GP gradient penalty weight
    label_smoothing: float = 1.0  # target for real images in the ns loss; 0.9 is one-sided smoothing
    pl_weight: float | None = None
    style_mixing: float | None = None
    ema_kimg: float | None = None
    ema_rampup: float | None = 0.05  # G_ema half-life is at most this fraction of the images seen
    r1_interval: int = 16  # lazy regularisation: R1 every 16 D steps...
    pl_interval: int = 4  # ...and path length every 4 G steps
    augment: str = "ada"
    augment_p: float = 0.0  # starting (ada) or fixed probability of each augmentation
    ada_target: float = 0.6  # ada raises p while E[sign(D(real))] is above this
    ada_kimg: float = 100.0  # ada can move p from 0 to 1 in this many thousand images
    mirror: bool = False
    cond: bool = False  # train on the data set's labels (conditional G and D)
    portraits: int = 10000  # size of the procedural data set for data="portraits"
    seed: int = 0
    tick: float = 0.5  # kimg between stats lines and progress events
    snap: float = 5.0  # kimg between checkpoints and sample grids
    keep: int = 3  # checkpoints kept on disk
    init: str | None = None  # fine-tune from this model file
    workers: int | None = None  # data loader worker processes; None: 2 with CUDA, 0 on a CPU
    device: str | None = None  # None: cuda if available
    z_dim: int | None = None  # None: from the preset (or the teacher's, when distilling)
    teacher: str | None = None  # a DCGAN checkpoint (or "gan-face-generate"): its images on the fly are the data
    distill: float = 0.0  # weight of the paired reconstruction loss G(z) ~ teacher(z) (needs --teacher)
    distill_loss: str = "pyramid"  # pyramid: L1 at 1, 1/2, 1/4, 1/8 scale; l1: L1 of the pixels
    adversarial: float = 1.0  # weight of G's adversarial loss (0 with --distill: pure distillation)

    def __post_init__(self) -> None:
        if self.cfg not in PRESETS:
            raise ValueError(f"unknown --cfg {self.cfg!r} (choose from {', '.join(PRESETS)})")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown --loss {self.loss!r} (choose from {', '.join(LOSSES)})")
        if self.augment not in AUGMENTS:
            raise ValueError(f"unknown --augment {self.augment!r} (choose from {', '.join(AUGMENTS)})")
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"--res must be a power of two >= 8, not {self.resolution}")
        if self.batch is not None and self.batch < 1:
            raise ValueError("--batch must be positive")
        if self.distill_loss not in DISTILL_LOSSES:
            raise ValueError(f"unknown --distill-loss {self.distill_loss!r} (choose from {', '.join(DISTILL_LOSSES)})")
        if self.distill < 0 or self.adversarial < 0 or self.distill == self.adversarial == 0:
            raise ValueError("--distill and --adversarial are non-negative weights, not both 0")
        if self.distill > 0 and not self.teacher:
            raise ValueError("--distill learns from a teacher's pairs: give --teacher")
        if self.teacher and self.cond:
            raise ValueError("--cond: a teacher's images have no labels")
        if self.z_dim is not None and self.z_dim < 1:
            raise ValueError("--z-dim must be positive")
        if not 0.0 < self.label_smoothing <= 1.0:
            raise ValueError("--label-smoothing is the target for real images, in (0, 1]")

    @property
    def preset(self) -> Preset:
        return PRESETS[self.cfg]

    @property
    def batch_size(self) -> int:
        return self.batch or self.preset.batch

    @property
    def g_lr(self) -> float:
        return self.lr_g if self.lr_g is not None else self.preset.lr

    @property
    def d_lr(self) -> float:
        return self.lr_d if self.lr_d is not None else self.preset.lr

    @property
    def r1_gamma(self) -> float:
        """R1 weight (and R2's, for r3gan)."""
        if self.loss == "wgan-gp":
            return 0.0  # the gradient penalty already constrains D
        if self.gamma is not None:
            return self.gamma
        return 0.0002 * self.resolution**2 / self.batch_size

    @property
    def path_length_weight(self) -> float:
        return self.pl_weight if self.pl_weight is not None else self.preset.pl_weight

    @property
    def mixing_prob(self) -> float:
        return self.style_mixing if self.style_mixing is not None else self.preset.style_mixing

    @property
    def ema_half_life_kimg(self) -> float:
        return self.ema_kimg if self.ema_kimg is not None else self.preset.ema_kimg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainOptions:
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


def generator_kwargs(options: TrainOptions, c_dim: int, img_channels: int = 3) -> dict[str, Any]:
    """NVlabs-style ``Generator`` init kwargs for ``options`` (skip architecture)."""
    p = options.preset
    return dict(
        z_dim=options.z_dim or p.z_dim, c_dim=c_dim, w_dim=p.w_dim, img_resolution=options.resolution, img_channels=img_channels,
        mapping_kwargs=dict(num_layers=p.map_layers),
        channel_base=p.channel_base, channel_max=p.channel_max, num_fp16_res=4, conv_clamp=256,
    )


def discriminator_kwargs(options: TrainOptions, c_dim: int, batch_per_process: int, img_channels: int = 3) -> dict[str, Any]:
    """NVlabs-style ``Discriminator`` init kwargs for ``options`` (resnet architecture)."""
    p = options.preset
    group = min(p.mbstd_group, batch_per_process)
    while batch_per_process % group:  # the minibatch-std group must divide each process's batch
        group -= 1
    return dict(
        c_dim=c_dim, img_resolution=options.resolution, img_channels=img_channels, architecture="resnet",
        channel_base=p.channel_base, channel_max=p.channel_max, num_fp16_res=4, conv_clamp=256,
        epilogue_kwargs=dict(mbstd_group_size=group),
    )


def build_network(cls: type[nn.Module], init_kwargs: dict[str, Any]) -> nn.Module:
    """Construct a StyleGAN2 network tagged so :func:`latentstudio.io.save_native` can store it."""
    network = cls(**init_kwargs)
    network.kind = "stylegan2"
    network.init_kwargs = init_kwargs
    return network


def ema_beta(options: TrainOptions, batch: int, images_seen: int) -> float:
    """Per-step decay of G_ema: half-life ``ema_kimg``, shortened early in training by ``ema_rampup``."""
    half_life = options.ema_half_life_kimg * 1000
    if options.ema_rampup is not None:
        half_life = min(half_life, images_seen * options.ema_rampup)
    return 0.5 ** (batch / max(half_life, 1e-8))


def lazy_adam_settings(lr: float, interval: int) -> tuple[float, tuple[float, float]]:
    """Adam lr and betas when a regulariser runs only every ``interval`` steps.

    The optimizer then takes ``interval + 1`` steps for every ``interval`` of plain training,
    so lr and the moment decay are scaled by ``interval / (interval + 1)`` (StyleGAN2 appendix B).
    """
    ratio = interval / (interval + 1) if interval > 0 else 1.0
    return lr * ratio, (0.0 ** ratio, 0.99 ** ratio)
