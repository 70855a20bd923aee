"""The StyleGAN2 training loop: one :class:`Trainer` owns G, D, G_ema, optimizers and state.

Each step runs the four NVlabs phases on one global batch: G main (adversarial loss), G reg
(path length, every ``pl_interval`` steps), D main (adversarial loss on real and fake, WGAN-GP
penalty if chosen), D reg (R1, every ``r1_interval`` steps), then updates G_ema. Lazy
regularisation scales the regulariser by its interval and Adam's lr and betas by
``interval / (interval + 1)``, so training follows the same trajectory as if it ran every step.

Randomness: at the start of every step all random generators (Python, NumPy, torch CPU and
CUDA) are re-seeded from ``(seed, rank, step)``, and the data order is a function of
``(seed, step)`` too (:mod:`latentstudio.train.data`). A run resumed from the checkpoint of
step ``s`` therefore draws exactly the latents, noise, augmentations and images the
uninterrupted run drew from step ``s`` on; the generators' internal states never need saving.
The rest of what makes the future (optimizer moments, ADA's ``p``, the path-length mean,
G_ema) is in the checkpoint.

Mixed precision: on CUDA the networks run their highest-resolution blocks in float16 (with
activation clamping), as NVlabs does; gradients are sanitised (NaN -> 0) before each step.
"""
from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from latentstudio.train import losses
from latentstudio.train.augment import Augmenter
from latentstudio.train.config import (
    TrainOptions,
    build_network,
    discriminator_kwargs,
    ema_beta,
    generator_kwargs,
    lazy_adam_settings,
)
from latentstudio.train.distributed import ProcessInfo, all_reduce_sum
from latentstudio.train.stats import TickStats

PL_DECAY = 0.01  # running mean of path lengths: weight of the new batch
PL_BATCH_SHRINK = 2  # path length is measured on half the batch (it is a mean; cheaper)


def seed_step(seed: int, rank: int, step: int) -> None:
    """Seed every random generator for one step of one process."""
    value = int(np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0] >> 1)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)  # CPU and every CUDA device


class GeneratorPass(nn.Module):
    """One generator pass (mapping, style mixing, synthesis) as a single module, so that DDP,
    which synchronises gradients of what runs through ``forward``, sees all of it."""

    def __init__(self, G: nn.Module, mixing_prob: float) -> None:
        super().__init__()
        self.G = G
        self.mixing_prob = mixing_prob

    def forward(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False,
                mix: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [N, z_dim]``, ``c [N, c_dim]`` -> images ``[N, C, R, R]`` and the ``ws`` used.

        ``mix=False`` for distillation pairs: a mixed image is no longer the teacher's image of z."""
        ws = self.G.mapping(z, c, update_emas=update_emas)  # (N, num_ws, w_dim)
        if mix and self.mixing_prob > 0 and float(torch.rand([])) < self.mixing_prob:
            # Style mixing regularisation: from a random layer on, use another latent's styles,
            # so that the network cannot rely on neighbouring layers being correlated.
            cutoff = int(torch.randint(1, ws.shape[1], []))
            other = self.G.mapping(torch.randn_like(z), c)
            ws = torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)
        return self.G.synthesis(ws, noise_mode="random"), ws


class Trainer:
    """Owns the networks and optimisation state of one process of one run."""

    def __init__(self, options: TrainOptions, c_dim: int, device: torch.device,
                 process: ProcessInfo = ProcessInfo(), init_networks: dict[str, nn.Module] | None = None,
                 label_bank: torch.Tensor | None = None) -> None:
        """``label_bank``: the data set's labels ``[num_images, c_dim]`` (conditional runs), from
        which the labels of generated images are drawn."""
        self.options = options
        self.device = device
        self.process = process
        self.batch = options.batch_size
        if self.batch % process.world_size:
            raise ValueError(f"batch {self.batch} is not divisible by the number of processes ({process.world_size})")
        self.batch_per_process = self.batch // process.world_size
        self.c_dim = c_dim
        self.label_bank = label_bank if c_dim > 0 else None
        self.step = 0

        torch.manual_seed(options.seed)  # identical initial weights in every process
        G, D, G_ema = self._build_networks(init_networks or {})
        self.G = G.train().requires_grad_(False).to(device)
        self.D = D.train().requires_grad_(False).to(device)
        self.G_ema = G_ema.eval().requires_grad_(False).to(device)

        self.G_pass = GeneratorPass(self.G, options.mixing_prob)
        self.G_pass_ddp: nn.Module = self.G_pass
        self.D_ddp: nn.Module = self.D
        if process.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            device_ids = [device.index] if device.type == "cuda" else None
            with _trainable(self.G), _trainable(self.D):  # DDP registers what requires grad now
                self.G_pass_ddp = DDP(self.G_pass, device_ids=device_ids)
                self.D_ddp = DDP(self.D, device_ids=device_ids)

        g_lr, g_betas = lazy_adam_settings(options.g_lr, options.pl_interval if options.path_length_weight > 0 else 0)
        d_lr, d_betas = lazy_adam_settings(options.d_lr, options.r1_interval if options.r1_gamma > 0 else 0)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=g_lr, betas=g_betas, eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=d_lr, betas=d_betas, eps=1e-8)
        self.augmenter = Augmenter(options.augment, options.augment_p, options.ada_target, options.ada_kimg)
        self.pl_mean = torch.zeros([], device=device)
        self.stats = TickStats(device)

    # -- construction and state --------------------------------------------------------------

    def _build_networks(self, init: dict[str, nn.Module]) -> tuple[nn.Module, nn.Module, nn.Module]:
        from latentstudio.nets.stylegan2 import Discriminator, Generator

        o = self.options
        G = init.get("G") or init.get("G_ema") or build_network(Generator, generator_kwargs(o, self.c_dim))
        D = init.get("D") or build_network(Discriminator, discriminator_kwargs(o, self.c_dim, self.batch_per_process))
        G_ema = init.get("G_ema") or copy.deepcopy(G)
        if init:
            if getattr(G, "kind", "stylegan2") != "stylegan2":
                raise ValueError(f"--init: only StyleGAN2 generators can be trained here, not {G.kind}")
            G, G_ema = copy.deepcopy(G), copy.deepcopy(G_ema)  # G and G_ema may be one object in a G-only file
            for name, network in (("generator", G), ("discriminator", D)):
                if network.img_resolution != o.resolution:
                    raise ValueError(f"--init model's {name} is {network.img_resolution}x{network.img_resolution}, "
                                     f"the training resolution is {o.resolution}")
                if network.c_dim != self.c_dim:
                    raise ValueError(f"--init model's {name} has c_dim={network.c_dim}, the data has {self.c_dim} labels")
        return G, D, G_ema

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def state_dict(self) -> dict[str, Any]:
        """Everything besides the networks that the next steps depend on."""
        return {
            "step": self.step,
            "images_seen": self.step * self.batch,
            "options": self.options.to_dict(),
            "world_size": self.process.world_size,
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "augment": self.augmenter.state_dict(),
            "pl_mean": self.pl_mean.detach().cpu(),
            "rng": {"scheme": "reseeded every step from (seed, rank, step)", "seed": self.options.seed},
            "data": {"order": "permutation per epoch from (seed, epoch)", "position": self.step * self.batch},
        }

    def load_state_dict(self, state: dict[str, Any], networks: dict[str, nn.Module]) -> None:
        """Restore a checkpoint written by :meth:`state_dict` and its network file."""
        for name, target in self.networks().items():
            target.load_state_dict(networks[name].state_dict())
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.augmenter.load_state_dict(state["augment"])
        self.pl_mean = state["pl_mean"].to(self.device)
        self.step = int(state["step"])

    @property
    def images_seen(self) -> int:
        return self.step * self.batch

    def learning_rates(self) -> dict[str, float]:
        return {"lr_G": self.opt_G.param_groups[0]["lr"], "lr_D": self.opt_D.param_groups[0]["lr"]}

    # -- one step ------------------------------------------------------------------------------

    def _latents(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn([n, self.G.z_dim], device=self.device)
        c = self.fake_labels(n)
        return z, c

    def fake_labels(self, n: int) -> torch.Tensor:
        """Labels for generated images, drawn from the data set's label distribution."""
        if self.label_bank is None:
            return torch.zeros([n, self.c_dim], device=self.device)
        pick = torch.randint(0, len(self.label_bank), [n])
        return self.label_bank[pick].to(self.device)

    def _optimizer_step(self, optimizer: torch.optim.Optimizer, network: nn.Module) -> None:
        for param in network.parameters():
            if param.grad is not None:
                torch.nan_to_num(param.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=param.grad)
        optimizer.step()

    def train_step(self, real_uint8: torch.Tensor, real_c: torch.Tensor,
                   pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """One step on this process's share of the batch: ``uint8 [B/P, C, R, R]``, labels ``[B/P, c_dim]``.

        ``pairs``: teacher latents ``[B/P, z_dim]`` and their uint8 images, for distillation.
        Losses and accuracies go to ``self.stats``, summed until the tick ends."""
        o = self.options
        seed_step(o.seed, self.process.rank, self.step)
        real = real_uint8.to(self.device, non_blocking=True).to(torch.float32) / 127.5 - 1
        real_c = real_c.to(self.device, non_blocking=True)
        n = real.shape[0]

        # G main: make D call the fakes real, and (distilling) match the teacher's image of each z.
        with _trainable(self.G):
            if pairs is not None and o.distill > 0:
                z = pairs[0].to(self.device)
                target = pairs[1].to(self.device).to(torch.float32) / 127.5 - 1
                c = torch.zeros([len(z), self.c_dim], device=self.device)
                fake, _ = self.G_pass_ddp(z, c, mix=False)
            else:
                target = None
                z, c = self._latents(n)
                fake, _ = self.G_pass_ddp(z, c)
            g_total = fake.new_zeros([])
            if o.adversarial > 0:
                real_for_g = None
                if losses.needs_real_logits(o.loss):
                    with torch.no_grad():
                        real_for_g = self.D(self.augmenter(real), real_c)
                g_loss = losses.generator_loss(o.loss, self.D(self.augmenter(fake), c), real_for_g)
                g_total = g_total + o.adversarial * g_loss.mean()
                self.stats.add("G_loss", g_loss)
            if target is not None:
                distance = losses.reconstruction_loss(o.distill_loss, fake, target)
                g_total = g_total + o.distill * distance.mean()
                self.stats.add("distill", distance)
            self.opt_G.zero_grad(set_to_none=True)
            g_total.backward()
            self._optimizer_step(self.opt_G, self.G)

        # G reg: path-length regularisation, lazily.
        if o.path_length_weight > 0 and self.step % o.pl_interval == 0:
            with _trainable(self.G):
                z, c = self._latents(max(1, n // PL_BATCH_SHRINK))
                fake, ws = self.G_pass_ddp(z, c)
                lengths = losses.path_lengths(fake, ws)
                batch_mean = all_reduce_sum(lengths.detach().mean().reshape(1)) / self.process.world_size
                self.pl_mean = self.pl_mean.lerp(batch_mean[0], PL_DECAY)
                penalty = (lengths - self.pl_mean).square()
                self.opt_G.zero_grad(set_to_none=True)
                # "+ 0 * image" keeps every G parameter in the graph (the toRGB biases do not move
                # path lengths), so that DDP sees a gradient, zero or not, for each of them.
                pl_loss = penalty.mean() * o.path_length_weight * o.pl_interval + 0 * fake[:, 0, 0, 0].sum()
                pl_loss.backward()
                self._optimizer_step(self.opt_G, self.G)
            self.stats.add("PL", penalty)

        # D main: fakes down, reals up (and the gradient penalty for WGAN-GP).
        with _trainable(self.D):
            z, c = self._latents(n)
            with torch.no_grad():
                fake, _ = self.G_pass(z, c, update_emas=True)
            fake_logits = self.D_ddp(self.augmenter(fake), c)
            real_logits = self.D_ddp(self.augmenter(real), real_c)
            d_loss = losses.discriminator_loss(o.loss, real_logits, fake_logits, o.label_smoothing)
            total = d_loss.mean()
            if o.loss == "wgan-gp":
                mixed = losses.interpolate_for_gp(real, fake)
                total = total + o.gp_weight * losses.gradient_penalty(self.D_ddp(mixed, real_c), mixed).mean()
            self.opt_D.zero_grad(set_to_none=True)
            total.backward()
            self._optimizer_step(self.opt_D, self.D)
        self.stats.add("D_loss", d_loss)
        # How real D finds the reals and fakes: absolutely, or (relativistic losses) against their pairs.
        relativistic = losses.needs_real_logits(o.loss)
        realness = real_logits.detach() - (fake_logits.detach() if relativistic else 0)
        fakeness = -realness if relativistic else fake_logits.detach()
        self.stats.add("D_real_acc", (realness > 0).float().flatten())
        self.stats.add("D_fake_acc", (fakeness < 0).float().flatten())
        signs = all_reduce_sum(torch.stack([realness.sign().sum(), torch.tensor(float(n), device=self.device)]))
        self.augmenter.observe(float(signs[0]), int(signs[1]), self.batch)

        # D reg: R1 on real images (and R2 on fakes, for r3gan), lazily.
        if o.r1_gamma > 0 and self.step % o.r1_interval == 0:
            with _trainable(self.D):
                real_in = real.detach().requires_grad_(True)
                logits = self.D_ddp(self.augmenter(real_in), real_c)
                penalty = losses.r1_penalty(logits, real_in)
                # "+ 0 * logits": D's output bias does not change input gradients; keep it in the graph for DDP.
                reg_loss = penalty.mean() + 0 * logits.sum()
                if o.loss == "r3gan":
                    fake_in = fake.detach().requires_grad_(True)
                    fake_logits = self.D_ddp(self.augmenter(fake_in), c)
                    r2 = losses.r1_penalty(fake_logits, fake_in)
                    reg_loss = reg_loss + r2.mean() + 0 * fake_logits.sum()
                    self.stats.add("R2", r2)
                self.opt_D.zero_grad(set_to_none=True)
                (reg_loss * (o.r1_gamma / 2) * o.r1_interval).backward()
                self._optimizer_step(self.opt_D, self.D)
            self.stats.add("R1", penalty)

        self.step += 1
        self._update_ema()

    @torch.no_grad()
    def _update_ema(self) -> None:
        beta = ema_beta(self.options, self.batch, self.images_seen)
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)


class _trainable:
    """``requires_grad`` on for one network during a phase (off again after)."""

    def __init__(self, network: nn.Module) -> None:
        self.network = network

    def __enter__(self) -> None:
        self.network.requires_grad_(True)

    def __exit__(self, *exc: object) -> None:
        self.network.requires_grad_(False)



def write_reals_grid(path: Path, dataset: torch.utils.data.Dataset, count: int) -> Path:
    """The first ``count`` training images as a grid (what G should learn to produce)."""
    from latentstudio.train.samples import save_grid

    images = [np.asarray(dataset[i][0]).transpose(1, 2, 0) for i in range(min(count, len(dataset)))]
    return save_grid(path, images)
