"""rosinality/stylegan2-pytorch checkpoints (``.pt``), read as data, in both layouts it writes.

- ``train.py``: ``g``, ``d``, ``g_ema`` (state dicts), ``g_optim``, ``d_optim`` (optimizer
  states), ``args`` (an ``argparse.Namespace``) and ``ada_aug_p`` (a float).
- ``convert_weight.py``: ``g_ema`` and ``latent_avg`` (and ``g`` / ``d`` when asked for).

The generators and the discriminator become our networks through
:mod:`latentstudio.io.rosinality`; the optimizer states are ignored; ``args`` and
``ada_aug_p`` are kept as provenance. rosinality's generator has no average latent of its
own: ``latent_avg`` is used when the file has it, otherwise it is computed (the mean of
100,000 mapped z from a fixed seed, :func:`latentstudio.io.w_avg.mean_w`) and provenance
says so; ``convert`` stores it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from latentstudio.io.architectures import DERIVED_BUFFERS, UnsupportedNetwork, build_checked
from latentstudio.io.errors import ModelLoadError, describe_error
from latentstudio.io.rosinality import discriminator_from_rosinality, generator_from_rosinality
from latentstudio.io.safe_pickle import ALLOWED_GLOBALS, Allowed, Budget, DisallowedGlobal, UnsafePickle
from latentstudio.io.tensors import SAVED_TENSOR_GLOBALS
from latentstudio.io.torch_zip import read_torch_zip
from latentstudio.io.w_avg import W_AVG_SAMPLES, W_AVG_SEED, mean_w

TRAIN = "rosinality-train"
CONVERTED = "rosinality-converted"
NETWORK_NAMES = {"g": "G", "d": "D", "g_ema": "G_ema"}
TRAINING_KEYS = ("g_optim", "d_optim", "args", "ada_aug_p")
W_AVG_COMPUTED = f"computed by latentstudio as the file stores none: the mean of {W_AVG_SAMPLES:,} mapped z (seed {W_AVG_SEED})"


def _namespace_new(budget: Budget, *args: Any) -> dict:
    """``argparse.Namespace()`` (``train.py``'s ``args``) -> a plain dict; BUILD fills it."""
    if args:
        raise UnsafePickle("argparse.Namespace constructed with arguments")
    return {}


def _namespace_build(budget: Budget, target: dict, state: Any) -> dict:
    """The Namespace's attributes (its pickled ``__dict__``) as the dict's items."""
    if type(state) is not dict or not all(type(key) is str for key in state):
        raise UnsafePickle("an argparse.Namespace whose state is not a dict of named values")
    budget.charge_nodes(len(state))
    return dict(state)


# What a rosinality data.pkl may ask for, beyond the containers every format may use
# (collections.OrderedDict, which state dicts are, rebuilt as a plain dict):
# - torch._utils._rebuild_tensor_v2 and the torch.<Type>Storage names: every tensor, rebuilt
#   as a checked view of its zip entry (issue 13's tensors module), never by torch;
# - argparse.Namespace: train.py's args, rebuilt as a plain dict of its attributes, never the
#   real class (a Namespace has no behaviour a pickle could trigger, but we do not even need it).
ROSINALITY_GLOBALS: dict[tuple[str, str], Allowed] = {
    **ALLOWED_GLOBALS,
    **SAVED_TENSOR_GLOBALS,
    ("argparse", "Namespace"): Allowed("argparse.Namespace", new=_namespace_new, build=_namespace_build),
}


def is_rosinality(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("g_ema"), dict)


def read_rosinality(path: Path, stream: BinaryIO, size: int, budget: Budget) -> tuple[dict[str, nn.Module], dict[str, Any], str]:
    """Networks by name (``G``, ``D``, ``G_ema``), provenance, and the layout
    (:data:`TRAIN` or :data:`CONVERTED`) of a rosinality checkpoint."""
    data = read_checkpoint_data(path, stream, size, budget)
    if not is_rosinality(data):
        found = f"a dict with keys {sorted(map(str, data))[:8]}" if isinstance(data, dict) else type(data).__name__
        raise ModelLoadError(path, f"a PyTorch checkpoint, but not a rosinality one: found {found}, expected g_ema (and g, d)")
    layout = TRAIN if any(key in data for key in TRAINING_KEYS) else CONVERTED
    latent_avg = data.get("latent_avg")
    if latent_avg is not None and not (isinstance(latent_avg, torch.Tensor) and latent_avg.is_floating_point()):
        raise ModelLoadError(path, "latent_avg is not a floating-point tensor")

    networks = {name: _rebuild(path, key, data[key], latent_avg) for key, name in NETWORK_NAMES.items() if key in data}

    # latent_avg belongs to g_ema; every other generator's average is computed.
    computed = [name for key, name in NETWORK_NAMES.items()
                if key != "d" and name in networks and not (key == "g_ema" and latent_avg is not None)]
    for name in computed:
        with torch.no_grad():
            networks[name].mapping.w_avg.copy_(mean_w(networks[name].mapping))
    provenance: dict[str, Any] = {
        "source_format": layout,
        "w_avg": {name: W_AVG_COMPUTED if name in computed else "latent_avg stored in the file"
                  for name in ("G", "G_ema") if name in networks},
    }
    args = data.get("args")
    if isinstance(args, dict):
        provenance["training_args"] = {str(k): v for k, v in args.items() if isinstance(v, (str, int, float, bool, type(None)))}
    if isinstance(data.get("ada_aug_p"), (int, float)):
        provenance["ada_aug_p"] = float(data["ada_aug_p"])
    return networks, provenance, layout


def _rebuild(path: Path, key: str, state: Any, latent_avg: torch.Tensor | None) -> nn.Module:
    """``g``, ``g_ema`` or ``d`` as our network (a generator's ``w_avg`` is ``latent_avg`` for
    ``g_ema`` when the file has one, else a placeholder until it is computed)."""
    if not isinstance(state, dict):
        raise ModelLoadError(path, f"{key} is not a state dict")
    try:
        if key == "d":
            init_kwargs, weights = discriminator_from_rosinality(state)
            return build_checked("stylegan2", "Discriminator", init_kwargs, weights, key, derived=DERIVED_BUFFERS)
        init_kwargs, weights = generator_from_rosinality(state)
        weights["mapping.w_avg"] = _stored_w_avg(latent_avg, key, init_kwargs["w_dim"])
        return build_checked("stylegan2", "Generator", init_kwargs, weights, key, derived=DERIVED_BUFFERS)
    except UnsupportedNetwork as error:
        raise ModelLoadError(path, f"{key}: {describe_error(error, 240)}") from None


def _stored_w_avg(latent_avg: torch.Tensor | None, key: str, w_dim: int) -> torch.Tensor:
    """``latent_avg`` for ``g_ema`` when the file has one (checked), else a placeholder that
    :func:`read_rosinality` replaces by the computed mean."""
    if latent_avg is None or key != "g_ema":
        return torch.zeros([w_dim])
    if latent_avg.numel() != w_dim:
        raise UnsupportedNetwork(f"latent_avg has {latent_avg.numel()} values, the generator's w_dim is {w_dim}")
    return latent_avg.reshape([w_dim])


def read_checkpoint_data(path: Path, stream: BinaryIO, size: int, budget: Budget) -> Any:
    """The plain data of a torch zip checkpoint that may hold a rosinality model."""
    try:
        return read_torch_zip(stream, size, ROSINALITY_GLOBALS, budget)
    except DisallowedGlobal as error:
        raise ModelLoadError(path, error.explain("the checkpoint")) from None
    except UnsafePickle as error:
        raise ModelLoadError(path, f"not a readable PyTorch checkpoint: {describe_error(error)}") from None
