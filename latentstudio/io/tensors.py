"""Tensors from untrusted bytes: rebuilt only when every element they reach exists.

``torch._utils._rebuild_tensor_v2`` calls ``Tensor.set_``, which silently *grows* a storage
too small for the shape and stride it is given (the file then gets uninitialised memory as
weights), and a stride-0 view of one number becomes gigabytes once cast or copied. Here a
tensor is a view of a :class:`Storage` whose extent has been checked, whose element count is
charged to the file's :class:`~latentstudio.io.safe_pickle.Budget`, and whose dtype is a
known, non-quantized one. Weights must then pass :func:`check_weights`: floating point, finite.

API, for every format reader
----------------------------
``Storage.from_bytes(budget, dtype, data, offset=0, count=None)``
    A storage of ``count`` elements of ``dtype`` copied out of ``data`` (any bytes-like
    object, e.g. a zip entry read by :mod:`latentstudio.io.torch_zip`); its bytes are charged.
``STORAGE_TYPES`` / ``storage_dtype(entry)``
    The ``torch.FloatStorage``-style globals a pickle names storages by, and the dtype an
    allow-list entry for one of them stands for (``None`` if it is not one).
``rebuild_tensor(budget, storage, offset, size, stride)``
    The checked view (no growth, no negative strides or offsets, element count charged at
    four or more bytes each, since weights become float32).
``TENSOR_GLOBALS``
    Allow-list entries for ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``
    (both return plain tensors), ``torch.storage._load_from_bytes`` (torch's legacy
    serialisation of one storage, as NVlabs pickles embed it, parsed here with the same
    restricted unpickler instead of ``torch.load``) and the storage types.
``check_weights(tensors, owner)``
    Refuses, naming the tensor, integer / bool / complex weights and NaN or Inf values.
"""
from __future__ import annotations

import io
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentstudio.io.safe_pickle import Allowed, Budget, Record, SafeUnpickler, UnsafePickle

MAX_DIMS = 32
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
STORAGE_TYPES: dict[str, torch.dtype] = {
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "ByteStorage": torch.uint8,
    "CharStorage": torch.int8,
    "ShortStorage": torch.int16,
    "IntStorage": torch.int32,
    "LongStorage": torch.int64,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


@dataclass
class Storage(Record):
    """A flat tensor of one dtype, holding bytes that came from the file."""

    data: torch.Tensor

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @classmethod
    def from_bytes(cls, budget: Budget, dtype: torch.dtype, data: Any, offset: int = 0, count: int | None = None) -> "Storage":
        view = memoryview(data).cast("B")
        itemsize = torch.empty((), dtype=dtype).element_size()
        if count is None:
            count = (len(view) - offset) // itemsize
        nbytes = count * itemsize
        if offset < 0 or count < 0 or offset + nbytes > len(view):
            raise UnsafePickle(f"a storage declares {count:,} elements but its data holds {max(len(view) - offset, 0):,} bytes")
        budget.charge_bytes(nbytes, "a tensor storage")
        flat = torch.empty(nbytes, dtype=torch.uint8)
        if nbytes:
            flat.numpy()[:] = np.frombuffer(view, dtype=np.uint8, count=nbytes, offset=offset)
        return cls(flat.view(dtype))


def storage_dtype(entry: Any) -> torch.dtype | None:
    """The dtype a ``torch.XStorage`` allow-list entry stands for, else None."""
    token = entry.token if isinstance(entry, Allowed) else None
    return token if isinstance(token, torch.dtype) else None


def _int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise UnsafePickle(f"a tensor's {what} is {type(value).__name__} {value!r:.40}, not a non-negative integer")
    return value


def _dims(value: Any, what: str) -> tuple[int, ...]:
    if type(value) not in (tuple, list) or len(value) > MAX_DIMS:
        raise UnsafePickle(f"a tensor's {what} is not a tuple of at most {MAX_DIMS} integers")
    return tuple(_int(v, what) for v in value)


def rebuild_tensor(budget: Budget, storage: Any, offset: Any, size: Any, stride: Any) -> torch.Tensor:
    """A view of ``storage``, only if every element it reaches lies inside it (see module docstring)."""
    if not isinstance(storage, Storage):
        raise UnsafePickle(f"a tensor rebuilt from a {type(storage).__name__}, not a storage")
    offset, size, stride = _int(offset, "offset"), _dims(size, "shape"), _dims(stride, "stride")
    if len(size) != len(stride):
        raise UnsafePickle(f"a tensor with {len(size)} dimensions but {len(stride)} strides")
    numel = math.prod(size)
    available = storage.data.numel()
    extent = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if numel else offset
    if extent > available:
        raise UnsafePickle(
            f"a tensor of shape {list(size)} reaches element {extent:,} of a storage of {available:,} "
            f"(it would read outside its data)"
        )
    budget.charge_bytes(numel * max(storage.data.element_size(), 4), f"a tensor of shape {list(size)}")
    return torch.as_strided(storage.data, size, stride, offset)


def _rebuild_tensor_v2(budget: Budget, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if type(requires_grad) is not bool or backward_hooks not in (None, {}) or metadata not in (None, {}):
        raise UnsafePickle("a tensor with hooks, metadata or a malformed requires_grad flag")
    return rebuild_tensor(budget, storage, offset, size, stride)


def _rebuild_parameter(budget: Budget, data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor) or type(requires_grad) is not bool or backward_hooks not in (None, {}):
        raise UnsafePickle("a parameter rebuilt from something other than a tensor")
    return data


class _LegacyStorage:
    """Persistent-id hook for the one storage of a legacy blob: remembers what it declared."""

    def __init__(self) -> None:
        self.declared: tuple[torch.dtype, str, int] | None = None

    def __call__(self, budget: Budget, pid: Any) -> Any:
        if (type(pid) is not tuple or len(pid) not in (5, 6) or pid[0] != "storage" or storage_dtype(pid[1]) is None
                or type(pid[2]) is not str or type(pid[3]) is not str or (len(pid) == 6 and pid[5] is not None)):
            raise UnsafePickle("a legacy storage with a malformed persistent id")
        if self.declared is not None:
            raise UnsafePickle("a legacy storage blob that declares more than one storage")
        self.declared = (storage_dtype(pid[1]), pid[2], _int(pid[4], "element count"))
        return pid[2]


def read_legacy_storage(budget: Budget, blob: Any) -> Storage:
    """``torch.storage._load_from_bytes``: one storage in torch's legacy format, without ``torch.load``.

    Layout: three header pickles (magic number, protocol version, system info), the storage
    as a persistent id, the pickled list of storage keys, then per key an int64 element count
    and the raw little-endian elements. The header is the same in every blob a machine
    writes, so one already validated byte for byte is skipped.
    """
    if type(blob) is not bytes:
        raise UnsafePickle("a legacy storage that is not a bytes object")
    skip = next((len(header) for header in _LEGACY_HEADERS if blob.startswith(header)), 0)
    stream = io.BytesIO(blob)
    stream.seek(skip)
    hook = _LegacyStorage()
    unpickler = SafeUnpickler(stream, len(blob) - skip, _LEGACY_GLOBALS, hook, budget)
    if not skip:
        _check_legacy_header(unpickler)
        if len(_LEGACY_HEADERS) < 8:
            _LEGACY_HEADERS.add(blob[:unpickler.position])
    key = unpickler.load()
    keys = unpickler.load()
    if hook.declared is None or keys != [key]:
        raise UnsafePickle("a legacy storage blob whose keys do not match its storage")
    dtype, _, count = hook.declared
    start = skip + unpickler.position
    if len(blob) - start < 8:
        raise UnsafePickle("a legacy storage blob that ends before its data")
    (stored,) = struct.unpack_from("<q", blob, start)
    if stored != count:
        raise UnsafePickle(f"a legacy storage that declares {count:,} elements but stores {stored:,}")
    storage = Storage.from_bytes(budget, dtype, blob, start + 8, count)
    if start + 8 + storage.data.numel() * storage.data.element_size() != len(blob):
        raise UnsafePickle("a legacy storage blob with bytes after its data")
    return storage


def _check_legacy_header(unpickler: SafeUnpickler) -> None:
    if unpickler.load() != _LEGACY_MAGIC or unpickler.load() != _LEGACY_PROTOCOL:
        raise UnsafePickle("a storage blob that is not in torch's legacy format")
    info = unpickler.load()
    if type(info) is not dict or info.get("little_endian") is not True:
        raise UnsafePickle("a legacy storage written on a big-endian machine (not supported)")


_LEGACY_HEADERS: set[bytes] = set()  # header bytes already validated (a handful of machines at most)
_STORAGE_GLOBALS = {("torch", name): Allowed(f"torch.{name}", token=dtype) for name, dtype in STORAGE_TYPES.items()}
_LEGACY_GLOBALS = dict(_STORAGE_GLOBALS)

TENSOR_GLOBALS: dict[tuple[str, str], Allowed] = {
    ("torch._utils", "_rebuild_tensor_v2"): Allowed("torch._utils._rebuild_tensor_v2", call=_rebuild_tensor_v2),
    ("torch._utils", "_rebuild_parameter"): Allowed("torch._utils._rebuild_parameter", call=_rebuild_parameter),
    ("torch.storage", "_load_from_bytes"): Allowed("torch.storage._load_from_bytes", call=read_legacy_storage),
    **_STORAGE_GLOBALS,
}
# What the pickle of a torch zip file of plain tensors (state dicts, as ``torch.save`` writes
# them since 1.6) needs: tensor views of its storages and the storage type names, nothing else.
SAVED_TENSOR_GLOBALS: dict[tuple[str, str], Allowed] = {
    ("torch._utils", "_rebuild_tensor_v2"): TENSOR_GLOBALS[("torch._utils", "_rebuild_tensor_v2")],
    **_STORAGE_GLOBALS,
}


class BadWeights(ValueError):
    """A tensor that cannot be a weight; the message names it."""


def check_weights(tensors: Mapping[str, torch.Tensor], owner: str) -> None:
    """Every tensor is floating point and finite, or :class:`BadWeights` names the first that is not."""
    for name, tensor in tensors.items():
        if tensor.dtype not in FLOAT_DTYPES:
            kind = ("complex" if tensor.is_complex() else "boolean" if tensor.dtype == torch.bool
                    else "quantized" if tensor.is_quantized else "integer")
            raise BadWeights(f"{owner} tensor {name} holds {kind} values ({str(tensor.dtype).replace('torch.', '')}); "
                             f"weights must be floating point")
        # One float64 sum per tensor: NaN and Inf propagate, finite float32 values cannot
        # overflow it, and it allocates nothing (4x faster than isfinite().all()).
        if not math.isfinite(float(tensor.sum(dtype=torch.float64))):
            what = "NaN" if bool(torch.isnan(tensor).any()) else "Inf"
            raise BadWeights(f"{owner} tensor {name} contains {what} values")
