"""The shared latent-optimisation loop: it descends, schedules, reports, converges and cancels."""
from __future__ import annotations

import math

import pytest
import torch

from latentstudio.engine.latent_optimization import (
    StepOutput,
    noise_buffers,
    optimize,
    ramp_schedule,
    trainable_copy,
)
from latentstudio.engine.recipe import EditRecipe, compose_ws
from latentstudio.io import load_model


class FitImage:
    """Pixel L2 between G(w+) and a target image: the simplest objective."""

    def __init__(self, G, target, start, tolerance=0.0):
        self.G, self.target, self.tolerance = G, target, tolerance
        self.ws = trainable_copy(start)
        self.after_calls = 0

    def parameter_groups(self):
        return [{"params": [self.ws]}]

    def forward(self, step, total):
        image = self.G.synthesis(self.ws, noise_mode="const")
        loss = (image - self.target).square().mean()
        return StepOutput(loss=loss, values={"mse": float(loss.detach())}, image=image, state={"step": step})

    def after_step(self, step, output):
        self.after_calls += 1
        return output.values["mse"] < self.tolerance

    def current_ws(self):
        return self.ws


@pytest.fixture(scope="module")
def problem(fixtures_dir):
    G = load_model(fixtures_dir / "sg2_skip32.pkl", device="cpu")
    target_ws = compose_ws(G, EditRecipe(seed=5))
    target_ws = target_ws + 0.5 * torch.randn(target_ws.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = G.synthesis(target_ws, noise_mode="const")
    start = G.mapping.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1)
    return G, target, start


def test_adam_on_the_latent_lowers_the_loss_and_reports(problem):
    G, target, start = problem
    objective = FitImage(G, target, start)
    reports = []
    result = optimize(objective, steps=30, lr=0.05, callback=reports.append, every=10)
    assert result.reason == "done" and result.steps == 30 and len(result.history) == 30
    assert result.history[-1]["mse"] < 0.5 * result.history[0]["mse"]
    assert [r.step for r in reports] == [10, 20, 30]
    last = reports[-1]
    assert last.image.shape == (32, 32, 3) and last.image.dtype.name == "uint8"
    assert last.ws.shape == (1, G.num_ws, G.w_dim) and not last.ws.requires_grad
    assert last.state == {"step": 29} and last.seconds_left == 0
    assert not any(p.requires_grad for p in G.parameters())  # the model itself is never trained


def test_convergence_stops_early_and_cancellation_keeps_the_last_update(problem):
    G, target, start = problem
    converging = FitImage(G, target, start, tolerance=math.inf)
    reports = []
    result = optimize(converging, steps=50, lr=0.05, callback=reports.append, every=100)
    assert (result.reason, result.steps, len(reports)) == ("converged", 1, 1)

    calls = []
    cancelled = FitImage(G, target, start)
    result = optimize(cancelled, steps=50, lr=0.05, should_stop=lambda: len(calls.append(0) or calls) > 3)
    assert (result.reason, result.steps, cancelled.after_calls) == ("cancelled", 3, 3)
    assert not torch.equal(cancelled.ws.detach(), start)


def test_ramp_schedule_warms_up_and_cools_down():
    schedule = ramp_schedule(rampup=0.1, rampdown=0.5)
    rates = [schedule(step, 100) for step in range(100)]
    assert rates[0] == 0 and rates[5] == pytest.approx(0.5)
    assert rates[10:50] == [1.0] * 40
    assert all(a >= b for a, b in zip(rates[50:], rates[51:])) and rates[99] < 0.01


def test_zero_steps_and_bad_arguments(problem):
    G, target, start = problem
    assert optimize(FitImage(G, target, start), steps=0, lr=0.1).reason == "done"
    with pytest.raises(ValueError):
        optimize(FitImage(G, target, start), steps=-1, lr=0.1)
    with pytest.raises(ValueError):
        optimize(FitImage(G, target, start), steps=1, lr=0.1, every=0)


def test_noise_buffers_are_the_synthesis_constants(problem):
    G, _, _ = problem
    buffers = noise_buffers(G)
    assert [b.shape[-1] for b in buffers] == sorted(b.shape[-1] for b in buffers)
    assert len(buffers) == sum(1 for name, _ in G.synthesis.named_buffers() if name.endswith("noise_const")) > 0


class ConvergedBeforeUpdate(FitImage):
    """Says ``converged`` on its forward pass once ``after`` updates were made; renders lazily."""

    def __init__(self, G, target, start, after):
        super().__init__(G, target, start)
        self.after, self.renders = after, 0

    def forward(self, step, total):
        output = super().forward(step, total)
        image = output.image.detach()

        def render():
            self.renders += 1
            return image

        return StepOutput(loss=output.loss, values=output.values, image=render, state={"step": step},
                          converged=step == self.after)


def test_a_step_that_says_converged_stops_before_updating(problem):
    G, target, start = problem
    objective = ConvergedBeforeUpdate(G, target, start, after=3)
    reports = []
    result = optimize(objective, steps=10, lr=0.05, callback=reports.append, every=100)
    assert (result.reason, result.steps, objective.after_calls, len(result.history)) == ("converged", 3, 3, 4)
    assert [r.step for r in reports] == [3] and reports[0].state == {"step": 3}
    # The latents reported are those the converged step saw: three updates, not four.
    assert torch.equal(reports[0].ws, objective.ws.detach())

    at_start = ConvergedBeforeUpdate(G, target, start, after=0)
    result = optimize(at_start, steps=10, lr=0.05)
    assert (result.reason, result.steps) == ("converged", 0) and torch.equal(at_start.ws.detach(), start)


def test_a_lazy_image_is_rendered_only_for_reports(problem):
    G, target, start = problem
    objective = ConvergedBeforeUpdate(G, target, start, after=-1)
    reports = []
    optimize(objective, steps=6, lr=0.05, callback=reports.append, every=3)
    assert objective.renders == 2 and [r.step for r in reports] == [3, 6]
    assert reports[0].image.shape == (32, 32, 3) and reports[0].image.dtype.name == "uint8"
