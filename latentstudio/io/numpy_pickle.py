"""numpy arrays, dtypes and scalars in pickles, re-implemented instead of delegated to numpy.

numpy's own ``dtype.__setstate__`` trusts the file: a pickled dtype whose state declares
fields at arbitrary offsets, then an array or scalar built with it, reads and writes outside
its buffer (a crash at best, leaked heap bytes in the loaded settings at worst). Here a dtype
is only ever a simple numeric or boolean one named by a descriptor string (``'f4'``,
``'<i8'``, ``'|b1'``); its pickled state may say nothing but the byte order; an array's bytes
must be exactly shape x itemsize and are copied (``np.frombuffer(...).copy()``); a scalar
comes out as the Python number it holds.

API: ``NUMPY_GLOBALS``, allow-list entries (see :mod:`latentstudio.io.safe_pickle`) for
``numpy.dtype``, ``numpy.ndarray``, and ``_reconstruct`` / ``scalar`` under both
``numpy.core.multiarray`` (numpy 1.x pickles, e.g. NVlabs TensorFlow files) and
``numpy._core.multiarray`` (numpy 2). ``simple_dtype(spec)`` is the dtype check alone.
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from latentstudio.io.safe_pickle import Allowed, Budget, UnsafePickle

MAX_DIMS = 32
_DESCRIPTOR = re.compile(r"[<>|=]?(?:[?bBhHiIlLqQefdFD]|b1|[iu][1248]|f[248]|c(?:8|16))")


def simple_dtype(spec: Any) -> np.dtype:
    """The dtype a descriptor string names, if it is a simple number or boolean type."""
    if type(spec) is not str or not _DESCRIPTOR.fullmatch(spec):
        raise UnsafePickle(f"numpy dtype {spec!r:.40} is not a simple numeric type given by name")
    dtype = np.dtype(spec)
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None or dtype.hasobject:
        raise UnsafePickle(f"numpy dtype {spec!r} is not a simple numeric type")
    return dtype


class _PendingDType:
    """``numpy.dtype(...)`` before its BUILD (which may only set the byte order)."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype


class _PendingArray:
    """``_reconstruct(ndarray, ...)`` before its BUILD brings shape, dtype and bytes."""


def _as_dtype(value: Any) -> np.dtype:
    if isinstance(value, _PendingDType):
        return value.dtype
    if isinstance(value, np.dtype):
        return value
    raise UnsafePickle(f"a numpy dtype was expected, found a {type(value).__name__}")


def _dtype_call(budget: Budget, spec: Any, align: Any = False, copy: Any = False) -> _PendingDType:
    if type(align) is not bool or type(copy) is not bool:
        raise UnsafePickle("numpy dtype with malformed flags")
    return _PendingDType(simple_dtype(spec))


def _dtype_build(budget: Budget, pending: _PendingDType, state: Any) -> np.dtype:
    """Accept exactly the state numpy writes for a simple dtype; take only its byte order."""
    if type(state) is not tuple or len(state) not in (8, 9):
        raise UnsafePickle("numpy dtype state of an unexpected form")
    version, order, subarray, names, fields, elsize, alignment, flags = state[:8]
    metadata = state[8] if len(state) == 9 else None
    if (version, subarray, names, fields, elsize, alignment, metadata) != (3 if len(state) == 8 else 4, None, None, None, -1, -1, None) \
            or type(flags) is not int or flags != 0 or order not in ("<", ">", "|", "="):
        raise UnsafePickle("numpy dtype state declares fields, sub-arrays, sizes or flags (not a simple dtype)")
    dtype = pending.dtype
    if order == "|":
        if dtype.itemsize != 1:
            raise UnsafePickle(f"numpy dtype {dtype} without a byte order")
        return dtype
    return dtype.newbyteorder(order) if dtype.itemsize > 1 else dtype


def _reconstruct(budget: Budget, cls: Any, shape: Any, dtype: Any) -> _PendingArray:
    if cls is not _NDARRAY or type(shape) is not tuple or dtype not in (b"b", "b"):
        raise UnsafePickle("numpy _reconstruct of something other than a plain ndarray")
    return _PendingArray()


def _array_build(budget: Budget, pending: _PendingArray, state: Any) -> np.ndarray:
    if type(state) is not tuple or len(state) not in (4, 5):
        raise UnsafePickle("numpy array state of an unexpected form")
    if len(state) == 5:
        if state[0] != 1:
            raise UnsafePickle("numpy array state of an unknown version")
        state = state[1:]
    shape, dtype, fortran, data = state
    dtype = _as_dtype(dtype)
    if type(shape) is not tuple or len(shape) > MAX_DIMS or any(type(n) is not int or n < 0 for n in shape):
        raise UnsafePickle("numpy array with a malformed shape")
    if type(fortran) is not bool or type(data) is not bytes:
        raise UnsafePickle("numpy array whose data is not a bytes object (object arrays are refused)")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise UnsafePickle(f"numpy array of shape {list(shape)} and dtype {dtype} needs {expected:,} bytes but holds {len(data):,}")
    budget.charge_bytes(expected, "a numpy array")
    flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape))
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


def _scalar(budget: Budget, dtype: Any, payload: Any) -> bool | int | float | complex:
    dtype = _as_dtype(dtype)
    if type(payload) is not bytes or len(payload) != dtype.itemsize:
        raise UnsafePickle(f"numpy scalar of dtype {dtype} with {len(payload) if type(payload) is bytes else 'no'} bytes")
    return np.frombuffer(payload, dtype=dtype, count=1)[0].item()


_NDARRAY = Allowed("numpy.ndarray")
NUMPY_GLOBALS: dict[tuple[str, str], Allowed] = {
    ("numpy", "dtype"): Allowed("numpy.dtype", call=_dtype_call, build=_dtype_build),
    ("numpy", "ndarray"): _NDARRAY,
    **{(module, "_reconstruct"): Allowed(f"{module}._reconstruct", call=_reconstruct, build=_array_build)
       for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): Allowed(f"{module}.scalar", call=_scalar)
       for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
}
