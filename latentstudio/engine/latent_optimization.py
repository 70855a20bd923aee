"""One loop for everything that fits a latent by gradient descent through a generator.

Projection (a photo -> the latent that draws it) and DragGAN point editing are the same
machinery with different objectives: Adam over some tensors (``w``, ``w+``, a few layers of
``w+``, noise buffers), a learning-rate schedule, a loss computed by a forward pass through
``G.synthesis``, something to do after each update (renormalise noise, track points), a
report every few steps with the current image, and a way to stop. This module owns that loop;
an objective owns only what is particular to it (:class:`Objective`).

The loop never touches Qt and never raises for a cancellation: :func:`optimize` returns an
:class:`OptimizationResult` saying why it stopped (``"done"``, ``"converged"`` or
``"cancelled"``), so a GUI worker and a CLI progress bar can drive it alike.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from latentstudio.engine.renderer import to_uint8

Schedule = Callable[[int, int], float]  # (step, total steps) -> learning-rate multiplier
STOP_REASONS = ("done", "converged", "cancelled")


@dataclass
class StepOutput:
    """What one forward pass of an objective produced.

    ``loss`` is the scalar to minimise; ``values`` its named parts (plain floats, for the
    history and live curves); ``image`` the NCHW image of this step (about [-1, 1]), shown
    to the callback, or a function returning it, called only when a report is made (an
    objective whose loss does not read the image then skips rendering it on the other
    steps); ``state`` anything else the callback should see (e.g. tracked points).
    ``converged``: the variables as they are already meet the objective's goal (DragGAN
    checks its points before each update): the loop reports this step and stops without
    updating.
    """

    loss: torch.Tensor
    values: dict[str, float] = field(default_factory=dict)
    image: torch.Tensor | Callable[[], torch.Tensor] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    converged: bool = False


@dataclass
class Progress:
    """A report to the callback: after ``step`` of ``total`` updates.

    ``image`` is H x W x C uint8 (converted only when a callback receives it), ``ws`` the
    current latents ``[1, num_ws, w_dim]`` (detached), ``values`` and ``state`` as in
    :class:`StepOutput`, ``elapsed_s`` seconds since the loop started.
    """

    step: int
    total: int
    values: dict[str, float]
    image: np.ndarray | None
    ws: torch.Tensor | None
    state: dict[str, Any]
    elapsed_s: float

    @property
    def seconds_left(self) -> float:
        """A linear estimate of the time to the last step."""
        return self.elapsed_s / max(self.step, 1) * (self.total - self.step)


class Objective(Protocol):
    """What an optimisation problem supplies to :func:`optimize`."""

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Adam parameter groups: ``{"params": [tensor, ...], "lr": base_lr}`` (``lr`` optional)."""

    def forward(self, step: int, total: int) -> StepOutput:
        """Render with the current variables and compute the loss (with autograd)."""

    def after_step(self, step: int, output: StepOutput) -> bool:
        """Called after each update, without autograd; return True when converged (stop now)."""

    def current_ws(self) -> torch.Tensor:
        """The latents as they are now, ``[1, num_ws, w_dim]``, for reports and the result."""


@dataclass
class OptimizationResult:
    """How a run ended: ``steps`` updates made, ``reason`` in :data:`STOP_REASONS`,
    ``history`` one ``values`` dict per forward pass (one per update, plus the last one
    when a ``StepOutput`` said ``converged``), ``seconds`` of wall time."""

    steps: int
    reason: str
    history: list[dict[str, float]]
    seconds: float


def constant_schedule(step: int, total: int) -> float:
    return 1.0


def ramp_schedule(rampup: float = 0.05, rampdown: float = 0.25) -> Schedule:
    """NVlabs' projector schedule: linear warm-up over the first ``rampup`` of the run, a
    cosine ramp down over the last ``rampdown``, full rate in between."""

    def schedule(step: int, total: int) -> float:
        t = step / max(total, 1)
        down = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
        down = 0.5 - 0.5 * math.cos(down * math.pi)
        up = min(1.0, t / rampup) if rampup > 0 else 1.0
        return down * up

    return schedule


def optimize(
    objective: Objective,
    steps: int,
    lr: float,
    schedule: Schedule = constant_schedule,
    callback: Callable[[Progress], None] | None = None,
    every: int = 1,
    should_stop: Callable[[], bool] | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
) -> OptimizationResult:
    """Run Adam on ``objective`` for up to ``steps`` updates.

    ``lr`` is the base rate of groups that name none; ``schedule(step, steps)`` scales every
    group's base rate. ``callback`` gets a :class:`Progress` every ``every`` steps, at the
    last step and when the objective converges. ``should_stop()`` is polled before each
    step; when it returns True the loop ends with ``reason="cancelled"`` and the variables
    hold the last update (a cancelled run still has a usable result). An objective
    converges in ``after_step`` (after an update) or by a ``StepOutput`` marked
    ``converged`` (before one); either ends the loop with ``reason="converged"``.
    """
    if steps < 0:
        raise ValueError(f"steps must be zero or more, not {steps}")
    if every < 1:
        raise ValueError(f"every must be at least 1, not {every}")
    groups = objective.parameter_groups()
    base_rates = [group.get("lr", lr) for group in groups]
    optimizer = torch.optim.Adam([{**group, "lr": rate} for group, rate in zip(groups, base_rates)], betas=betas)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    reason = "done"
    done = 0
    for step in range(steps):
        if should_stop is not None and should_stop():
            reason = "cancelled"
            break
        scale = schedule(step, steps)
        for group, rate in zip(optimizer.param_groups, base_rates):
            group["lr"] = rate * scale
        output = objective.forward(step, steps)
        if output.converged:
            history.append(dict(output.values))
            if callback is not None:
                callback(_progress(objective, output, done, steps, start))
            reason = "converged"
            break
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        with torch.no_grad():
            converged = bool(objective.after_step(step, output))
        done = step + 1
        history.append(dict(output.values))
        if callback is not None and (done % every == 0 or done == steps or converged):
            callback(_progress(objective, output, done, steps, start))
        if converged:
            reason = "converged"
            break
    return OptimizationResult(steps=done, reason=reason, history=history, seconds=time.perf_counter() - start)


def _progress(objective: Objective, output: StepOutput, step: int, total: int, start: float) -> Progress:
    image = output.image() if callable(output.image) else output.image
    image = to_uint8(image.detach()[:1])[0] if image is not None else None
    return Progress(step=step, total=total, values=dict(output.values), image=image,
                    ws=objective.current_ws().detach().clone(), state=dict(output.state),
                    elapsed_s=time.perf_counter() - start)


def trainable_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A float32 leaf copy of ``tensor`` that collects gradients (the optimised variable)."""
    return tensor.detach().to(torch.float32).clone().requires_grad_(True)


def noise_buffers(G: torch.nn.Module) -> list[torch.Tensor]:
    """The constant-noise buffers of a StyleGAN2 synthesis network, 4x4 first (StyleGAN3: none).

    Objectives that optimise noise (projection) set ``requires_grad`` on these of a private
    copy of G, never on the caller's model.
    """
    return [buffer for name, buffer in G.synthesis.named_buffers() if name.endswith("noise_const")]

