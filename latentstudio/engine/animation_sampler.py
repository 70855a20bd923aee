"""From an :class:`Animation` to pixels: per-frame ws for one model, rendered in batches.

:class:`AnimationSampler` composes every keyframe once (through the renderer, so mapped
seeds are cached), then gives the ws and StyleGAN3 transform of any frame:

- a frame that falls on a key is that key's composed ws, bit for bit, so the first and last
  frames of a video are exactly the images its keys render;
- between keys: linear interpolation per ws layer, or a cubic spline through all keys
  (periodic when looping, so the loop has no kink where it closes), or, in z, spherical
  interpolation followed by the mapping network and the keys' truncation;
- easing reshapes the time within each segment.

:func:`iter_frames` renders a range of frames in batches of ``batch_size`` images and yields
one image at a time, so a video of any length needs the memory of one batch.
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from latentstudio.engine.animation import Animation, AnimationError, Keyframe, key_times
from latentstudio.engine.export import make_grid
from latentstudio.engine.recipe import EditRecipe, RecipeError, class_vector, seed_to_z
from latentstudio.engine.renderer import Frame, Renderer

if TYPE_CHECKING:  # scipy.interpolate costs ~0.5 s to import: only when a cubic timeline is sampled
    from scipy.interpolate import CubicSpline

Move = tuple[tuple[float, float], float]  # StyleGAN3 (translate, rotate)


def ease(name: str, u: np.ndarray) -> np.ndarray:
    """Time within a segment (0..1) reshaped by an easing curve; 0 and 1 stay fixed."""
    if name == "ease-in-out":
        return (1 - np.cos(np.pi * u)) / 2
    if name == "ease-in":
        return 1 - np.cos(np.pi * u / 2)
    if name == "ease-out":
        return np.sin(np.pi * u / 2)
    return u


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between two vectors (``[D]``) at times ``t`` (``[B]``): ``[B, D]``.

    The direction moves along the great circle between the two directions and the length is
    interpolated linearly, so the path keeps the length Gaussian z have instead of cutting
    through the centre (where the mapping network gives washed-out average faces).
    """
    t = np.asarray(t, dtype=np.float64)[:, None]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / na, b / nb
    omega = math.acos(float(np.clip(np.dot(ua, ub), -1.0, 1.0)))
    if omega < 1e-6:  # (nearly) the same direction: the arc is a point
        direction = ua + 0 * t
    else:
        direction = (np.sin((1 - t) * omega) * ua + np.sin(t * omega) * ub) / math.sin(omega)
    return direction * ((1 - t) * na + t * nb)


@dataclass
class _Track:
    """One track, prepared for sampling: its keys composed for this model."""

    keys: tuple[Keyframe, ...]
    times: list[int]  # frame of every key, plus the loop's return to the first
    ws: torch.Tensor  # (K, num_ws, w_dim), exactly what each key renders
    moves: np.ndarray  # (K, 3): translate x, translate y, rotate
    spline: CubicSpline | None = None  # cubic: over flattened ws and moves
    zs: np.ndarray | None = None  # z interpolation: (K, z_dim)


class AnimationSampler:
    """Per-frame ws (and StyleGAN3 transforms) of ``animation`` on ``renderer``'s model.

    Raises :class:`AnimationError` naming the keyframe when a key cannot be composed for
    this model (another W size, a class out of range...).
    """

    def __init__(self, renderer: Renderer, animation: Animation):
        self.renderer = renderer
        self.animation = animation
        self.G = renderer.G
        first = animation.tracks[0][0].recipe
        self.noise_mode, self.noise_seed = first.noise_mode, first.noise_seed
        self.tracks = [self._prepare(track, number) for number, track in enumerate(animation.tracks)]

    @property
    def num_frames(self) -> int:
        return self.animation.num_frames

    def _prepare(self, track: tuple[Keyframe, ...], number: int) -> _Track:
        composed = []
        for index, key in enumerate(track, start=1):
            try:
                with torch.inference_mode():
                    composed.append(self.renderer.compose(key.recipe))
            except RecipeError as error:
                where = f"cell {number + 1}, keyframe {index}" if len(self.animation.tracks) > 1 else f"keyframe {index}"
                raise AnimationError(f"{where}: {error}") from None
        ws = torch.cat(composed)
        moves = np.array([[*key.recipe.translate, key.recipe.rotate] for key in track], dtype=np.float64)
        prepared = _Track(track, key_times(track), ws, moves)
        if self.animation.space == "z":
            prepared.zs = np.concatenate([seed_to_z(key.recipe.seed, self.G.z_dim) for key in track])
        elif self.animation.interpolation == "cubic" and len(track) > 1:
            values = np.concatenate([ws.reshape(len(track), -1).double().cpu().numpy(), moves], axis=1)
            times = np.array(prepared.times if self.animation.loop else prepared.times[:-1], dtype=np.float64)
            if self.animation.loop:
                values = np.concatenate([values, values[:1]])
            bc = "periodic" if self.animation.loop else ("not-a-knot" if len(track) > 2 else "natural")
            from scipy.interpolate import CubicSpline

            prepared.spline = CubicSpline(times, values, axis=0, bc_type=bc)
        return prepared

    # -- sampling ------------------------------------------------------------------------
    def _segments(self, track: _Track, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per frame: the segment's first key, the eased time within it (0..1), and the
        eased frame time (for the spline)."""
        times = np.asarray(track.times, dtype=np.float64)
        last_key = len(track.keys) - 1 if self.animation.loop else len(track.keys) - 2
        first = np.clip(np.searchsorted(times, frames, side="right") - 1, 0, max(last_key, 0))
        span = times[first + 1] - times[first]
        u = ease(self.animation.easing, np.clip((frames - times[first]) / span, 0.0, 1.0))
        return first, u, times[first] + u * span

    def sample(self, frames: Sequence[int]) -> tuple[torch.Tensor, list[Move]]:
        """ws ``[len(frames) * tracks, num_ws, w_dim]`` (frame by frame, tracks in order within
        a frame) and the matching StyleGAN3 moves."""
        frames = np.asarray(frames, dtype=np.int64)
        if frames.size and (frames.min() < 0 or frames.max() >= self.num_frames):
            raise AnimationError(f"frame {int(frames.max())} is outside the animation's {self.num_frames} frames")
        with torch.inference_mode():
            per_track = [self._sample_track(track, frames) for track in self.tracks]
        ws = torch.stack([ws for ws, _ in per_track], dim=1).reshape(-1, self.G.num_ws, self.G.w_dim)
        moves = np.stack([moves for _, moves in per_track], axis=1).reshape(-1, 3)
        return ws, [((float(x), float(y)), float(r)) for x, y, r in moves]

    def _sample_track(self, track: _Track, frames: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        count = len(track.keys)
        on_key = {time: index for index, time in enumerate(track.times[:count])}
        if count == 1:
            return track.ws[[0] * len(frames)], track.moves[[0] * len(frames)]
        first, u, t = self._segments(track, frames)
        second = (first + 1) % count
        if track.spline is not None:
            values = track.spline(t)
            flat = track.ws.shape[1] * track.ws.shape[2]
            ws = torch.from_numpy(values[:, :flat]).to(track.ws).reshape(len(frames), *track.ws.shape[1:])
            moves = values[:, flat:]
        else:
            weights = torch.from_numpy(u).to(track.ws).reshape(-1, 1, 1)
            ws = torch.lerp(track.ws[first], track.ws[second], weights) if track.zs is None else self._from_z(track, first, second, u)
            moves = track.moves[first] + u[:, None] * (track.moves[second] - track.moves[first])
        for row, frame in enumerate(frames.tolist()):  # keys are exact, whatever the arithmetic
            if frame in on_key:
                ws[row] = track.ws[on_key[frame]]
                moves[row] = track.moves[on_key[frame]]
        return ws, moves

    def _from_z(self, track: _Track, first: np.ndarray, second: np.ndarray, u: np.ndarray) -> torch.Tensor:
        """Spherically interpolated z, mapped, then truncated with linearly interpolated psi."""
        zs = np.concatenate([slerp(track.zs[a], track.zs[b], [t]) for a, b, t in zip(first, second, u)])
        recipe = track.keys[0].recipe
        device = track.ws.device
        c = class_vector(self.G, recipe.class_index, device).repeat(len(zs), 1)
        ws = self.G.mapping(torch.from_numpy(zs).to(device=device, dtype=torch.float32), c, truncation_psi=1)
        psis = np.array([key.recipe.truncation_psi for key in track.keys])
        psi = torch.from_numpy(psis[first] + u * (psis[second] - psis[first])).to(ws).reshape(-1, 1, 1)
        cutoff = self.G.num_ws if recipe.truncation_cutoff is None else min(recipe.truncation_cutoff, self.G.num_ws)
        w_avg = self.G.mapping.w_avg.reshape(1, 1, -1)
        return torch.cat([w_avg.lerp(ws[:, :cutoff], psi), ws[:, cutoff:]], dim=1)

    def frame_recipe(self, frame: int, track: int = 0) -> EditRecipe:
        """Frame ``frame`` of one track as a recipe with its ws stored as ``latent``, so the
        editor renders it through the same path (and caches) as any other recipe."""
        ws, moves = self.sample([frame])
        ws, (translate, rotate) = ws[track], moves[track]
        first = self.tracks[track].keys[0].recipe
        return EditRecipe(latent=tuple(ws.reshape(-1).tolist()), class_index=first.class_index, noise_mode=self.noise_mode,
                          noise_seed=self.noise_seed, translate=translate, rotate=rotate, model=first.model)


def iter_frames(renderer: Renderer, animation: Animation, batch_size: int = 8, start: int = 0, stop: int | None = None,
                sampler: AnimationSampler | None = None) -> Iterator[np.ndarray]:
    """Raw images of frames ``start..stop-1`` (grid animations laid out), one at a time.

    Frames are sampled and synthesised ``batch_size`` images at a time (a grid frame counts
    as one image per cell); nothing else is kept, so memory does not grow with the length.
    """
    sampler = sampler or AnimationSampler(renderer, animation)
    stop = animation.num_frames if stop is None else min(stop, animation.num_frames)
    cells = len(animation.tracks)
    per_batch = max(1, batch_size // cells)
    for chunk in range(start, stop, per_batch):
        frames = list(range(chunk, min(chunk + per_batch, stop)))
        ws, moves = sampler.sample(frames)
        raws = renderer.render_ws(ws, sampler.noise_mode, sampler.noise_seed, moves)
        for index in range(len(frames)):
            images = raws[index * cells : (index + 1) * cells]
            yield images[0] if cells == 1 else make_grid(list(images), columns=animation.columns)


# -- single frames for the editor -------------------------------------------------------------
_samplers: "weakref.WeakKeyDictionary[Renderer, dict[Animation, AnimationSampler]]" = weakref.WeakKeyDictionary()
SAMPLERS_KEPT = 4  # per renderer: scrubbing one timeline while another is exported


def sampler_for(renderer: Renderer, animation: Animation) -> AnimationSampler:
    """A cached sampler: scrubbing asks for many frames of the same animation."""
    kept = _samplers.setdefault(renderer, {})
    sampler = kept.get(animation)
    if sampler is None:
        sampler = AnimationSampler(renderer, animation)
        kept[animation] = sampler
        while len(kept) > SAMPLERS_KEPT:
            kept.pop(next(iter(kept)))
    return sampler


@dataclass(frozen=True)
class AnimationFrame:
    """A request for one frame of an animation (the Timeline's scrubber and Play).

    :meth:`render` goes through :meth:`Renderer.render` with the frame as a recipe, so a
    scrubbed frame uses the same incremental synthesis as a slider drag. A grid animation
    shows its first cell. Never raises.
    """

    animation: Animation
    index: int

    def render(self, renderer: Renderer) -> Frame:
        try:
            recipe = sampler_for(renderer, self.animation).frame_recipe(self.index)
        except (AnimationError, RecipeError) as error:
            return Frame(recipe=self.animation.tracks[0][0].recipe, error=str(error), frame_index=self.index)
        frame = renderer.render(recipe)
        frame.frame_index = self.index
        return frame
