"""``Animation``: keyframes (recipes with durations) and how to move between them.

An animation is a frozen, JSON-serialisable value like :class:`EditRecipe`: the editor's
Timeline edits one through undoable commands, ``latentstudio video`` builds one from its
options, and every exported video carries its animation so it can be reopened and edited.

- A :class:`Keyframe` is a recipe and ``frames``, the number of frames from this key to the
  next one (to the first one when looping; the last key's is unused without looping).
- ``tracks``: one list of keyframes per grid cell, laid out ``columns`` wide (NVlabs
  ``gen_video.py``); the Timeline has one track. Every track lasts the same number of frames.
- ``interpolation``: ``linear`` or ``cubic`` (a cubic spline through every key, periodic
  when looping, as NVlabs' wrapped cubic), applied per ws layer to the composed ws, and to
  the StyleGAN3 translate / rotate.
- ``space``: ``w`` (composed ws) or ``z`` (spherical interpolation of z, for keys that are
  plain seeds: the path stays on the shell where Gaussian z live, so no frame is a washed-out
  average face).
- ``easing`` reshapes time within each segment (``ease-in-out`` slows into and out of
  every key); ``loop`` adds the segment from the last key back to the first, so the video
  repeats seamlessly.

Sampling these to per-frame ws needs a model: :mod:`latentstudio.engine.animation_sampler`.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from latentstudio import bounded_json
from latentstudio.engine.recipe import MAX_RECIPE_DEPTH, DirectionEdit, EditRecipe, RecipeError

ANIMATION_FORMAT = "latentstudio-animation"
ANIMATION_VERSION = 1
INTERPOLATIONS = ("linear", "cubic")
SPACES = ("w", "z")
EASINGS = ("linear", "ease-in-out", "ease-in", "ease-out")
DEFAULT_FRAMES_PER_KEY = 60
DEFAULT_FPS = 30.0
MAX_FPS = 240.0
MAX_KEYFRAMES = 10_000  # per track
MAX_TRACKS = 256
MAX_FRAMES = 10_000_000  # about four days at 30 frames/s
MAX_FILE_BYTES = 256 * 2**20  # an animation file (a projected-photo key is about 150 kB of JSON)
MAX_JSON_DEPTH = 4 + MAX_RECIPE_DEPTH  # animation, tracks, track, keyframe, then a recipe


class AnimationError(ValueError):
    """An animation is malformed, cannot be sampled for this model, or its file is unreadable."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AnimationError(message)


@dataclass(frozen=True)
class Keyframe:
    """One key: the image (a recipe) and the frames it takes to reach the next key."""

    recipe: EditRecipe
    frames: int = DEFAULT_FRAMES_PER_KEY

    def __post_init__(self) -> None:
        _require(isinstance(self.recipe, EditRecipe), "a keyframe needs an EditRecipe")
        _require(isinstance(self.frames, int) and not isinstance(self.frames, bool), "keyframe duration must be a whole number of frames")
        _require(self.frames >= 1, f"keyframe duration must be at least 1 frame, not {self.frames}")


def plain_seed_problem(recipe: EditRecipe) -> str | None:
    """Why a recipe is not a plain seed (what spherical z interpolation needs), or ``None``."""
    if recipe.latent is not None:
        return "it holds a stored latent (a projected photo or a drag), not a seed"
    if recipe.edits and any(edit.enabled and edit.strength for edit in recipe.edits):
        return "it has direction edits"
    if recipe.mix_seed is not None and any(recipe.mix):
        return "it mixes styles from a second seed"
    return None


@dataclass(frozen=True)
class Animation:
    """Keyframe tracks and the interpolation settings shared by all of them (see the module)."""

    tracks: tuple[tuple[Keyframe, ...], ...]
    interpolation: str = "cubic"
    space: str = "w"
    easing: str = "linear"
    loop: bool = False
    fps: float = DEFAULT_FPS
    columns: int = 1

    def __post_init__(self) -> None:
        tracks = tuple(tuple(track) for track in self.tracks)
        object.__setattr__(self, "tracks", tracks)
        _require(0 < len(tracks) <= MAX_TRACKS, f"an animation needs 1 to {MAX_TRACKS} tracks, not {len(tracks)}")
        for track in tracks:
            _require(len(track) > 0, "an animation needs at least one keyframe")
            _require(len(track) <= MAX_KEYFRAMES, f"at most {MAX_KEYFRAMES} keyframes per track")
            _require(all(isinstance(key, Keyframe) for key in track), "keyframes must be Keyframe values")
        _require(self.interpolation in INTERPOLATIONS, f"interpolation must be one of {', '.join(INTERPOLATIONS)}")
        _require(self.space in SPACES, f"space must be one of {', '.join(SPACES)}")
        _require(self.easing in EASINGS, f"easing must be one of {', '.join(EASINGS)}")
        _require(isinstance(self.loop, bool), "loop must be true or false")
        _require(isinstance(self.fps, (int, float)) and not isinstance(self.fps, bool) and math.isfinite(self.fps)
                 and 0 < self.fps <= MAX_FPS, f"fps must be a number in (0, {MAX_FPS:g}]")
        object.__setattr__(self, "fps", float(self.fps))
        _require(isinstance(self.columns, int) and 1 <= self.columns <= len(tracks),
                 f"columns must be between 1 and the number of tracks ({len(tracks)})")
        lengths = {track_frames(track, self.loop) for track in tracks}
        _require(len(lengths) == 1, "every cell of a grid animation must last the same number of frames")
        _require(self.num_frames <= MAX_FRAMES, f"{self.num_frames} frames is more than the {MAX_FRAMES} an animation may have")
        if self.space == "z":
            _require(self.interpolation == "linear", "interpolation in z is spherical and linear between keys: "
                     "use linear interpolation, or cubic in w")
            for track in tracks:
                first = track[0].recipe
                for index, key in enumerate(track, start=1):
                    problem = plain_seed_problem(key.recipe)
                    _require(problem is None, f"keyframe {index}: z interpolation needs plain seeds, but {problem}")
                    _require((key.recipe.class_index, key.recipe.truncation_cutoff) == (first.class_index, first.truncation_cutoff),
                             f"keyframe {index}: z interpolation needs the same class and truncation cutoff on every key")

    # -- construction --------------------------------------------------------------------
    @classmethod
    def of(cls, recipes: Sequence[EditRecipe], frames_per_key: int = DEFAULT_FRAMES_PER_KEY, **settings: Any) -> "Animation":
        """One track through ``recipes``, each key lasting ``frames_per_key`` frames."""
        return cls(tracks=(tuple(Keyframe(recipe, frames_per_key) for recipe in recipes),), **settings)

    def replace(self, **changes: Any) -> "Animation":
        return dataclasses.replace(self, **changes)

    @property
    def keyframes(self) -> tuple[Keyframe, ...]:
        """The keys of a one-track animation (the Timeline's)."""
        _require(len(self.tracks) == 1, "this is a grid animation: its keys are per cell (tracks)")
        return self.tracks[0]

    def with_keyframes(self, keyframes: Sequence[Keyframe]) -> "Animation":
        return self.replace(tracks=(tuple(keyframes),), columns=1)

    # -- timing --------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return track_frames(self.tracks[0], self.loop)

    @property
    def rows(self) -> int:
        return math.ceil(len(self.tracks) / self.columns)

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def key_frame_indices(self, track: int = 0) -> list[int]:
        """The frame at which each key of ``track`` is shown exactly."""
        return key_times(self.tracks[track])[: len(self.tracks[track])]

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ANIMATION_FORMAT,
            "version": ANIMATION_VERSION,
            "interpolation": self.interpolation,
            "space": self.space,
            "easing": self.easing,
            "loop": self.loop,
            "fps": self.fps,
            "columns": self.columns,
            "tracks": [[{"frames": key.frames, "recipe": key.recipe.to_dict()} for key in track] for track in self.tracks],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> "Animation":
        _require(isinstance(data, dict), "an animation must be a JSON object")
        _require(data.get("format") == ANIMATION_FORMAT, "not a latentstudio animation (no 'format' marker)")
        version = data.get("version")
        _require(version == ANIMATION_VERSION, f"unsupported animation version {version!r} (this latentstudio reads {ANIMATION_VERSION})")
        known = {"format", "version", "interpolation", "space", "easing", "loop", "fps", "columns", "tracks"}
        unknown = sorted(set(data) - known)
        _require(not unknown, f"unknown animation fields: {', '.join(unknown)}")
        tracks = data.get("tracks")
        _require(isinstance(tracks, list) and all(isinstance(track, list) for track in tracks), "tracks must be a list of keyframe lists")
        _require(len(tracks) <= MAX_TRACKS and all(len(track) <= MAX_KEYFRAMES for track in tracks), "too many tracks or keyframes")
        parsed = []
        for track in tracks:
            keys = []
            for index, key in enumerate(track, start=1):
                _require(isinstance(key, dict) and set(key) == {"frames", "recipe"}, f"keyframe {index}: needs exactly 'frames' and 'recipe'")
                try:
                    keys.append(Keyframe(EditRecipe.from_dict(key["recipe"]), key["frames"]))
                except RecipeError as error:
                    raise AnimationError(f"keyframe {index}: {error}") from None
            parsed.append(tuple(keys))
        settings = {name: data[name] for name in ("interpolation", "space", "easing", "loop", "fps", "columns") if name in data}
        try:
            return cls(tracks=tuple(parsed), **settings)
        except (TypeError, OverflowError) as error:  # OverflowError: an fps of 10**400
            raise AnimationError(f"malformed animation: {' '.join(str(error).split())[:120]}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> "Animation":
        return cls.from_dict(animation_json(text))


def animation_json(text: str | bytes) -> Any:
    """The JSON value of an animation file's text, at most :data:`MAX_FILE_BYTES` characters
    and :data:`MAX_JSON_DEPTH` deep (:mod:`latentstudio.bounded_json`); :class:`AnimationError`
    otherwise."""
    try:
        return bounded_json.loads(text, max_chars=MAX_FILE_BYTES, max_depth=MAX_JSON_DEPTH)
    except bounded_json.JSONError as error:
        raise AnimationError(f"not an animation: {error}") from None


def key_times(track: Sequence[Keyframe]) -> list[int]:
    """Frame index of every key, plus one past the last: where a loop returns to the first key."""
    times = [0]
    for key in track:
        times.append(times[-1] + key.frames)
    return times


def track_frames(track: Sequence[Keyframe], loop: bool) -> int:
    """Frames in a track: up to and including the last key, or the whole loop back to the first."""
    times = key_times(track)
    return times[-1] if loop else times[-2] + 1


def check_model(animation: Animation, fingerprint: str | None) -> None:
    """Refuse keys made on another model (their seeds and directions mean other images there)."""
    for number, track in enumerate(animation.tracks):
        for index, key in enumerate(track, start=1):
            made_on = key.recipe.model
            if fingerprint is not None and made_on is not None and made_on != fingerprint:
                where = f"cell {number + 1}, keyframe {index}" if len(animation.tracks) > 1 else f"keyframe {index}"
                raise AnimationError(f"{where} was made on another model ({made_on}); this model is {fingerprint}")


# -- generators ------------------------------------------------------------------------------
def seed_walk(base: EditRecipe, seeds: Sequence[int], frames_per_key: int = DEFAULT_FRAMES_PER_KEY, **settings: Any) -> Animation:
    """A walk through ``seeds`` with everything else of ``base`` (truncation, class, edits)."""
    _require(len(seeds) > 0, "a seed walk needs at least one seed")
    return Animation.of([base.replace(seed=int(seed)) for seed in seeds], frames_per_key, **settings)


def grid_walk(base: EditRecipe, seeds: Sequence[int], columns: int, rows: int, frames_per_key: int = DEFAULT_FRAMES_PER_KEY,
              **settings: Any) -> Animation:
    """NVlabs ``gen_video.py``'s grid: cell ``(row, column)`` walks through its own run of seeds.

    The seeds are split into ``columns x rows`` consecutive runs, row by row, one run per
    cell, exactly as ``gen_video.py`` assigns them, so the same seeds give the same grid.
    """
    cells = columns * rows
    _require(columns >= 1 and rows >= 1, "a grid needs at least 1x1 cells")
    _require(len(seeds) >= cells and len(seeds) % cells == 0,
             f"{len(seeds)} seeds cannot be split evenly over a {columns}x{rows} grid: give a multiple of {cells}")
    per_cell = len(seeds) // cells
    tracks = tuple(
        tuple(Keyframe(base.replace(seed=int(seed)), frames_per_key) for seed in seeds[cell * per_cell : (cell + 1) * per_cell])
        for cell in range(cells)
    )
    return Animation(tracks=tracks, columns=columns, **settings)


def direction_sweep(base: EditRecipe, edit: DirectionEdit, low: float, high: float, frames: int = DEFAULT_FRAMES_PER_KEY,
                    **settings: Any) -> Animation:
    """``base`` moved along ``edit``'s direction from ``low`` to ``high`` sigmas (and back, looping)."""
    _require(math.isfinite(low) and math.isfinite(high) and low != high, "a sweep needs two different, finite ends")
    keys = [base.replace(edits=base.edits + (dataclasses.replace(edit, strength=float(value), enabled=True),)) for value in (low, high)]
    return Animation.of(keys, frames, **{"interpolation": "linear", **settings})


def truncation_sweep(base: EditRecipe, low: float, high: float, frames: int = DEFAULT_FRAMES_PER_KEY, **settings: Any) -> Animation:
    """``base`` with truncation psi going from ``low`` to ``high`` (and back, looping)."""
    _require(math.isfinite(low) and math.isfinite(high) and low != high, "a sweep needs two different, finite ends")
    return Animation.of([base.replace(truncation_psi=float(low)), base.replace(truncation_psi=float(high))], frames,
                        **{"interpolation": "linear", **settings})
