"""NVlabs network pickles (stylegan3 and stylegan2-ada-pytorch code bases), read as data.

The restricted unpickler (:mod:`latentstudio.io.safe_pickle`) turns every persistent network
into a :class:`PersistentRecord`. Here we read each record's init kwargs and tensors and
rebuild the network with our own classes; the architecture comes from the stored kwargs and
module structure, never from the embedded source.
"""
from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentstudio.io.architectures import UnsupportedNetwork, build_network, load_weights, network_class
from latentstudio.io.errors import ModelLoadError
from latentstudio.io.safe_pickle import DisallowedGlobal, PersistentRecord, restricted_load

NETWORK_KEYS = ("G", "D", "G_ema")


def read_nvlabs_pickle(path: Path) -> tuple[dict[str, nn.Module], dict[str, Any]]:
    """Networks in the file by name (``G``, ``D``, ``G_ema``) and provenance details."""
    try:
        with open(path, "rb") as stream:
            data = restricted_load(stream)
    except DisallowedGlobal as error:
        hint = ""
        if error.module.startswith("dnnlib.tflib"):
            hint = " This is a TensorFlow-era StyleGAN pickle, which is not supported yet."
        raise ModelLoadError(
            path,
            f"the pickle asks for {error.module}.{error.name}, which is not on latentstudio's allow-list "
            f"of data types, so it was not loaded (pickles can run code; only NVlabs network "
            f"pickles made of tensors and settings are accepted).{hint}",
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, RuntimeError, MemoryError, OverflowError, UnicodeDecodeError) as error:
        raise ModelLoadError(path, f"not a readable network pickle (it looks truncated or corrupt: {error})") from None

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
    provenance = {"source_format": "nvlabs-pickle"}
    training_set = data.get("training_set_kwargs")
    if isinstance(training_set, dict):
        provenance["training_set"] = {k: v for k, v in training_set.items() if isinstance(v, (str, int, float, bool, type(None)))}
    return networks, provenance


def network_kind(record: PersistentRecord) -> str:
    """``stylegan3`` if the synthesis network has a Fourier-feature ``input`` layer, else ``stylegan2``."""
    if record.class_name != "Generator":
        return "stylegan2"
    synthesis = record.state.get("_modules", {}).get("synthesis")
    if isinstance(synthesis, PersistentRecord) and "input" in synthesis.state.get("_modules", {}):
        return "stylegan3"
    return "stylegan2"


def _rebuild(path: Path, key: str, record: PersistentRecord) -> nn.Module:
    kind = network_kind(record)
    try:
        init_kwargs = _init_kwargs(kind, record)
        network = build_network(kind, record.class_name, init_kwargs)
        return load_weights(network, state_dict_of(record), kind, init_kwargs)
    except (UnsupportedNetwork, TypeError) as error:
        raise ModelLoadError(path, f"network {key}: {error}") from None


def _init_kwargs(kind: str, record: PersistentRecord) -> dict[str, Any]:
    kwargs = dict(record.state.get("_init_kwargs") or {})
    args = tuple(record.state.get("_init_args") or ())
    if args:
        # Positional constructor arguments: name them from our class's signature.
        names = [n for n in inspect.signature(network_class(kind, record.class_name).__init__).parameters if n != "self"]
        kwargs.update(zip(names, args))
    return _plain(kwargs)


def _plain(value: Any) -> Any:
    """EasyDicts and numpy scalars -> plain Python, so kwargs can be saved as JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, torch.Tensor):
        return value.item()
    return value


def state_dict_of(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """The ``state_dict`` the pickled module would have, gathered from its stored ``__dict__``."""
    state = record.state
    result: dict[str, torch.Tensor] = {}
    for name, param in (state.get("_parameters") or {}).items():
        if param is not None:
            result[prefix + name] = _tensor(param)
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for name, buffer in (state.get("_buffers") or {}).items():
        if buffer is not None and name not in skip:
            result[prefix + name] = _tensor(buffer)
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, PersistentRecord):
            result.update(state_dict_of(child, f"{prefix}{name}."))
    return result


def _tensor(value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"expected a tensor in the network state, found {type(value).__name__}")
    return value.detach()
