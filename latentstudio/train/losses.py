"""GAN objectives and regularisers as pure functions of logits, images and latents.

All return per-sample values ``[N]``; the loop takes the mean. Logits are D's raw outputs
``[N, 1]``. ``ns`` is StyleGAN2's non-saturating logistic loss, ``hinge`` the SAGAN / BigGAN
hinge loss, ``wgan-gp`` the Wasserstein loss whose Lipschitz constraint is the gradient penalty
(plus a small drift term keeping real logits near zero, as in ProGAN), ``r3gan`` the
relativistic pairing loss of R3GAN (Huang et al. 2024): each fake is judged against a real,
``softplus(fake - real)`` for D, regularised by R1 on reals and R2 on fakes.

:func:`reconstruction_loss` is distillation's: how far a student's image is from the
teacher's image of the same latent.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

WGAN_DRIFT = 0.001


def discriminator_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       real_target: float = 1.0) -> torch.Tensor:
    """D's loss; ``real_target < 1`` is one-sided label smoothing (ns only: reals aim at 0.9)."""
    real, fake = real_logits.flatten(), fake_logits.flatten()
    if kind == "ns":
        # Binary cross-entropy with target real_target for reals and 0 for fakes.
        real_term = real_target * F.softplus(-real) + (1 - real_target) * F.softplus(real)
        return real_term + F.softplus(fake)
    if kind == "hinge":
        return F.relu(1 - real) + F.relu(1 + fake)
    if kind == "wgan-gp":
        return fake - real + WGAN_DRIFT * real.square()
    if kind == "r3gan":
        return F.softplus(fake - real)
    raise ValueError(f"unknown loss {kind!r}")


def generator_loss(kind: str, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
    """G's loss: make D call its images real (``r3gan``: more real than the paired real images)."""
    fake = fake_logits.flatten()
    if kind == "r3gan":
        if real_logits is None:
            raise ValueError("the r3gan generator loss pairs each fake with a real: give real_logits")
        return F.softplus(real_logits.flatten() - fake)
    if kind == "ns":
        return F.softplus(-fake)
    if kind in ("hinge", "wgan-gp"):
        return -fake
    raise ValueError(f"unknown loss {kind!r}")


def input_gradient_sq_norm(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """``||dD/dx||^2`` per sample, differentiable (for R1 and the gradient penalty)."""
    (grad,) = torch.autograd.grad(outputs=[logits.sum()], inputs=[images], create_graph=True)
    return grad.square().sum(dim=[1, 2, 3])  # (N,)


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): squared gradient norm of D on real images (R2: on fakes).

    Multiply by ``gamma / 2``; ``real_images`` must have ``requires_grad`` set before D ran.
    """
    return input_gradient_sq_norm(real_logits, real_images)


def interpolate_for_gp(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Random points on the lines between real and fake images, ready for D (requires grad)."""
    alpha = torch.rand([real.shape[0], 1, 1, 1], device=real.device)
    return real.detach().lerp(fake.detach(), alpha).requires_grad_(True)


def gradient_penalty(mixed_logits: torch.Tensor, mixed_images: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): ``(||dD/dx|| - 1)^2`` at the interpolated images."""
    norm = (input_gradient_sq_norm(mixed_logits, mixed_images) + 1e-12).sqrt()
    return (norm - 1).square()


def path_lengths(images: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
    """``||J_w^T y||`` per sample for a random image-space direction ``y`` (StyleGAN2 sec. 3.2).

    Path-length regularisation pulls these towards their running mean, so that a fixed step
    in W changes the image by a fixed amount, whatever the direction.
    """
    h, w = images.shape[2], images.shape[3]
    noise = torch.randn_like(images) / (h * w) ** 0.5
    (grad,) = torch.autograd.grad(outputs=[(images * noise).sum()], inputs=[ws], create_graph=True)
    return grad.square().sum(dim=2).mean(dim=1).sqrt()  # (N,)


def needs_real_logits(kind: str) -> bool:
    """Whether G's loss of ``kind`` compares against D's logits of real images."""
    return kind == "r3gan"


def reconstruction_loss(kind: str, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample distance ``[N]`` between images in [-1, 1] (distillation).

    ``l1``: mean absolute pixel difference. ``pyramid``: the same at full, 1/2, 1/4 and 1/8
    scale, summed, so that shape and colour (the coarse scales) weigh as much as detail:
    pixel losses alone spend most of their gradient on the high frequencies a small student
    cannot match yet.
    """
    if kind == "l1":
        return (image - target).abs().mean(dim=[1, 2, 3])
    if kind != "pyramid":
        raise ValueError(f"unknown reconstruction loss {kind!r}")
    total = image.new_zeros(image.shape[0])
    for level in range(4):
        if level:
            if image.shape[-1] < 2:
                break
            image, target = F.avg_pool2d(image, 2), F.avg_pool2d(target, 2)
        total = total + (image - target).abs().mean(dim=[1, 2, 3])
    return total
