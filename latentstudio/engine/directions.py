"""Directions in W: finding them (PCA, SeFa, supervised) and keeping them (``DirectionSet``).

A direction is a unit vector in W plus ``sigma``, the standard deviation of sampled W along
it, so that a slider value means "so many typical steps" for any model and direction. All
finders are pure functions of a generator (or of latents) and return plain arrays or a
:class:`DirectionSet`; long ones take ``progress(done, total)`` and ``should_stop()``.

- PCA on sampled W (GANSpace, Härkönen et al. 2020): the axes along which W varies most.
- SeFa (Shen & Zhou 2021): eigenvectors of ``AᵀA`` where ``A`` stacks the (row-normalised)
  style-affine weights of the chosen layers, i.e. the W directions those layers' styles
  respond to most strongly. No sampling needed for the vectors themselves.
- Supervised (InterFaceGAN, Shen et al. 2020): the unit normal of a linear classifier (or
  regressor) fitted in W on labelled latents.
"""
from __future__ import annotations

import copy
import json
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from latentstudio import bounded_json
from latentstudio.engine.recipe import DirectionEdit, class_vector
from latentstudio.nets.layout import ws_layout
from latentstudio.untrusted import prefixed, read_npz

FORMAT_VERSION = 1
MAX_FILE_BYTES = 1 << 30  # what a direction set may inflate to
MAX_STATS_CHARS = 1 << 20
Progress = Callable[[int, int], None]
ShouldStop = Callable[[], bool]
SUPERVISED_METHODS = ("svm", "logistic", "linear")


class DirectionSetError(ValueError):
    """A direction set file is malformed, or was made for a model with another W."""


class DirectionSetWarning(UserWarning):
    """A direction set was made on another model with the same ``w_dim``: it may not mean much here."""


class Cancelled(Exception):
    """A long computation stopped because ``should_stop()`` returned true."""


# ---------------------------------------------------------------------------------------------
# DirectionSet


@dataclass
class DirectionSet:
    """Named unit directions in W with their slider calibration and provenance.

    ``vectors`` is ``[K, w_dim]`` float32 with unit rows; ``sigmas[k]`` is the standard
    deviation of sampled W projected on ``vectors[k]`` (one slider unit).
    ``layer_ranges[k]`` is the default inclusive ``(first, last)`` ws range, ``last = -1``
    meaning "to the last layer" (so a set stays usable across resolutions).
    ``explained_variance[k]`` is the fraction of the total variance of sampled W along the
    direction (PCA's explained-variance ratio; the same measure for every method).
    ``mean`` is the mean of sampled W. ``stats`` holds JSON-able extras (sample count, seed,
    SeFa eigenvalues, classifier accuracy...).
    """

    names: list[str]
    vectors: np.ndarray
    sigmas: np.ndarray
    layer_ranges: list[tuple[int, int]]
    method: str
    fingerprint: str
    w_dim: int
    explained_variance: np.ndarray | None = None
    mean: np.ndarray | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = [str(name) for name in self.names]
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        self.sigmas = np.asarray(self.sigmas, dtype=np.float32).reshape(-1)
        self.layer_ranges = [(int(first), int(last)) for first, last in self.layer_ranges]
        self.w_dim = int(self.w_dim)
        if self.explained_variance is not None:
            self.explained_variance = np.asarray(self.explained_variance, dtype=np.float32).reshape(-1)
        if self.mean is not None:
            self.mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        _validate(self)

    def __len__(self) -> int:
        return len(self.names)

    def edit(self, index: int, strength: float, first_layer: int | None = None, last_layer: int | None = None) -> DirectionEdit:
        """A recipe edit moving ``strength`` sigmas along direction ``index`` (default layer range
        unless ``first_layer`` / ``last_layer`` are given)."""
        default_first, default_last = self.layer_ranges[index]
        return DirectionEdit(
            direction=self.names[index],
            vector=tuple(float(v) for v in self.vectors[index]),
            strength=float(strength),
            first_layer=default_first if first_layer is None else int(first_layer),
            last_layer=default_last if last_layer is None else int(last_layer),
            sigma=float(self.sigmas[index]),
        )

    def subset(self, indices: Sequence[int]) -> "DirectionSet":
        """A new set with only the given directions, in that order."""
        indices = list(indices)
        return DirectionSet(
            names=[self.names[i] for i in indices],
            vectors=self.vectors[indices],
            sigmas=self.sigmas[indices],
            layer_ranges=[self.layer_ranges[i] for i in indices],
            method=self.method,
            fingerprint=self.fingerprint,
            w_dim=self.w_dim,
            explained_variance=None if self.explained_variance is None else self.explained_variance[indices],
            mean=self.mean,
            stats=dict(self.stats),
        )

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` readable with ``allow_pickle=False`` (plain arrays and a JSON string)."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {
            "format": np.array("latentstudio-directions"),
            "version": np.array(FORMAT_VERSION, dtype=np.int64),
            "names": np.array(self.names, dtype=np.str_),
            "vectors": self.vectors,
            "sigmas": self.sigmas,
            "layer_ranges": np.array(self.layer_ranges, dtype=np.int64).reshape(-1, 2),
            "method": np.array(self.method),
            "fingerprint": np.array(self.fingerprint),
            "w_dim": np.array(self.w_dim, dtype=np.int64),
            "stats": np.array(json.dumps(self.stats)),
        }
        if self.explained_variance is not None:
            arrays["explained_variance"] = self.explained_variance
        if self.mean is not None:
            arrays["mean"] = self.mean
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:  # a file handle: np.savez would append ".npz" to a bare name
            np.savez(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, expect_w_dim: int | None = None, expect_fingerprint: str | None = None) -> "DirectionSet":
        """Read a set saved by :meth:`save`, refusing anything else.

        Raises :class:`DirectionSetError` for a file that is not a direction set, is damaged,
        or whose W has another dimension than ``expect_w_dim``. A different
        ``expect_fingerprint`` with the same ``w_dim`` warns (:class:`DirectionSetWarning`)
        and loads: the directions are numbers of the right shape, but were found on another
        model, so they may not do what their names say.
        """
        path = Path(path)
        arrays = read_npz(path, MAX_FILE_BYTES, prefixed(DirectionSetError), "direction set (.npz) file")
        if str(arrays.get("format", "")) != "latentstudio-directions":
            raise DirectionSetError(f"{path}: not a latentstudio direction set (no 'format' marker)")
        version = arrays["version"].item() if "version" in arrays and arrays["version"].size == 1 else None
        if version != FORMAT_VERSION:
            raise DirectionSetError(f"{path}: direction set version {version!r:.20} is not supported (this latentstudio reads {FORMAT_VERSION})")
        missing = [key for key in ("names", "vectors", "sigmas", "layer_ranges", "method", "fingerprint", "w_dim") if key not in arrays]
        if missing:
            raise DirectionSetError(f"{path}: damaged direction set, missing {', '.join(missing)}")
        try:
            stats = bounded_json.loads(str(arrays["stats"]), max_chars=MAX_STATS_CHARS) if "stats" in arrays else {}
            dset = cls(
                names=[str(name) for name in np.atleast_1d(arrays["names"])],
                vectors=_float_array(arrays["vectors"], "vectors"),
                sigmas=_float_array(arrays["sigmas"], "sigmas"),
                layer_ranges=[tuple(pair) for pair in np.asarray(arrays["layer_ranges"]).astype(np.int64).reshape(-1, 2)],
                method=str(arrays["method"]),
                fingerprint=str(arrays["fingerprint"]),
                w_dim=int(arrays["w_dim"]),
                explained_variance=_float_array(arrays["explained_variance"], "explained_variance") if "explained_variance" in arrays else None,
                mean=_float_array(arrays["mean"], "mean") if "mean" in arrays else None,
                stats=stats if isinstance(stats, dict) else {},
            )
        except DirectionSetError as error:
            raise DirectionSetError(f"{path}: {error}") from None
        except (TypeError, ValueError, bounded_json.JSONError) as error:
            raise DirectionSetError(f"{path}: damaged direction set ({' '.join(str(error).split())[:160]})") from None
        if expect_w_dim is not None and dset.w_dim != expect_w_dim:
            raise DirectionSetError(
                f"{path}: these directions live in a {dset.w_dim}-dimensional W, but this model's W has "
                f"{expect_w_dim} dimensions: they were made for another model"
            )
        if expect_fingerprint is not None and dset.fingerprint != expect_fingerprint:
            warnings.warn(
                f"{path}: these directions were computed on another model (fingerprint {dset.fingerprint}, "
                f"this model is {expect_fingerprint}); they have the right size but may not change what their names say",
                DirectionSetWarning,
                stacklevel=2,
            )
        return dset


def _float_array(value: np.ndarray, name: str) -> np.ndarray:
    if value.dtype.kind not in "fiu":
        raise DirectionSetError(f"{name} must be numbers, found {value.dtype}")
    return value.astype(np.float32)


def _validate(dset: DirectionSet) -> None:
    count = len(dset.names)
    if dset.w_dim <= 0:
        raise DirectionSetError(f"w_dim must be positive, not {dset.w_dim}")
    if dset.vectors.shape != (count, dset.w_dim):
        raise DirectionSetError(f"vectors have shape {dset.vectors.shape}, expected ({count}, {dset.w_dim}) for {count} names")
    if dset.sigmas.shape != (count,) or len(dset.layer_ranges) != count:
        raise DirectionSetError(f"{count} names but {dset.sigmas.shape[0]} sigmas and {len(dset.layer_ranges)} layer ranges")
    if not np.all(np.isfinite(dset.vectors)) or not np.all(np.isfinite(dset.sigmas)):
        raise DirectionSetError("vectors and sigmas must be finite")
    if count and not np.allclose(np.linalg.norm(dset.vectors, axis=1), 1.0, atol=1e-3):
        raise DirectionSetError("direction vectors must have unit length")
    if np.any(dset.sigmas <= 0):
        raise DirectionSetError("sigmas must be positive")
    for first, last in dset.layer_ranges:
        if first < 0 or (last != -1 and last < first):
            raise DirectionSetError(f"bad layer range {first}..{last}")
    explained = dset.explained_variance
    if explained is not None and (explained.shape != (count,) or not np.all(np.isfinite(explained))):
        raise DirectionSetError(f"explained_variance must hold {count} finite numbers")
    if dset.mean is not None and (dset.mean.shape != (dset.w_dim,) or not np.all(np.isfinite(dset.mean))):
        raise DirectionSetError(f"mean must hold {dset.w_dim} finite numbers")


# ---------------------------------------------------------------------------------------------
# Sampling W


def sample_w(
    G: nn.Module,
    n: int,
    seed: int = 0,
    batch_size: int = 2048,
    class_index: int | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> np.ndarray:
    """``[n, w_dim]`` float32 untruncated W for ``n`` Gaussian z drawn from ``seed``.

    Batched through the mapping network only. Conditional models use ``class_index``, or a
    uniformly random class per sample when it is ``None``. ``progress(done, n)`` is called
    after each batch; ``should_stop()`` is checked before each one (raises :class:`Cancelled`).
    The z stream does not depend on ``batch_size`` (results agree up to float rounding).
    """
    if n <= 0:
        raise ValueError("the number of samples must be positive")
    device = G.mapping.w_avg.device
    rng = np.random.default_rng(seed)
    classes = None
    if G.c_dim:
        classes = np.full(n, class_index) if class_index is not None else rng.integers(0, G.c_dim, n)
    # A shallow copy shares the weights; with num_ws None it returns [N, w_dim] and skips
    # broadcasting every w to num_ws rows (about a seventh of the mapping time at 18 ws).
    mapping = copy.copy(G.mapping)
    mapping.num_ws = None
    out = np.empty((n, G.w_dim), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            if should_stop is not None and should_stop():
                raise Cancelled(f"sampling W stopped after {start} of {n} samples")
            stop = min(start + batch_size, n)
            z = torch.from_numpy(rng.standard_normal((stop - start, G.z_dim), dtype=np.float32)).to(device)  # one stream, drawn in order
            if classes is not None:
                c = torch.nn.functional.one_hot(torch.from_numpy(classes[start:stop]).long(), G.c_dim).float().to(device)
            else:
                c = class_vector(G, None, device).expand(stop - start, -1)
            out[start:stop] = mapping(z, c, truncation_psi=1).float().cpu().numpy()  # (B, w_dim)
            if progress is not None:
                progress(stop, n)
    return out


def projection_stats(samples: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sigmas (std of the samples projected on each unit vector) and explained-variance
    fractions (that variance over the total variance of the samples)."""
    centered = samples - samples.mean(axis=0, dtype=np.float64).astype(np.float32)
    projections = centered @ vectors.T  # (N, K)
    variances = projections.var(axis=0, ddof=1, dtype=np.float64)
    total = float(centered.var(axis=0, ddof=1, dtype=np.float64).sum())
    return np.sqrt(variances).astype(np.float32), (variances / total).astype(np.float32)


def _fingerprint(G: nn.Module) -> str:
    info = getattr(G, "info", None)
    if info is not None:
        return info.fingerprint
    from latentstudio.io.loader import fingerprint

    return fingerprint(G)


def direction_set_from_vectors(
    G: nn.Module,
    vectors: np.ndarray,
    names: Sequence[str],
    method: str,
    layer_ranges: Sequence[tuple[int, int]] | None = None,
    samples: int = 10_000,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    stats: dict[str, Any] | None = None,
) -> DirectionSet:
    """Wrap unit vectors as a :class:`DirectionSet`, calibrating sigmas on ``samples`` W."""
    vectors = _unit_rows(np.asarray(vectors, dtype=np.float32).reshape(-1, G.w_dim))
    w = sample_w(G, samples, seed=seed, progress=progress, should_stop=should_stop)
    sigmas, explained = projection_stats(w, vectors)
    return DirectionSet(
        names=list(names),
        vectors=vectors,
        sigmas=np.maximum(sigmas, 1e-8),
        layer_ranges=list(layer_ranges) if layer_ranges is not None else [(0, -1)] * len(vectors),
        method=method,
        fingerprint=_fingerprint(G),
        w_dim=G.w_dim,
        explained_variance=explained,
        mean=w.mean(axis=0),
        stats={"samples": samples, "seed": seed, **(stats or {})},
    )


# ---------------------------------------------------------------------------------------------
# PCA (GANSpace)


def pca_directions(
    G: nn.Module,
    num: int = 20,
    samples: int = 100_000,
    seed: int = 0,
    batch_size: int = 2048,
    solver: str = "covariance_eigh",
    layer_range: tuple[int, int] = (0, -1),
    class_index: int | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> DirectionSet:
    """The top ``num`` principal axes of ``samples`` sampled W, as a :class:`DirectionSet`.

    ``solver`` is scikit-learn's ``svd_solver``. ``"covariance_eigh"`` (default) eigendecomposes
    the ``w_dim x w_dim`` covariance, which for ``samples >> w_dim`` is the fastest and exact;
    ``"randomized"`` and ``"full"`` are there for comparison (``benchmarks/pca_100k.py``).
    Component signs are fixed (largest entry positive) so a seed gives the same set every time.
    """
    from sklearn.decomposition import PCA

    num = min(num, G.w_dim, samples)
    w = sample_w(G, samples, seed=seed, batch_size=batch_size, class_index=class_index, progress=progress, should_stop=should_stop)
    if should_stop is not None and should_stop():
        raise Cancelled("PCA stopped before fitting")
    pca = PCA(n_components=num, svd_solver=solver, random_state=seed).fit(w)
    vectors = _fix_signs(_unit_rows(pca.components_.astype(np.float32)))
    return DirectionSet(
        names=[f"pca:{k}" for k in range(num)],
        vectors=vectors,
        sigmas=np.sqrt(pca.explained_variance_).astype(np.float32),
        layer_ranges=[layer_range] * num,
        method="pca",
        fingerprint=_fingerprint(G),
        w_dim=G.w_dim,
        explained_variance=pca.explained_variance_ratio_.astype(np.float32),
        mean=pca.mean_.astype(np.float32),
        stats={"samples": samples, "seed": seed, "solver": solver, "total_variance": float(pca.explained_variance_.sum() / max(pca.explained_variance_ratio_.sum(), 1e-30))},
    )


# ---------------------------------------------------------------------------------------------
# SeFa


_SG2_PART = re.compile(r"^(\d+)x\d+ (conv0|conv1|torgb)$")


def style_affines(G: nn.Module, layers: tuple[int, int] = (0, -1)) -> list[tuple[str, nn.Module]]:
    """The style-affine layers driven by ws indices ``first..last`` (inclusive, ``-1``: last),
    as ``(module path, module)``, found from :func:`ws_layout` for StyleGAN2 and StyleGAN3."""
    layout = ws_layout(G)
    first, last = _resolve_range(layers, len(layout))
    found: list[tuple[str, nn.Module]] = []
    for layer in layout[first : last + 1]:
        for part in layer.name.split(" + "):
            match = _SG2_PART.match(part)
            path = f"b{match.group(1)}.{match.group(2)}" if match else part
            module = G.synthesis.get_submodule(f"{path}.affine")
            found.append((f"synthesis.{path}.affine", module))
    if not found:
        raise ValueError(f"layers {first}..{last} drive no style-affine layers")
    return found


def sefa_matrix(G: nn.Module, layers: tuple[int, int] = (0, -1)) -> np.ndarray:
    """The stacked style-affine weights of ``layers``, each row (one style channel) scaled to
    unit length: ``[total channels, w_dim]`` float64. All-zero rows (an untrained StyleGAN3
    input affine) are dropped."""
    rows = [module.weight.detach().double().cpu().numpy() for _, module in style_affines(G, layers)]
    stacked = np.concatenate(rows, axis=0)  # (C_total, w_dim)
    norms = np.linalg.norm(stacked, axis=1, keepdims=True)
    keep = norms[:, 0] > 1e-12
    return stacked[keep] / norms[keep]


def sefa_directions(
    G: nn.Module,
    num: int = 20,
    layers: tuple[int, int] = (0, -1),
    samples: int = 10_000,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> DirectionSet:
    """SeFa: the top ``num`` eigenvectors of ``AᵀA`` for the stacked, row-normalised style
    weights ``A`` of ``layers``; the edits default to the same layer range. Sigmas come from
    ``samples`` sampled W (sampling is only for slider units; the vectors need none)."""
    A = sefa_matrix(G, layers)
    eigenvalues, eigenvectors = np.linalg.eigh(A.T @ A)  # ascending
    order = np.argsort(eigenvalues)[::-1][: min(num, G.w_dim)]
    vectors = _fix_signs(eigenvectors[:, order].T.astype(np.float32))
    first, last = layers
    return direction_set_from_vectors(
        G,
        vectors,
        names=[f"sefa:{k}" for k in range(len(order))],
        method="sefa",
        layer_ranges=[(first, last)] * len(order),
        samples=samples,
        seed=seed,
        progress=progress,
        should_stop=should_stop,
        stats={"eigenvalues": [float(v) for v in eigenvalues[order]], "layers": [first, last]},
    )


# ---------------------------------------------------------------------------------------------
# Supervised (InterFaceGAN) and conditional editing


def supervised_direction(latents: np.ndarray, targets: np.ndarray, method: str = "svm", C: float = 1.0) -> tuple[np.ndarray, dict[str, float]]:
    """Unit normal of a linear model fitted in W: ``(vector [w_dim], stats)``.

    ``method``: ``"svm"`` (LinearSVC, InterFaceGAN) or ``"logistic"`` (LogisticRegression) on
    binary labels (positive = the attribute present); ``"linear"`` (Ridge) on real-valued
    scores. The vector points towards positive labels / higher scores. Latents are centred
    first (the normal does not change; the intercept is then easy to fit) but not rescaled,
    since rescaling W's axes would tilt the normal. ``stats`` has the training accuracy (or R²).
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.svm import LinearSVC

    X = np.asarray(latents, dtype=np.float64)
    y = np.asarray(targets).reshape(-1)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"need latents [N, w_dim] and N targets, got {X.shape} and {y.shape}")
    X = X - X.mean(axis=0)
    if method in ("svm", "logistic"):
        classes = np.unique(y)
        if len(classes) != 2:
            raise ValueError(f"{method} needs two classes (positive and negative), found {len(classes)}")
        y = (y == classes.max()).astype(int)
        model = LinearSVC(C=C, dual="auto", max_iter=20_000) if method == "svm" else LogisticRegression(C=C, max_iter=5_000)
        model.fit(X, y)
        stats = {"accuracy": float(model.score(X, y)), "positives": int(y.sum()), "negatives": int(len(y) - y.sum())}
    elif method == "linear":
        model = Ridge(alpha=1.0 / C).fit(X, y.astype(np.float64))
        stats = {"r2": float(model.score(X, y.astype(np.float64)))}
    else:
        raise ValueError(f"unknown supervised method {method!r} (choose from {', '.join(SUPERVISED_METHODS)})")
    normal = np.asarray(model.coef_, dtype=np.float64).reshape(-1)
    norm = np.linalg.norm(normal)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError("the fitted model has no direction (all labels explained by the intercept)")
    return (normal / norm).astype(np.float32), stats


def orthonormalize(vectors: np.ndarray) -> np.ndarray:
    """Gram-Schmidt in the given order: ``[K, D]`` -> orthonormal rows spanning the same
    nested subspaces, each row keeping the sign of its input. Raises on dependent rows."""
    vectors = np.asarray(vectors, dtype=np.float64).reshape(len(vectors), -1)
    q, r = np.linalg.qr(vectors.T)  # columns of q: orthonormal basis, in order
    diagonal = np.diag(r)
    if np.any(np.abs(diagonal) < 1e-8 * max(1.0, np.abs(r).max(initial=0.0))):
        raise ValueError("the vectors are linearly dependent")
    return (q * np.sign(diagonal)).T.astype(np.float32)


def project_out(direction: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Conditional editing: ``direction`` with its components along ``others`` removed,
    renormalised, so moving along it leaves the projections on ``others`` unchanged."""
    direction = np.asarray(direction, dtype=np.float64).reshape(-1)
    others = np.asarray(others, dtype=np.float64).reshape(-1, direction.shape[0])
    if len(others):
        basis = orthonormalize(others).astype(np.float64)
        direction = direction - basis.T @ (basis @ direction)
    norm = np.linalg.norm(direction)
    if norm < 1e-6:
        raise ValueError("the direction lies in the span of the directions to project out")
    return (direction / norm).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# helpers


def display_name(name: str) -> str:
    """``pca:0`` -> ``PC1``, ``sefa:2`` -> ``SeFa 3`` (people count from one); others unchanged."""
    method, _, index = name.partition(":")
    if method in ("pca", "sefa") and index.isdigit():
        return ("PC" if method == "pca" else "SeFa ") + str(int(index) + 1)
    return name


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms < 1e-12):
        raise ValueError("a direction vector is zero")
    return (vectors / norms).astype(np.float32)


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip rows so each one's largest-magnitude entry is positive (eigenvector signs are arbitrary)."""
    flip = np.sign(vectors[np.arange(len(vectors)), np.abs(vectors).argmax(axis=1)])
    return (vectors * flip[:, None]).astype(np.float32)


def _resolve_range(layers: tuple[int, int], num_ws: int) -> tuple[int, int]:
    first, last = layers
    last = num_ws - 1 if last == -1 else last
    if not 0 <= first <= last < num_ws:
        raise ValueError(f"layer range {layers[0]}..{layers[1]} is outside 0..{num_ws - 1}")
    return first, last
