"""``projected_w.npz``: latents in the layout of NVlabs' projector.

NVlabs ``projector.py`` writes ``np.savez(path, w=...)`` with ``w`` float32
``[1, num_ws, w_dim]`` and ``gen_images.py --projected-w`` renders every row of it, so a file
written here works there and theirs works here. The reader treats the file as hostile
(:func:`latentstudio.untrusted.read_npz`): regular files only, no pickles, every entry's size
checked against :data:`MAX_FILE_BYTES` before it is inflated and every array's header against
its bytes; then floats only, the shape checked against the model, finite values only, and
every failure one :class:`ProjectedWError` line.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from latentstudio.engine.recipe import EditRecipe
from latentstudio.untrusted import prefixed, read_npz

MAX_ROWS = 10_000
MAX_VALUES = 2**26  # 256 MiB of float32: far beyond any real file, small enough to read
MAX_FILE_BYTES = MAX_VALUES * 8 + (1 << 20)  # what the file may inflate to: MAX_VALUES as float64, plus headers


class ProjectedWError(ValueError):
    """A ``projected_w.npz`` is unreadable or does not fit the model."""


def save_projected_w(path: str | os.PathLike, latent) -> Path:
    """Write ``latent`` (``[num_ws, w_dim]`` or ``[N, num_ws, w_dim]``) as NVlabs does."""
    array = np.asarray(latent.detach().cpu() if hasattr(latent, "detach") else latent, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"latents must be [N, num_ws, w_dim], not {array.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # np.savez would append .npz to a name without it
        np.savez(handle, w=array)
    return path


def load_projected_w(path: str | os.PathLike, num_ws: int | None = None, w_dim: int | None = None) -> np.ndarray:
    """The latents of a ``projected_w.npz``: float32 ``[N, num_ws, w_dim]``, checked against
    the model's ``num_ws`` / ``w_dim`` when given."""
    path = Path(path)
    arrays = read_npz(path, MAX_FILE_BYTES, prefixed(ProjectedWError), "projected-W (.npz) file")
    if "w" not in arrays:
        raise ProjectedWError(f"{path}: no 'w' array (found: {', '.join(name[:40] for name in arrays) or 'nothing'}); "
                              "expected a projected_w.npz as NVlabs' projector writes")
    w = arrays["w"]
    _check(path, w.shape, w.dtype, num_ws, w_dim)
    w = w.astype(np.float32).reshape(-1, *w.shape[-2:])
    if not np.isfinite(w).all():
        raise ProjectedWError(f"{path}: the latents hold NaN or infinite values")
    return w


def _check(path: Path, shape: tuple[int, ...], dtype: np.dtype, num_ws: int | None, w_dim: int | None) -> None:
    if dtype.kind != "f":
        raise ProjectedWError(f"{path}: 'w' must hold floats, not {dtype}")
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or not 1 <= shape[0] <= MAX_ROWS or min(shape) < 1:
        raise ProjectedWError(f"{path}: 'w' must be [N, num_ws, w_dim] with N up to {MAX_ROWS}, not {list(shape)[:8]}")
    if int(np.prod(shape)) > MAX_VALUES:
        raise ProjectedWError(f"{path}: 'w' has {int(np.prod(shape)):,} values, more than a latent file can hold")
    if (num_ws is not None and shape[1] != num_ws) or (w_dim is not None and shape[2] != w_dim):
        raise ProjectedWError(f"{path}: latents are {shape[1]} x {shape[2]}; this model needs {num_ws} x {w_dim}")


def recipes_from_projected_w(path: str | os.PathLike, G) -> list[EditRecipe]:
    """One recipe per row of the file, ready for the renderer and the editor."""
    w = load_projected_w(path, int(G.num_ws), int(G.w_dim))
    fingerprint = getattr(getattr(G, "info", None), "fingerprint", None)
    class_index = 0 if G.c_dim else None
    return [EditRecipe(latent=tuple(row.reshape(-1).tolist()), class_index=class_index, model=fingerprint) for row in w]
