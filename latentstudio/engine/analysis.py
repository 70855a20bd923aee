"""Measuring directions: where they act (per-layer sensitivity), how smooth W is (perceptual
path length), and how cleanly directions match known factors (disentanglement).

Everything here works offline: no downloaded feature network. Where the literature uses a
learned perceptual distance (LPIPS), we offer the pixel distance and an "edge" distance, both
documented below and in ``docs/directions.md``:

- **pixel**: mean over pixels and channels of the image difference (absolute, in 0-255 units,
  for sensitivity; squared, on images in [-1, 1], for path length);
- **edge**: the same on the gradient magnitude of the grayscale image (forward differences),
  a cheap structural proxy: a uniform colour or brightness shift changes pixels but hardly
  any edges, while a change of shape or texture moves edges. It tells "this layer recolours"
  from "this layer reshapes".
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from latentstudio.engine.directions import Cancelled, DirectionSet, Progress, ShouldStop
from latentstudio.engine.recipe import EditRecipe, class_vector
from latentstudio.engine.renderer import Renderer
from latentstudio.nets.layout import ws_layout


def edge_magnitude(images: np.ndarray) -> np.ndarray:
    """``[..., H, W, C]`` images -> ``[..., H-1, W-1]`` gradient magnitude of their grayscale."""
    gray = np.asarray(images, dtype=np.float32).mean(axis=-1)
    dx = gray[..., :-1, 1:] - gray[..., :-1, :-1]
    dy = gray[..., 1:, :-1] - gray[..., :-1, :-1]
    return np.sqrt(dx * dx + dy * dy)


# ---------------------------------------------------------------------------------------------
# Per-layer sensitivity


@dataclass
class LayerSensitivity:
    """``pixel[k, l]``: mean absolute pixel change (0-255 units) when direction ``k`` is applied
    at ``±strength`` sigma to ws layer ``l`` alone, averaged over seeds, both signs, pixels and
    channels. ``edge[k, l]``: the same for the edge magnitude (see the module docstring)."""

    pixel: np.ndarray
    edge: np.ndarray
    strength: float
    seeds: list[int]
    direction_names: list[str]
    layer_names: list[str]

    def to_dict(self) -> dict:
        return {
            "measure": "mean |image change| (0-255) for the direction at +-strength sigma on one layer alone",
            "strength": self.strength,
            "seeds": self.seeds,
            "directions": self.direction_names,
            "layers": self.layer_names,
            "pixel": np.round(self.pixel, 4).tolist(),
            "edge": np.round(self.edge, 4).tolist(),
        }


def layer_sensitivity(
    renderer: Renderer | nn.Module,
    dset: DirectionSet,
    seeds: Sequence[int] = (0, 1, 2, 3),
    strength: float = 3.0,
    class_index: int | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> LayerSensitivity:
    """Render every (direction, layer, ±strength, seed) and compare with the unedited seed.

    Costs ``len(seeds) * (1 + 2 * K * num_ws)`` renders, through the same
    recipe -> renderer path the editor uses. ``progress(done, K)`` after each direction.
    """
    renderer = renderer if isinstance(renderer, Renderer) else Renderer(renderer)
    G = renderer.G
    num_ws = G.num_ws
    seeds = [int(seed) for seed in seeds]
    base_recipes = [EditRecipe(seed=seed, class_index=class_index) for seed in seeds]
    base = _images(renderer, base_recipes, batch_size)  # (S, H, W, C)
    base_edges = edge_magnitude(base)
    pixel = np.zeros((len(dset), num_ws), dtype=np.float32)
    edge = np.zeros_like(pixel)
    for k in range(len(dset)):
        if should_stop is not None and should_stop():
            raise Cancelled(f"layer sensitivity stopped after {k} of {len(dset)} directions")
        recipes = [
            recipe.replace(edits=(dset.edit(k, sign * strength, layer, layer),))
            for layer in range(num_ws)
            for sign in (-1.0, 1.0)
            for recipe in base_recipes
        ]
        edited = _images(renderer, recipes, batch_size).reshape(num_ws, 2, len(seeds), *base.shape[1:])
        pixel[k] = np.abs(edited - base).mean(axis=(1, 2, 3, 4, 5))
        edge[k] = np.abs(edge_magnitude(edited) - base_edges).mean(axis=(1, 2, 3, 4))
        if progress is not None:
            progress(k + 1, len(dset))
    return LayerSensitivity(
        pixel=pixel,
        edge=edge,
        strength=float(strength),
        seeds=seeds,
        direction_names=list(dset.names),
        layer_names=[layer.name for layer in ws_layout(G)],
    )


def _images(renderer: Renderer, recipes: list[EditRecipe], batch_size: int) -> np.ndarray:
    frames = renderer.render_many(recipes, batch_size=batch_size)
    for frame in frames:
        if not frame.ok:
            raise RuntimeError(f"render failed: {frame.error}")
    return np.stack([frame.raw for frame in frames]).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Perceptual path length


@dataclass
class PathLength:
    """Perceptual path length (Karras et al. 2019) with an offline distance.

    Each sample: ``d(img(t), img(t + epsilon)) / epsilon²`` on a random interpolation path
    (``lerp`` in W, ``slerp`` in Z); ``mean`` keeps samples between the 1st and 99th
    percentile, as the paper does. ``distance`` is ``"pixel"`` (mean squared difference of
    images in [-1, 1]) or ``"edge"`` (the same on edge magnitudes). Values are comparable only
    between runs with the same distance and resolution, not with published LPIPS numbers.
    """

    mean: float
    median: float
    samples: int
    epsilon: float
    space: str
    distance: str
    values: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {key: getattr(self, key) for key in ("mean", "median", "samples", "epsilon", "space", "distance")}


def perceptual_path_length(
    G: nn.Module,
    n: int = 100,
    epsilon: float = 1e-4,
    space: str = "w",
    distance: str = "pixel",
    seed: int = 0,
    batch_size: int = 16,
    class_index: int | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> PathLength:
    """Perceptual path length over ``n`` random paths (see :class:`PathLength`)."""
    if space not in ("w", "z"):
        raise ValueError("space must be 'w' or 'z'")
    if distance not in ("pixel", "edge"):
        raise ValueError("distance must be 'pixel' or 'edge'")
    device = G.mapping.w_avg.device
    generator = torch.Generator().manual_seed(seed)
    values = []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            if should_stop is not None and should_stop():
                raise Cancelled(f"path length stopped after {start} of {n} samples")
            count = min(batch_size, n - start)
            z = torch.randn([2 * count, G.z_dim], generator=generator)
            t = torch.rand([count, 1], generator=generator)
            if G.c_dim:
                classes = torch.full([count], class_index) if class_index is not None else torch.randint(0, G.c_dim, [count], generator=generator)
                c = torch.nn.functional.one_hot(classes, G.c_dim).float().repeat(2, 1)
            else:
                c = class_vector(G, None, torch.device("cpu")).expand(2 * count, -1)
            z0, z1 = z[:count], z[count:]
            c_pair = c[:count].to(device)
            if space == "w":
                w0 = G.mapping(z0.to(device), c_pair, truncation_psi=1)
                w1 = G.mapping(z1.to(device), c_pair, truncation_psi=1)
                t_dev = t.to(device).unsqueeze(1)
                ws = torch.cat([w0.lerp(w1, t_dev), w0.lerp(w1, t_dev + epsilon)])
            else:
                zt = torch.cat([_slerp(z0, z1, t), _slerp(z0, z1, t + epsilon)]).to(device)
                ws = G.mapping(zt, c_pair.repeat(2, 1), truncation_psi=1)
            images = G.synthesis(ws, noise_mode="const").float().cpu()  # (2B, C, H, W)
            a, b = images[:count], images[count:]
            if distance == "edge":
                a, b = (torch.from_numpy(edge_magnitude(x.permute(0, 2, 3, 1).numpy())) for x in (a, b))
            values.append(((a - b) ** 2).flatten(1).mean(dim=1).double().numpy() / epsilon**2)
            if progress is not None:
                progress(start + count, n)
    values = np.concatenate(values)
    low, high = np.percentile(values, [1, 99])
    kept = values[(values >= low) & (values <= high)]
    return PathLength(float(kept.mean()), float(np.median(values)), n, epsilon, space, distance, values)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a_unit, b_unit = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_unit * b_unit).sum(dim=1, keepdim=True).clamp(-1, 1))
    direction = b_unit - a_unit * torch.cos(omega)
    direction = direction / direction.norm(dim=1, keepdim=True)
    return a_unit * torch.cos(omega * t) + direction * torch.sin(omega * t)


# ---------------------------------------------------------------------------------------------
# Disentanglement against known factors


@dataclass
class DisentanglementReport:
    """How well each direction predicts each ground-truth factor.

    - ``correlation[k, j]``: Pearson correlation between the projection of the (centred)
      latents on direction ``k`` and factor ``j``: a one-direction linear probe.
    - ``probe_r2[j]``: R² of a least-squares fit of factor ``j`` from all K projections
      together: how much of the factor the set captures linearly at all.
    - ``normalized_mi[k, j]``: mutual information between the discretised projection and the
      discretised factor, divided by the factor's entropy (0: independent, 1: determines it).
    - ``mig``: mutual information gap (Chen et al. 2018): for each factor, the normalised MI
      of its best direction minus that of its second best, averaged over factors. High when
      every factor is captured by one direction and only one.
    Discretisation: ``bins`` equal-width bins, or the distinct values when there are at most
    ``bins`` of them (categorical factors).
    """

    direction_names: list[str]
    factor_names: list[str]
    correlation: np.ndarray
    probe_r2: np.ndarray
    normalized_mi: np.ndarray
    mig_per_factor: np.ndarray
    mig: float
    best_direction: list[int]

    def to_dict(self) -> dict:
        return {
            "directions": self.direction_names,
            "factors": self.factor_names,
            "correlation": np.round(self.correlation, 4).tolist(),
            "probe_r2": np.round(self.probe_r2, 4).tolist(),
            "normalized_mi": np.round(self.normalized_mi, 4).tolist(),
            "mig_per_factor": np.round(self.mig_per_factor, 4).tolist(),
            "mig": round(self.mig, 4),
            "best_direction": self.best_direction,
        }


def disentanglement_report(
    latents: np.ndarray,
    factors: np.ndarray,
    dset: DirectionSet,
    factor_names: Sequence[str] | None = None,
    bins: int = 20,
) -> DisentanglementReport:
    """Score ``dset`` against ground-truth ``factors`` ``[N, F]`` of ``latents`` ``[N, w_dim]``."""
    from sklearn.metrics import mutual_info_score

    latents = np.asarray(latents, dtype=np.float64)
    factors = np.asarray(factors, dtype=np.float64).reshape(len(latents), -1)
    if latents.shape[1] != dset.w_dim:
        raise ValueError(f"latents have {latents.shape[1]} dimensions, the direction set {dset.w_dim}")
    names = list(factor_names) if factor_names is not None else [f"factor {j}" for j in range(factors.shape[1])]
    projections = (latents - latents.mean(axis=0)) @ dset.vectors.T.astype(np.float64)  # (N, K)
    correlation = _pearson(projections, factors)  # (K, F)

    design = np.column_stack([projections, np.ones(len(latents))])
    fitted = design @ np.linalg.lstsq(design, factors, rcond=None)[0]
    residual = ((factors - fitted) ** 2).sum(axis=0)
    total = ((factors - factors.mean(axis=0)) ** 2).sum(axis=0)
    probe_r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.nan)

    codes_p = [_discretise(projections[:, k], bins) for k in range(projections.shape[1])]
    codes_f = [_discretise(factors[:, j], bins) for j in range(factors.shape[1])]
    normalized_mi = np.full((projections.shape[1], factors.shape[1]), np.nan)
    for j, f in enumerate(codes_f):
        entropy = mutual_info_score(f, f)
        if entropy > 0:
            for k, p in enumerate(codes_p):
                normalized_mi[k, j] = mutual_info_score(f, p) / entropy
    ranked = np.sort(np.nan_to_num(normalized_mi, nan=0.0), axis=0)[::-1]  # (K, F) descending
    second = ranked[1] if len(ranked) > 1 else np.zeros(ranked.shape[1])
    gaps = np.where(np.isnan(normalized_mi).all(axis=0), np.nan, ranked[0] - second)
    return DisentanglementReport(
        direction_names=list(dset.names),
        factor_names=names,
        correlation=correlation,
        probe_r2=probe_r2,
        normalized_mi=normalized_mi,
        mig_per_factor=gaps,
        mig=float(np.nanmean(gaps)) if np.isfinite(gaps).any() else float("nan"),
        best_direction=[int(k) for k in np.nan_to_num(normalized_mi, nan=-1.0).argmax(axis=0)],
    )


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    norms = np.outer(np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, (a.T @ b) / norms, np.nan)


def _discretise(values: np.ndarray, bins: int) -> np.ndarray:
    distinct, codes = np.unique(values, return_inverse=True)
    if len(distinct) <= bins:
        return codes
    edges = np.histogram_bin_edges(values, bins=bins)
    return np.digitize(values, edges[1:-1])
