"""NVlabs network pickles (stylegan3 and stylegan2-ada-pytorch code bases), read as data.

Each network in such a file is ``torch_utils.persistence._reconstruct_persistent_obj(meta)``,
where ``meta`` carries the class's Python source (``module_src``) and the object's
``__dict__`` (init kwargs, parameters, buffers, submodules). ``pickle.load`` would execute that
source. Here the bounded unpickler of :mod:`latentstudio.io.safe_pickle` turns each such
object into a :class:`PersistentRecord` (class name and state; the source is dropped
unread), tensors come through the checked rebuilds of :mod:`latentstudio.io.tensors`, numpy
values through :mod:`latentstudio.io.numpy_pickle`, and the network is rebuilt with our own
classes from the stored settings (validated first) and tensors.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn

from latentstudio.io.architectures import UnsupportedNetwork, build_checked, network_class
from latentstudio.io.errors import ModelLoadError, describe_error
from latentstudio.io.numpy_pickle import NUMPY_GLOBALS
from latentstudio.io.safe_pickle import (
    ALLOWED_GLOBALS,
    Allowed,
    Budget,
    DisallowedGlobal,
    Record,
    UnsafePickle,
    restricted_load,
)
from latentstudio.io.tensors import TENSOR_GLOBALS

NETWORK_KEYS = ("G", "D", "G_ema")
MAX_PLAIN_LIST = 4096  # elements of a numpy array accepted as a setting


@dataclass
class PersistentRecord(Record):
    """What a persistent NVlabs object was, as data: its class name and its ``__dict__``.

    ``module_src`` is deliberately not kept: it is code, and it is never needed, because the
    architecture is fully described by ``_init_kwargs`` and the stored tensors.
    """

    class_name: str
    state: dict[str, Any] = field(default_factory=dict)
    version: int | None = None


def _reconstruct_persistent_obj(budget: Budget, meta: Any) -> PersistentRecord:
    if type(meta) is not dict or meta.get("type") != "class":
        raise UnsafePickle("a persistent object of an unknown kind (expected type='class')")
    class_name, state, version = meta.get("class_name"), meta.get("state"), meta.get("version")
    if type(class_name) is not str or type(state) is not dict or not (version is None or type(version) is int):
        raise UnsafePickle("a persistent object without a class name or state")
    return PersistentRecord(class_name=class_name, state=state, version=version)


def _easydict(budget: Budget, *args: Any) -> dict:
    """``dnnlib.EasyDict()`` (a dict with attribute access) -> a plain dict; items follow by SETITEMS."""
    if args:
        raise UnsafePickle("EasyDict constructed with arguments")
    return {}


_EASYDICT = Allowed("dnnlib.util.EasyDict", new=_easydict, call=_easydict)
NVLABS_GLOBALS: dict[tuple[str, str], Allowed] = {
    **ALLOWED_GLOBALS,
    **TENSOR_GLOBALS,
    **NUMPY_GLOBALS,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): Allowed(
        "torch_utils.persistence._reconstruct_persistent_obj", call=_reconstruct_persistent_obj),
    ("dnnlib.util", "EasyDict"): _EASYDICT,
    ("dnnlib", "EasyDict"): _EASYDICT,
}


def read_nvlabs_pickle(path: Path, stream: BinaryIO, size: int, budget: Budget) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Networks in the file by name (``G``, ``D``, ``G_ema``) and provenance details."""
    try:
        data = restricted_load(stream, size, NVLABS_GLOBALS, budget=budget)
    except DisallowedGlobal as error:
        hint = (" It looks like a TensorFlow-era pickle, but not one whose first object is a network."
                if error.module.startswith("dnnlib.tflib") else "")
        reason = str(error) if not str(error).startswith("disallowed global") else (
            f"the pickle asks for {error.module}.{error.name}, which is not on latentstudio's allow-list "
            f"of data types, so it was not loaded (pickles can run code; only NVlabs network "
            f"pickles made of tensors and settings are accepted).{hint}")
        raise ModelLoadError(path, reason) from None
    except UnsafePickle as error:
        raise ModelLoadError(path, f"not a readable network pickle; {describe_error(error)}") from None

    if not isinstance(data, dict) or not any(isinstance(data.get(k), PersistentRecord) for k in NETWORK_KEYS):
        found = type(data).__name__ if not isinstance(data, dict) else f"a dict with keys {sorted(map(str, data))[:8]}"
        raise ModelLoadError(
            path,
            f"a pickle, but not an NVlabs network pickle: found {found}, expected a dict with G, D and G_ema networks",
        )
    networks: dict[str, nn.Module] = {}
    for key in NETWORK_KEYS:
        record = data.get(key)
        if isinstance(record, PersistentRecord):
            networks[key] = _rebuild(path, key, record)
    provenance: dict[str, Any] = {"source_format": "nvlabs-pickle"}
    training_set = data.get("training_set_kwargs")
    if isinstance(training_set, dict):
        provenance["training_set"] = {str(k): v for k, v in training_set.items() if isinstance(v, (str, int, float, bool, type(None)))}
    return networks, provenance


def network_kind(record: PersistentRecord) -> str:
    """``stylegan3`` if the synthesis network has a Fourier-feature ``input`` layer, else ``stylegan2``."""
    if record.class_name != "Generator":
        return "stylegan2"
    synthesis = (record.state.get("_modules") or {}).get("synthesis")
    if isinstance(synthesis, PersistentRecord) and "input" in (synthesis.state.get("_modules") or {}):
        return "stylegan3"
    return "stylegan2"


def _rebuild(path: Path, key: str, record: PersistentRecord) -> nn.Module:
    kind = network_kind(record)
    try:
        init_kwargs = _init_kwargs(kind, record)
        stored = {name: value for name, value in record.state.items() if not name.startswith("_")}
        return build_checked(kind, record.class_name, init_kwargs, state_dict_of(record), key, stored)
    except (UnsupportedNetwork, TypeError, ValueError) as error:
        raise ModelLoadError(path, f"network {key}: {describe_error(error, 240)}") from None


def _init_kwargs(kind: str, record: PersistentRecord) -> dict[str, Any]:
    kwargs = record.state.get("_init_kwargs") or {}
    args = record.state.get("_init_args") or ()
    if not isinstance(kwargs, dict) or not isinstance(args, (tuple, list)):
        raise UnsupportedNetwork("the stored constructor arguments are not a dict and a tuple")
    kwargs = dict(kwargs)
    if args:
        # Positional constructor arguments: name them from our class's signature.
        names = [n for n in inspect.signature(network_class(kind, record.class_name).__init__).parameters if n != "self"]
        if len(args) > len(names):
            raise UnsupportedNetwork(f"{len(args)} positional settings, more than {record.class_name} takes")
        kwargs.update(zip(names, args))
    return _plain(kwargs)


def _plain(value: Any) -> Any:
    """Settings as JSON-ready values: dicts with string keys, lists, numbers, strings.

    ``value`` has passed :func:`~latentstudio.io.safe_pickle.check_plain`, so this walk is
    bounded; small numpy arrays (StyleGAN3 keeps sizes as arrays) become lists.
    """
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        if value.size > MAX_PLAIN_LIST:
            raise UnsupportedNetwork(f"a setting is an array of {value.size:,} numbers")
        return value.tolist()
    if isinstance(value, torch.Tensor):
        raise UnsupportedNetwork("a setting is a tensor, not a number")
    return value


def state_dict_of(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """The ``state_dict`` the pickled module would have, gathered from its stored ``__dict__``."""
    state = record.state
    result: dict[str, torch.Tensor] = {}
    for name, param in _entries(state, "_parameters"):
        if param is not None:
            result[prefix + name] = _tensor(param, prefix + name)
    skip = state.get("_non_persistent_buffers_set") or set()
    if not isinstance(skip, (set, list, tuple)):
        raise UnsupportedNetwork("the stored _non_persistent_buffers_set is not a set")
    for name, buffer in _entries(state, "_buffers"):
        if buffer is not None and name not in skip:
            result[prefix + name] = _tensor(buffer, prefix + name)
    for name, child in _entries(state, "_modules"):
        if isinstance(child, PersistentRecord):
            result.update(state_dict_of(child, f"{prefix}{name}."))
    return result


def _entries(state: dict[str, Any], key: str) -> list[tuple[str, Any]]:
    entries = state.get(key) or {}
    if not isinstance(entries, dict):
        raise UnsupportedNetwork(f"the stored {key} is not a dict")
    return [(str(name), value) for name, value in entries.items()]


def _tensor(value: Any, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise UnsupportedNetwork(f"{name} is a {type(value).__name__}, not a tensor")
    return value.detach()
