"""A pickle reader that can only build data, never run code.

NVlabs network pickles (``network-snapshot-*.pkl``) store each network as
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` where ``meta`` carries the
class's Python source (``module_src``) and the object's ``__dict__`` (init kwargs,
parameters, buffers, submodules). Unpickling such a file with ``pickle.load`` executes that
source. We never do: :class:`RestrictedUnpickler` resolves only an exact allow-list of
``(module, name)`` globals, and the persistence hook is replaced by a function that records
the class name and state as plain data (:class:`PersistentRecord`) and drops the source.
Tensors are rebuilt with ``torch.load(..., weights_only=True)``, itself a restricted loader.
"""
from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable

import numpy as np
import torch


@dataclass
class PersistentRecord:
    """What a persistent NVlabs object was, as data: its class name and its ``__dict__``.

    ``module_src`` is deliberately not kept: it is code, and it is never needed, because the
    architecture is fully described by ``_init_kwargs`` and the stored tensors.
    """

    class_name: str
    state: dict[str, Any] = field(default_factory=dict)
    version: int | None = None


class EasyDictRecord(dict):
    """Stands in for ``dnnlib.util.EasyDict`` (a dict with attribute access)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _reconstruct_persistent_obj(meta: dict) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("persistent object of an unknown kind (expected type='class')")
    class_name = meta.get("class_name")
    state = meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise pickle.UnpicklingError("persistent object without a class name or state")
    return PersistentRecord(class_name=class_name, state=state, version=meta.get("version"))


def _load_storage_from_bytes(data: bytes) -> Any:
    """Replacement for ``torch.storage._load_from_bytes``: the same, but weights-only."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _numpy_scalar(dtype: np.dtype, payload: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("numpy scalar of object dtype is not allowed")
    if not isinstance(payload, bytes) or len(payload) != dtype.itemsize:
        raise pickle.UnpicklingError("malformed numpy scalar")
    return np.frombuffer(payload, dtype=dtype)[0]


def _numpy_dtype(spec: Any, align: bool = False, copy: bool = False) -> np.dtype:
    if not isinstance(spec, str):
        raise pickle.UnpicklingError("numpy dtype must be given by name")
    dtype = np.dtype(spec)
    if dtype.hasobject:
        raise pickle.UnpicklingError("numpy object dtype is not allowed")
    return dtype


def _numpy_reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    """Replacement for ``numpy.core.multiarray._reconstruct``: plain ndarrays only.

    The array's contents arrive afterwards through ``ndarray.__setstate__``, whose dtype was
    itself built by :func:`_numpy_dtype` (so never an object array).
    """
    if cls is not np.ndarray or not isinstance(shape, tuple):
        raise pickle.UnpicklingError("only plain numpy arrays may be reconstructed")
    return np.ndarray.__new__(np.ndarray, shape, np.uint8)


# The exact allow-list. Everything else is refused by name.
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDictRecord,
    ("dnnlib", "EasyDict"): EasyDictRecord,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
}


class DisallowedGlobal(pickle.UnpicklingError):
    """The pickle asked for a global outside :data:`ALLOWED_GLOBALS`."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name
        super().__init__(f"disallowed global {module}.{name}")


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only knows :data:`ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DisallowedGlobal(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        # torch.save-style persistent ids never appear in network pickles.
        raise pickle.UnpicklingError("persistent ids are not allowed in network pickles")


def restricted_load(stream: BinaryIO) -> Any:
    """Unpickle ``stream`` with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(stream).load()
