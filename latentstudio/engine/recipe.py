"""``EditRecipe``: everything that decides one image, as a frozen, JSON-serialisable value.

The GUI edits a recipe (through undoable commands), the renderer turns it into pixels, and an
exported PNG carries it, so dropping the PNG back restores the exact image. Direction edits
carry their own unit vector and sigma, so a recipe is self-contained: it reproduces the
same pixels without the direction set it was made with.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentstudio import bounded_json
from latentstudio.untrusted import prefixed, read_regular_file

RECIPE_VERSION = 1
NOISE_MODES = ("const", "random", "none")
MAX_STRENGTH = 100.0  # sigma; far beyond anything useful, small enough to stay finite
MAX_RECIPE_CHARS = 4 << 20  # a recipe with a stored w+ and a hundred 512-d edits is about 1 MB of JSON
MAX_RECIPE_DEPTH = 8
MAX_LABEL = 200  # characters of a direction label or model fingerprint


class RecipeError(ValueError):
    """A recipe is malformed (bad JSON, wrong types, NaN, out of range, wrong model)."""


@dataclass(frozen=True)
class DirectionEdit:
    """Move ``ws[first_layer..last_layer]`` (inclusive) by ``strength`` sigmas along ``vector``.

    ``vector`` is a unit vector in W and ``sigma`` the standard deviation of sampled W along
    it, so a strength of 1 means "one typical step" for any model and any direction.
    ``direction`` is a label (e.g. ``"pca:3"`` or ``"smile"``) for people and the GUI.
    """

    direction: str
    vector: tuple[float, ...]
    strength: float = 0.0
    first_layer: int = 0
    last_layer: int = -1  # -1: up to the last layer
    sigma: float = 1.0
    enabled: bool = True

    def __post_init__(self) -> None:
        _require(isinstance(self.direction, str) and len(self.direction) <= MAX_LABEL,
                 f"direction label must be a string of at most {MAX_LABEL} characters")
        vector = tuple(float(v) for v in self.vector)
        _require(len(vector) > 0 and all(math.isfinite(v) for v in vector), f"direction {self.direction!r}: vector must be finite and non-empty")
        object.__setattr__(self, "vector", vector)
        _require(_finite(self.strength), f"direction {self.direction!r}: strength must be a finite number")
        object.__setattr__(self, "strength", float(min(max(self.strength, -MAX_STRENGTH), MAX_STRENGTH)))
        _require(_finite(self.sigma) and self.sigma > 0, f"direction {self.direction!r}: sigma must be positive")
        _require(isinstance(self.first_layer, int) and isinstance(self.last_layer, int), "layer range must be integers")
        _require(self.first_layer >= 0 and (self.last_layer == -1 or self.last_layer >= self.first_layer), f"direction {self.direction!r}: bad layer range {self.first_layer}..{self.last_layer}")

    def layer_slice(self, num_ws: int) -> slice:
        last = num_ws - 1 if self.last_layer == -1 else min(self.last_layer, num_ws - 1)
        return slice(self.first_layer, last + 1)


@dataclass(frozen=True)
class EditRecipe:
    """One image: latent source, class, truncation, noise, style mixing and direction edits.

    - ``seed`` picks ``z`` exactly as NVlabs ``gen_images.py`` does
      (``np.random.RandomState(seed).randn(1, z_dim)``), unless ``latent`` holds a stored ``w``.
    - ``mix_seed`` + ``mix``: per-layer blend weights (0 = seed A, 1 = seed B); a shorter
      tuple is padded with zeros, so ``()`` means no mixing.
    - ``translate`` / ``rotate``: the StyleGAN3 input transform (ignored by StyleGAN2).
    """

    seed: int = 0
    latent: tuple[float, ...] | None = None
    class_index: int | None = None
    truncation_psi: float = 1.0
    truncation_cutoff: int | None = None
    noise_mode: str = "const"
    noise_seed: int = 0
    mix_seed: int | None = None
    mix: tuple[float, ...] = ()
    edits: tuple[DirectionEdit, ...] = ()
    translate: tuple[float, float] = (0.0, 0.0)
    rotate: float = 0.0
    model: str | None = None  # fingerprint of the model the recipe was made on (informative)

    def __post_init__(self) -> None:
        _require(_is_int(self.seed) and 0 <= self.seed < 2**32, "seed must be an integer in [0, 2^32)")
        _require(self.mix_seed is None or (_is_int(self.mix_seed) and 0 <= self.mix_seed < 2**32), "mix_seed must be an integer in [0, 2^32) or null")
        _require(_is_int(self.noise_seed) and 0 <= self.noise_seed < 2**32, "noise_seed must be an integer in [0, 2^32)")
        _require(self.class_index is None or (_is_int(self.class_index) and self.class_index >= 0), "class_index must be a non-negative integer or null")
        _require(_finite(self.truncation_psi), "truncation_psi must be a finite number")
        _require(self.truncation_cutoff is None or (_is_int(self.truncation_cutoff) and self.truncation_cutoff >= 0), "truncation_cutoff must be a non-negative integer or null")
        _require(self.noise_mode in NOISE_MODES, f"noise_mode must be one of {', '.join(NOISE_MODES)}")
        if self.latent is not None:
            latent = tuple(float(v) for v in self.latent)
            _require(len(latent) > 0 and all(map(math.isfinite, latent)), "latent must be a finite vector")
            object.__setattr__(self, "latent", latent)
        mix = tuple(float(v) for v in self.mix)
        _require(all(_finite(v) and 0.0 <= v <= 1.0 for v in mix), "mix weights must be numbers in [0, 1]")
        object.__setattr__(self, "mix", mix)
        edits = tuple(self.edits)
        _require(all(isinstance(e, DirectionEdit) for e in edits), "edits must be DirectionEdit values")
        object.__setattr__(self, "edits", edits)
        translate = tuple(float(v) for v in self.translate)
        _require(len(translate) == 2 and all(map(math.isfinite, translate)), "translate must be two finite numbers")
        object.__setattr__(self, "translate", translate)
        _require(_finite(self.rotate), "rotate must be a finite number of degrees")
        _require(self.model is None or (isinstance(self.model, str) and len(self.model) <= MAX_LABEL),
                 "model must be a model fingerprint (a short string) or null")
        object.__setattr__(self, "truncation_psi", float(self.truncation_psi))
        object.__setattr__(self, "rotate", float(self.rotate))

    # -- convenience -------------------------------------------------------------------
    def replace(self, **changes: Any) -> "EditRecipe":
        return dataclasses.replace(self, **changes)

    def mix_weights(self, num_ws: int) -> list[float]:
        """Per-layer blend weights padded (or cut) to ``num_ws``."""
        return [self.mix[i] if i < len(self.mix) else 0.0 for i in range(num_ws)]

    def with_layers_from_b(self, layers: Sequence[int], num_ws: int, mix_seed: int | None = None) -> "EditRecipe":
        """The StyleGAN paper's style mixing: ``layers`` come wholly from seed B, the rest from A."""
        chosen = set(layers)
        mix = tuple(1.0 if i in chosen else 0.0 for i in range(num_ws))
        return self.replace(mix=mix, mix_seed=self.mix_seed if mix_seed is None else mix_seed)

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["edits"] = [dataclasses.asdict(e) for e in self.edits]
        return {"version": RECIPE_VERSION, **data}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> "EditRecipe":
        _require(isinstance(data, dict), "a recipe must be a JSON object")
        data = dict(data)
        version = data.pop("version", None)
        _require(version == RECIPE_VERSION, f"unsupported recipe version {version!r} (this latentstudio reads version {RECIPE_VERSION})")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        _require(not unknown, f"unknown recipe fields: {', '.join(unknown)}")
        try:
            edits = tuple(_edit_from_dict(e) for e in data.pop("edits", ()))
            for key in ("latent", "mix", "translate"):
                if data.get(key) is not None:
                    _require(isinstance(data[key], (list, tuple)), f"{key} must be a list of numbers")
                    data[key] = tuple(data[key])
            return cls(**data, edits=edits)
        except (TypeError, ValueError) as error:
            if isinstance(error, RecipeError):
                raise
            raise RecipeError(f"malformed recipe: {error}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> "EditRecipe":
        """A recipe from JSON text (at most :data:`MAX_RECIPE_CHARS`, nested at most
        :data:`MAX_RECIPE_DEPTH` deep); :class:`RecipeError` for anything else."""
        try:
            data = bounded_json.loads(text, max_chars=MAX_RECIPE_CHARS, max_depth=MAX_RECIPE_DEPTH)
        except bounded_json.JSONError as error:
            raise RecipeError(f"not a recipe: {error}") from None
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "EditRecipe":
        """A recipe ``.json`` file (regular files of at most :data:`MAX_RECIPE_CHARS` bytes);
        :class:`RecipeError` naming the file otherwise."""
        data = read_regular_file(path, MAX_RECIPE_CHARS, prefixed(RecipeError), "recipe file")
        try:
            return cls.from_json(data)
        except RecipeError as error:
            raise RecipeError(f"{os.fsdecode(path)}: {error}") from None


def _edit_from_dict(data: Any) -> DirectionEdit:
    _require(isinstance(data, dict), "each edit must be a JSON object")
    names = {f.name for f in dataclasses.fields(DirectionEdit)}
    unknown = sorted(set(data) - names)
    _require(not unknown, f"unknown edit fields: {', '.join(unknown)}")
    _require(isinstance(data.get("vector"), (list, tuple)), "edit vector must be a list of numbers")
    return DirectionEdit(**{**data, "vector": tuple(data["vector"])})


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise RecipeError(message)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# -- latents -------------------------------------------------------------------------------
def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """``z`` for a seed, exactly as NVlabs ``gen_images.py`` draws it: ``[1, z_dim]`` float64."""
    return np.random.RandomState(seed).randn(1, z_dim)


def class_vector(G: torch.nn.Module, class_index: int | None, device: torch.device) -> torch.Tensor:
    """One-hot ``c`` for conditional models (``[1, c_dim]``); empty for unconditional ones."""
    c = torch.zeros([1, G.c_dim], device=device)
    if G.c_dim:
        if class_index is None:
            raise RecipeError(f"this model is conditional ({G.c_dim} classes): choose a class")
        if not 0 <= class_index < G.c_dim:
            raise RecipeError(f"class {class_index} is out of range for a model with {G.c_dim} classes")
        c[0, class_index] = 1
    return c


def map_seed(G: torch.nn.Module, seed: int, class_index: int | None, device: torch.device) -> torch.Tensor:
    """Untruncated ``ws`` for a seed: ``[1, num_ws, w_dim]``."""
    z = torch.from_numpy(seed_to_z(seed, G.z_dim)).to(device=device, dtype=torch.float32)
    return G.mapping(z, class_vector(G, class_index, device), truncation_psi=1)


def compose_ws(G: torch.nn.Module, recipe: EditRecipe, ws_a: torch.Tensor | None = None, ws_b: torch.Tensor | None = None) -> torch.Tensor:
    """The ``ws`` a recipe describes: ``[1, num_ws, w_dim]`` on G's device.

    Order: map seed A (and B), blend per layer, truncate towards ``w_avg`` on the first
    ``cutoff`` layers, then add direction edits. Blending and truncation commute (both are
    affine per layer), so this equals NVlabs' truncate-then-mix. ``ws_a`` / ``ws_b`` let a
    caller pass already-mapped latents (the renderer caches them).
    """
    device = G.mapping.w_avg.device
    num_ws, w_dim = G.num_ws, G.w_dim
    with torch.no_grad():
        if recipe.latent is not None:
            latent = torch.tensor(recipe.latent, dtype=torch.float32, device=device)
            if latent.numel() == w_dim:
                ws = latent.reshape(1, 1, w_dim).repeat(1, num_ws, 1)
            elif latent.numel() == num_ws * w_dim:
                ws = latent.reshape(1, num_ws, w_dim)
            else:
                raise RecipeError(f"stored latent has {latent.numel()} values; this model needs {w_dim} or {num_ws}x{w_dim}")
        else:
            ws = ws_a if ws_a is not None else map_seed(G, recipe.seed, recipe.class_index, device)
        weights = recipe.mix_weights(num_ws)
        if recipe.mix_seed is not None and any(weights):
            other = ws_b if ws_b is not None else map_seed(G, recipe.mix_seed, recipe.class_index, device)
            mix = torch.tensor(weights, dtype=torch.float32, device=device).reshape(1, num_ws, 1)
            ws = torch.lerp(ws, other, mix)  # exact at 0 and 1: a layer "from B" is B's latent
        if recipe.truncation_psi != 1:
            cutoff = num_ws if recipe.truncation_cutoff is None else min(recipe.truncation_cutoff, num_ws)
            w_avg = G.mapping.w_avg.reshape(1, 1, w_dim)
            truncated = w_avg.lerp(ws[:, :cutoff], recipe.truncation_psi)
            ws = torch.cat([truncated, ws[:, cutoff:]], dim=1)
        else:
            ws = ws.clone()
        for edit in recipe.edits:
            if not edit.enabled or edit.strength == 0:
                continue
            if len(edit.vector) != w_dim:
                raise RecipeError(f"direction {edit.direction!r} has {len(edit.vector)} dimensions; this model's W has {w_dim}")
            vector = torch.tensor(edit.vector, dtype=torch.float32, device=device)
            ws[:, edit.layer_slice(num_ws)] += (edit.strength * edit.sigma) * vector
    return ws
