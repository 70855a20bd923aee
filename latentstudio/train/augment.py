"""Differentiable augmentation, so a discriminator trained on a few thousand images does not
memorise them (DiffAugment, Zhao et al. 2020; adaptive strength as in ADA, Karras et al. 2020).

Every image D sees, real or generated, goes through the same random augmentations, and they
are differentiable, so G gets gradients through them and never learns to produce augmented
images ("leaking"). Each of three groups (colour, translation, cutout) is applied to each
image with probability ``p``. With ``mode="ada"`` ``p`` follows an overfitting signal: the
mean sign of D's outputs on real images; above ``target`` D is too sure about the training
images, so ``p`` goes up, otherwise down. ``p`` and the pending statistics are part of the
training state, so a resumed run continues with the same strength.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _per_sample(p: float, x: torch.Tensor) -> torch.Tensor:
    """Boolean ``[N, 1, 1, 1]``: which images get one augmentation group."""
    return (torch.rand([x.shape[0], 1, 1, 1], device=x.device) < p)


def augment_color(x: torch.Tensor, p: float) -> torch.Tensor:
    """Brightness shift, saturation and contrast scaling, about each image's own means."""
    n = x.shape[0]
    use = _per_sample(p, x)
    brightness = (torch.rand([n, 1, 1, 1], device=x.device) - 0.5) * use
    x = x + brightness
    luma = x.mean(dim=1, keepdim=True)  # (N, 1, H, W)
    saturation = torch.where(use, torch.rand([n, 1, 1, 1], device=x.device) * 2, torch.ones_like(brightness))
    x = (x - luma) * saturation + luma
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    contrast = torch.where(use, torch.rand([n, 1, 1, 1], device=x.device) + 0.5, torch.ones_like(brightness))
    return (x - mean) * contrast + mean


def augment_translation(x: torch.Tensor, p: float, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size (integer pixels), filling with zeros."""
    n, _, h, w = x.shape
    use = _per_sample(p, x).view(n)
    sy, sx = max(1, int(h * ratio)), max(1, int(w * ratio))
    dy = torch.randint(-sy, sy + 1, [n], device=x.device) * use
    dx = torch.randint(-sx, sx + 1, [n], device=x.device) * use
    padded = F.pad(x, [sx, sx, sy, sy])  # (N, C, H + 2sy, W + 2sx)
    rows = torch.arange(h, device=x.device).view(1, h) + sy - dy.view(n, 1)  # (N, H)
    cols = torch.arange(w, device=x.device).view(1, w) + sx - dx.view(n, 1)  # (N, W)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2)


def augment_cutout(x: torch.Tensor, p: float, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` times the image size at a random place."""
    n, _, h, w = x.shape
    use = _per_sample(p, x).view(n, 1, 1)
    ch, cw = max(1, int(h * ratio)), max(1, int(w * ratio))
    top = torch.randint(0, h - ch + 1, [n, 1, 1], device=x.device)
    left = torch.randint(0, w - cw + 1, [n, 1, 1], device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)  # (N, H, W)
    keep = ~(inside & use)
    return x * keep.unsqueeze(1).to(x.dtype)


class Augmenter:
    """The augmentation pipeline with its probability ``p`` (fixed, or adapted by ADA)."""

    def __init__(self, mode: str, p: float = 0.0, target: float = 0.6, speed_kimg: float = 100.0,
                 adjust_interval: int = 4) -> None:
        assert mode in ("ada", "fixed", "none")
        self.mode = mode
        self.p = float(p) if mode != "none" else 0.0
        self.target = target
        self.speed_kimg = speed_kimg
        self.adjust_interval = adjust_interval
        self.sign_sum = 0.0  # sum of sign(D(real)) since the last adjustment
        self.sign_count = 0
        self.steps = 0  # D steps since the last adjustment

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.p <= 0:
            return images
        images = augment_color(images, self.p)
        images = augment_translation(images, self.p)
        return augment_cutout(images, self.p)

    def observe(self, sign_sum: float, count: int, batch: int) -> None:
        """Record ``sum(sign(D(real)))`` over ``count`` real images of one D step (summed over
        all processes) and adjust ``p`` every ``adjust_interval`` steps; ``batch`` is global."""
        if self.mode != "ada":
            return
        self.sign_sum += sign_sum
        self.sign_count += count
        self.steps += 1
        if self.steps < self.adjust_interval:
            return
        overfitting = self.sign_sum / max(self.sign_count, 1)  # E[sign(D(real))], in [-1, 1]
        step = batch * self.steps / (self.speed_kimg * 1000)
        self.p = float(min(max(self.p + (step if overfitting > self.target else -step), 0.0), 1.0))
        self.sign_sum, self.sign_count, self.steps = 0.0, 0, 0

    def state_dict(self) -> dict[str, float | int | str]:
        return {"mode": self.mode, "p": self.p, "sign_sum": self.sign_sum, "sign_count": self.sign_count,
                "steps": self.steps}

    def load_state_dict(self, state: dict[str, float | int | str]) -> None:
        self.p = float(state["p"])
        self.sign_sum = float(state["sign_sum"])
        self.sign_count = int(state["sign_count"])
        self.steps = int(state["steps"])
