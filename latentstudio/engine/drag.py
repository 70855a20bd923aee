"""Drag to edit: DragGAN point-based manipulation (Pan et al., SIGGRAPH 2023).

A person picks *handle* points on a generated image and a *target* for each; the image is
changed so that what was under each handle moves to its target. DragGAN does this by
optimising the first rows of ``w+`` with two alternating sub-steps, both on the features
of an intermediate synthesis layer (:mod:`latentstudio.engine.feature_maps`), bilinearly
resized to the image size:

- **point tracking**: each handle's new position is the nearest neighbour, in feature
  space, of the handle's original feature, searched in a square of radius ``r2`` around
  where the handle was;
- **motion supervision**: the features on a disk of radius ``r1`` around each handle,
  with their gradient stopped, are copied one pixel along the unit vector towards the
  target, ``sum_q |sg(F(q)) - F(q + d)|``, so the content moves a step towards the target;
  with a mask (the region that may change), ``lambda * |(F - F0) * (1 - M)|`` keeps the
  features outside it as they were.

Each step tracks with the features of the current latents, then computes the motion loss
from the same synthesis (one synthesis per step), and the loop stops when every handle is
within ``stop_distance`` of its target or after ``steps`` updates. The loop is the shared
:func:`~latentstudio.engine.latent_optimization.optimize`; the result is an
:class:`~latentstudio.engine.recipe.EditRecipe` with ``latent`` set, so every other edit
composes with it.

Settings (:class:`DragSettings`; ``None`` picks the default for the model):

- as in the paper, at every size: the features of the 6th block (see ``feature_maps``);
  the first 6/16 of the ``ws`` rows optimised (6 of a 512 px model's 16); motion radius
  ``r1`` = 3 and tracking radius ``r2`` = 12 pixels at 512 px, scaled to the image size but
  never below 2 and 4 pixels (scaled all the way down, a 64 px model would supervise no pixel
  at all); stop at 1 pixel for up to 4 handles, 2 pixels for more;
- from 256 px up (the sizes the paper worked at): Adam at 2e-3 (its step size for FFHQ) and
  ``lambda`` = 20, the mask term on the features only;
- below 256 px, measured on the bundled 64 px model (``benchmarks/drag.py``): at the paper's
  values a handle inside a mask does not move at all, so Adam at 0.04, ``lambda`` = 1, and
  the mask term also holds the skip generator's partial image (``image_hold``), without which
  the coarse layers repaint the whole picture through the toRGB path: outside the mask the
  image changed 37 % as much as inside; with it, under a quarter. The first 6/10 of the
  ``ws`` rows are optimised there, not 6/16: on the 64 px model retrained in issue 18, 4 of
  its 10 rows left the median handle 4.2 px short of its target after 200 steps, 6 rows
  1.0 px, with the same locality.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from latentstudio.engine.feature_maps import (
    Features,
    FeatureSynthesis,
    ResizedFeatures,
    default_feature_layer,
    feature_layers,
    is_stylegan3,
)
from latentstudio.engine.latent_optimization import Progress, StepOutput, optimize, trainable_copy
from latentstudio.engine.recipe import EditRecipe, compose_ws
from latentstudio.untrusted import prefixed, read_image

PAPER_RESOLUTION = 512
PAPER_LAYER_FRACTION = 6 / 16  # DragGAN optimises ws[:6] of a 512 px model's 16
SMALL_MODEL_LAYER_FRACTION = 0.6  # measured, see the module docstring
MIN_MOTION_RADIUS, MIN_TRACKING_RADIUS = 2.0, 4.0
SMALL_MODEL = 256  # below this size, the measured defaults replace the paper's
PAPER_OPTIMISER = {"lr": 2e-3, "mask_weight": 20.0, "image_hold": 0.0}
SMALL_MODEL_OPTIMISER = {"lr": 0.04, "mask_weight": 1.0, "image_hold": 5.0}

Points = Sequence[Sequence[float]]  # [(x, y), ...] in pixels of the model's output


class DragError(ValueError):
    """Points, mask or settings that cannot be dragged (one line, says what is wrong)."""


@dataclass(frozen=True)
class DragSettings:
    """How a drag runs; ``None`` means the default for the model (see the module docstring).

    ``steps``: at most this many updates. ``lr``: Adam's step size. ``feature_layer``:
    StyleGAN2 block / StyleGAN3 layer index of the features. ``num_layers``: how many ``ws``
    rows, from the first, are optimised. ``motion_radius`` (r1) / ``tracking_radius`` (r2):
    pixels. ``stop_distance``: pixels. ``mask_weight``: lambda of the mask term.
    ``image_hold``: in StyleGAN2 ``skip`` generators, the weight of the partial image (the
    sum of the toRGB outputs up to the feature block) in the mask term, relative to the
    features, each measured against its own initial magnitude (ours; 0 holds the features
    only, as DragGAN does).
    """

    steps: int = 200
    lr: float | None = None
    feature_layer: int | None = None
    num_layers: int | None = None
    motion_radius: float | None = None
    tracking_radius: float | None = None
    stop_distance: float | None = None
    mask_weight: float | None = None
    image_hold: float | None = None

    def resolved(self, G: nn.Module, num_handles: int) -> "DragSettings":
        """These settings with every ``None`` replaced by its value for ``G`` and that many handles."""
        self.check(G)
        scale = G.img_resolution / PAPER_RESOLUTION
        paper_sized = G.img_resolution >= SMALL_MODEL
        optimiser = PAPER_OPTIMISER if paper_sized else SMALL_MODEL_OPTIMISER
        layer_fraction = PAPER_LAYER_FRACTION if paper_sized else SMALL_MODEL_LAYER_FRACTION
        defaults = {
            **optimiser,
            "feature_layer": default_feature_layer(G),
            "num_layers": max(1, round(layer_fraction * G.num_ws)),
            "motion_radius": max(3 * scale, MIN_MOTION_RADIUS),
            "tracking_radius": max(12 * scale, MIN_TRACKING_RADIUS),
            "stop_distance": 1.0 if num_handles < 5 else 2.0,
        }
        return replace(self, **{name: value for name, value in defaults.items() if getattr(self, name) is None})

    def check(self, G: nn.Module) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 0):
            raise DragError(f"steps must be a whole number of zero or more, not {self.steps}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise DragError(f"the learning rate must be positive, not {self.lr}")
        choices = feature_layers(G)
        if self.feature_layer is not None and not 0 <= self.feature_layer < len(choices):
            raise DragError(f"feature layer {self.feature_layer} does not exist: this model has 0-{len(choices) - 1} "
                            f"({', '.join(choice.name for choice in choices)})")
        if self.num_layers is not None and not 1 <= self.num_layers <= G.num_ws:
            raise DragError(f"num_layers must be 1-{G.num_ws} for this model, not {self.num_layers}")
        for name in ("motion_radius", "tracking_radius"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 1 <= value <= G.img_resolution):
                raise DragError(f"{name.replace('_', ' ')} must be 1-{G.img_resolution} pixels, not {value}")
        if self.stop_distance is not None and not (math.isfinite(self.stop_distance) and self.stop_distance >= 0):
            raise DragError(f"the stop distance must be zero or more pixels, not {self.stop_distance}")
        for name in ("mask_weight", "image_hold"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise DragError(f"{name.replace('_', ' ')} must be zero or more, not {value}")


@dataclass
class DragResult:
    """A finished (or stopped) drag.

    ``recipe`` draws the result (``latent`` set); ``ws`` its latents. ``tracks[k]`` holds
    each handle's tracked position ``(x, y)`` after ``k`` updates, so ``tracks[0]`` are the
    handles and ``tracks[-1]`` where they ended (``len(tracks) == steps + 1``). ``reason``:
    ``"converged"`` (every handle within ``settings.stop_distance``), ``"done"`` (the step
    budget ran out) or ``"cancelled"``.
    """

    recipe: EditRecipe
    ws: torch.Tensor
    targets: np.ndarray
    tracks: np.ndarray
    steps: int
    reason: str
    seconds: float
    settings: DragSettings
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def points(self) -> np.ndarray:
        """Where the handles ended, ``[num_handles, 2]`` as ``(x, y)``."""
        return self.tracks[-1]

    @property
    def distances(self) -> np.ndarray:
        """Each handle's final distance to its target, in pixels."""
        return np.linalg.norm(self.targets - self.points, axis=1)

    def report(self) -> dict:
        """A JSON-ready summary: settings, per-step tracks, final distances."""
        return {
            "steps": self.steps,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "settings": asdict(self.settings),
            "handles": self.tracks[0].tolist(),
            "targets": self.targets.tolist(),
            "tracks": self.tracks.tolist(),
            "final_points": self.points.tolist(),
            "final_distances": [round(float(d), 4) for d in self.distances],
        }


def drag(
    G: nn.Module,
    recipe: EditRecipe,
    handles: Points,
    targets: Points,
    mask: np.ndarray | None = None,
    settings: DragSettings = DragSettings(),
    callback: Callable[[Progress], None] | None = None,
    every: int = 1,
    should_stop: Callable[[], bool] | None = None,
) -> DragResult:
    """Move what lies under each handle ``(x, y)`` to its target (pixels of G's output).

    ``mask``: ``[R, R]``, nonzero where the image may change (the rest is held by the
    mask term); ``None`` lets everything move. ``callback`` receives a
    :class:`~latentstudio.engine.latent_optimization.Progress` every ``every`` steps with the
    image and ``state["points"]`` (tracked positions) and ``state["distances"]``;
    ``should_stop()`` cancels (the result then holds the last update). Raises
    :class:`DragError` for unusable points, mask or settings and
    :class:`~latentstudio.engine.recipe.RecipeError` for a recipe that does not fit G.
    """
    handles_array, targets_array = _check_points(handles, targets, G.img_resolution)
    keep = _check_mask(mask, G.img_resolution)
    settings = settings.resolved(G, len(handles_array))
    device = G.mapping.w_avg.device
    ws = compose_ws(G, recipe)
    if is_stylegan3(G):
        G.synthesis.set_transform(recipe.translate, recipe.rotate)
    synthesis = FeatureSynthesis(G, settings.feature_layer, recipe.noise_mode, recipe.noise_seed)
    objective = DragObjective(synthesis, ws, handles_array, targets_array,
                              None if keep is None else keep.to(device), settings)
    start = time.perf_counter()
    with torch.enable_grad():  # also when called from inference code
        outcome = optimize(objective, settings.steps, settings.lr, callback=callback, every=every, should_stop=should_stop)
    if outcome.reason != "converged":
        objective.track_final()  # where the handles are in the image of the final latents
    final = objective.current_ws().detach().clone()
    return DragResult(recipe=recipe_for_ws(G, recipe, final), ws=final, targets=targets_array,
                      tracks=np.stack(objective.tracks), steps=outcome.steps, reason=outcome.reason,
                      seconds=time.perf_counter() - start, settings=settings, history=outcome.history)


class DragObjective:
    """DragGAN's loss and point tracking as an :class:`~latentstudio.engine.latent_optimization.Objective`.

    The variables are ``ws[:, :num_layers]``; the other rows stay as they were. The first
    forward pass records the reference features (at the handles, and everywhere for the
    mask term); every later one first tracks the handles in its own features. The mask term
    compares features at the map's own resolution, with the mask averaged over each feature
    cell (close to the comparison on the resized map, without building it).
    """

    def __init__(self, synthesis: FeatureSynthesis, ws: torch.Tensor, handles: np.ndarray, targets: np.ndarray,
                 keep: torch.Tensor | None, settings: DragSettings):
        self.synthesis = synthesis
        self.settings = settings
        self.rows = trainable_copy(ws[:, : settings.num_layers])
        self.fixed = ws[:, settings.num_layers :].detach().to(torch.float32)
        self.points = handles.astype(np.float64)
        self.targets = targets.astype(np.float64)
        self.keep = keep  # [1, 1, R, R], 1 where the image must stay; None without a mask
        self.tracks: list[np.ndarray] = []
        self.reference: torch.Tensor | None = None  # [C, num_handles]
        self.initial: Features | None = None
        self.disk = _disk_offsets(settings.motion_radius)
        self._keeps: dict[tuple[int, int], torch.Tensor] = {}

    def parameter_groups(self) -> list[dict]:
        return [{"params": [self.rows]}]

    def current_ws(self) -> torch.Tensor:
        return torch.cat([self.rows, self.fixed], dim=1)

    def forward(self, step: int, total: int) -> StepOutput:
        ws = self.current_ws()
        features = self.synthesis.features(ws)
        resized = ResizedFeatures(features.map, self.synthesis.resolution)
        if self.reference is None:
            self.initial = Features(features.map.detach(), _detached(features.partial_image), None)
            self.reference = resized.at(self.points).detach()
        else:
            self.points = track_points(resized, self.reference, self.points, self.settings.tracking_radius)
        self.tracks.append(self.points.copy())
        distances = np.linalg.norm(self.targets - self.points, axis=1)
        converged = bool((distances <= self.settings.stop_distance).all())

        pull = distances > min(1.0, self.settings.stop_distance)  # DragGAN leaves handles within 1 px alone
        motion = motion_loss(resized, self.points[pull], self.targets[pull], self.disk)
        loss = motion if motion is not None else features.map.sum() * 0  # nothing to pull: a zero gradient
        values = {"motion": float(motion.detach()) if motion is not None else 0.0}
        if self.keep is not None and self.settings.mask_weight > 0:
            held = self._held(features)
            loss = loss + self.settings.mask_weight * held
            values["mask"] = float(held.detach())
        values["loss"] = float(loss.detach())
        values["max_distance"] = float(distances.max())
        frozen_ws = ws.detach().clone()  # the latents of this step: its image is drawn after the update
        return StepOutput(
            loss=loss, values=values, image=lambda: self.synthesis.image(frozen_ws, features.carry),
            state={"points": self.points.tolist(), "distances": distances.tolist()}, converged=converged,
        )

    def _held(self, features: Features) -> torch.Tensor:
        """How far the region outside the mask has moved from where it started (feature units)."""
        initial = self.initial.map
        held = (features.map - initial).abs().mul(self._keep_at(initial)).mean()
        if features.partial_image is not None and self.settings.image_hold > 0:
            start = self.initial.partial_image
            # The image in feature units: each compared against its own initial magnitude.
            scale = initial.abs().mean() / start.abs().mean().clamp_min(1e-8)
            moved = (features.partial_image - start).abs().mul(self._keep_at(start)).mean()
            held = held + self.settings.image_hold * scale * moved
        return held

    def _keep_at(self, like: torch.Tensor) -> torch.Tensor:
        """The held region at ``like``'s resolution: the kept fraction of each of its pixels."""
        size = tuple(like.shape[-2:])
        if size not in self._keeps:
            self._keeps[size] = self.keep if self.keep.shape[-2:] == size else F.interpolate(self.keep, size=size, mode="area")
        return self._keeps[size]

    def after_step(self, step: int, output: StepOutput) -> bool:
        return False  # convergence is decided before each update, on freshly tracked points

    def track_final(self) -> None:
        """Track the handles once more, in the features of the latents as they are now."""
        if self.reference is None:
            return  # no step ran: the handles are where they were
        with torch.no_grad():
            features = self.synthesis.features(self.current_ws())
        resized = ResizedFeatures(features.map, self.synthesis.resolution)
        self.points = track_points(resized, self.reference, self.points, self.settings.tracking_radius)
        self.tracks.append(self.points.copy())


def motion_loss(features: ResizedFeatures, points: np.ndarray, targets: np.ndarray, disk: np.ndarray) -> torch.Tensor | None:
    """DragGAN's motion supervision: ``mean |sg(F(q)) - F(q + d)|`` over the disk ``q`` around
    each point, ``d`` the unit vector to its target; summed over points (None for none)."""
    size = features.resolution
    loss = None
    for point, target in zip(points, targets):
        direction = (target - point) / max(np.linalg.norm(target - point), 1e-7)
        q = np.rint(point) + disk  # [n, 2] (x, y)
        q = q[((q >= 0) & (q < size)).all(axis=1)]
        if len(q) == 0:
            continue
        index = torch.from_numpy(q.astype(np.int64))
        source = features.pixels(index[:, 0], index[:, 1]).detach()  # [C, n]
        term = F.l1_loss(features.at(q + direction), source)
        loss = term if loss is None else loss + term
    return loss


def track_points(features: ResizedFeatures, reference: torch.Tensor, points: np.ndarray, radius: float) -> np.ndarray:
    """DragGAN's point tracking: for each point, the pixel of the square of ``radius`` around
    it whose feature is nearest (L2) to the point's reference feature ``reference[:, i]``."""
    size = features.resolution
    r = int(math.floor(radius))
    tracked = np.empty_like(points)
    with torch.no_grad():
        for i, point in enumerate(points):
            x, y = (int(v) for v in np.rint(point))
            top, bottom, left, right = max(y - r, 0), min(y + r + 1, size), max(x - r, 0), min(x + r + 1, size)
            window = features.window(left, top, right, bottom)  # [C, h, w]
            distance = (window - reference[:, i, None, None]).square().sum(dim=0)
            index = int(distance.flatten().argmin())
            tracked[i] = (left + index % (right - left), top + index // (right - left))
    return tracked


def recipe_for_ws(G: nn.Module, recipe: EditRecipe, ws: torch.Tensor) -> EditRecipe:
    """A recipe whose latents are exactly ``ws`` and that keeps ``recipe``'s sliders meaningful.

    ``latent`` holds ``ws`` with the recipe's enabled direction edits taken off and its
    truncation undone (``w_avg + (w - w_avg) / psi`` on the truncated rows), so the edits
    and the truncation stay in the recipe, keep their values, and move the dragged image when
    moved. Style mixing cannot be undone (a row wholly from seed B has nothing of A left), so
    it is baked in; so is truncation at psi 0.
    """
    base = ws.detach().to(torch.float32).cpu().clone()
    num_ws, w_dim = base.shape[1:]
    for edit in recipe.edits:
        if edit.enabled and edit.strength != 0 and len(edit.vector) == w_dim:
            base[:, edit.layer_slice(num_ws)] -= (edit.strength * edit.sigma) * torch.tensor(edit.vector, dtype=torch.float32)
    psi, cutoff = recipe.truncation_psi, recipe.truncation_cutoff
    if psi == 0:
        psi, cutoff = 1.0, None
    elif psi != 1:
        rows = num_ws if cutoff is None else min(cutoff, num_ws)
        w_avg = G.mapping.w_avg.detach().to(torch.float32).cpu().reshape(1, 1, w_dim)
        base[:, :rows] = w_avg + (base[:, :rows] - w_avg) / psi
    return recipe.replace(latent=tuple(base.flatten().tolist()), truncation_psi=psi, truncation_cutoff=cutoff,
                          mix_seed=None, mix=())


def _detached(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach()


def _disk_offsets(radius: float) -> np.ndarray:
    """Integer ``(dx, dy)`` with ``dx² + dy² < radius²``."""
    r = int(math.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    inside = dx**2 + dy**2 < radius**2
    return np.stack([dx[inside], dy[inside]], axis=1).astype(np.float64)


def _check_points(handles: Points, targets: Points, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        handles_array = np.asarray(handles, dtype=np.float64).reshape(-1, 2)
        targets_array = np.asarray(targets, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise DragError("handles and targets must be lists of (x, y) pairs") from None
    if len(handles_array) == 0:
        raise DragError("give at least one handle and its target")
    if len(handles_array) != len(targets_array):
        raise DragError(f"{len(handles_array)} handles but {len(targets_array)} targets: give one target per handle")
    for name, array in (("handle", handles_array), ("target", targets_array)):
        bad = ~np.isfinite(array).all(axis=1) | (array < 0).any(axis=1) | (array > resolution - 1).any(axis=1)
        if bad.any():
            x, y = array[int(np.argmax(bad))]
            raise DragError(f"{name} ({x:g}, {y:g}) is outside the {resolution}x{resolution} image "
                            f"(x and y run from 0 to {resolution - 1})")
    return handles_array, targets_array


MAX_MASK_SIDE = 8192  # pixels, twice the largest model; a mask file claiming more is refused before it is decoded
MAX_MASK_BYTES = MAX_MASK_SIDE**2 * 4 + (1 << 20)  # an uncompressed RGBA mask of that size, the largest there can be


def load_mask(path: str | os.PathLike, resolution: int) -> np.ndarray:
    """A mask image -> ``[resolution, resolution]`` bool, True where the image may change.

    White (any grey above half; transparent pixels count as black) marks the region that
    may change. A square image of another size is resized
    (nearest neighbour, so the edge stays sharp); anything else is a :class:`DragError`
    line naming the file (:func:`read_image`: folders, pipes, bombs, damaged files).
    """
    with read_image(path, MAX_MASK_BYTES, MAX_MASK_SIDE**2, prefixed(DragError), "mask image") as image:
        width, height = image.size
        if max(width, height) > MAX_MASK_SIDE:
            raise DragError(f"{path}: {width}x{height} is too large for a mask")
        if width != height:
            raise DragError(f"{path}: the mask is {width}x{height}; it must be square like the image ({resolution}x{resolution})")
        rgba = image.convert("RGBA")  # transparent counts as black: paint on a clear layer works too
        grey = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba).convert("L")
        if width != resolution:
            grey = grey.resize((resolution, resolution), Image.Resampling.NEAREST)
        mask = np.asarray(grey, dtype=np.uint8) > 127
    if not mask.any():
        raise DragError(f"{path}: the mask is empty (paint the region that may change white)")
    return mask


def _check_mask(mask: np.ndarray | None, resolution: int) -> torch.Tensor | None:
    """The mask as ``[1, 1, R, R]`` float, 1 where the image is held (outside the mask)."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != (resolution, resolution):
        raise DragError(f"the mask is {'x'.join(map(str, mask.shape))}; this model needs {resolution}x{resolution}")
    movable = np.nan_to_num(mask.astype(np.float64)) > 0
    if not movable.any():
        raise DragError("the mask is empty: paint the region that may change")
    return torch.from_numpy((~movable).astype(np.float32))[None, None]
