"""Which of our network classes rebuilds a stored network, and how to rebuild it safely.

Files describe networks by constructor settings plus tensors. :func:`build_checked` is the one
way every loader (pickles, native files, and the formats still to come) turns those into a
network: weights checked (floating point, finite), settings validated, the tensor memory the
settings imply compared with the tensors present, all before anything is constructed; then
the network is built and loaded strictly, shape for shape.
"""
from __future__ import annotations

import importlib
from typing import Any, Mapping

import torch
from torch import nn

from latentstudio.io.settings import (
    SettingsError,
    flat_generator_settings,
    implied_elements,
    implied_num_ws,
    validate_settings,
)
from latentstudio.io.tensors import BadWeights, check_weights

KINDS = {
    "stylegan2": "latentstudio.nets.stylegan2",
    "stylegan3": "latentstudio.nets.stylegan3",
}
ROLES = {"Generator", "Discriminator"}
IMPLIED_SLACK = 2  # settings may imply at most this many times the elements present (plus a little)
IMPLIED_ALLOWANCE = 1 << 16
# Buffers our layers compute from their settings (the FIR filters of up/down-sampling).
DERIVED_BUFFERS = ("resample_filter",)


class UnsupportedNetwork(Exception):
    """The file holds a network kind or class we cannot rebuild, or weights that do not fit it."""


def network_class(kind: str, class_name: str) -> type[nn.Module]:
    if kind not in KINDS:
        raise UnsupportedNetwork(f"unknown network kind {kind!r:.40} (supported: {', '.join(KINDS)})")
    if class_name not in ROLES:
        raise UnsupportedNetwork(f"unexpected network class {class_name!r:.60} (expected Generator or Discriminator)")
    # A StyleGAN3 file's discriminator is the StyleGAN2 one.
    module_name = KINDS["stylegan2"] if class_name == "Discriminator" else KINDS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnsupportedNetwork(f"{kind} networks are not supported by this version ({error})") from None
    return getattr(module, class_name)


def check_stored_attributes(kind: str, class_name: str, init_kwargs: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    """Attributes a file also stores (NVlabs modules keep ``num_ws``, ``z_dim``... in their
    ``__dict__``) must agree with what the settings say."""
    flat = flat_generator_settings(dict(init_kwargs)) if class_name == "Generator" else dict(init_kwargs)
    expected = {key: flat[key] for key in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels") if key in flat}
    if class_name == "Generator":
        expected["num_ws"] = implied_num_ws(kind, flat)
    for key, value in expected.items():
        if key in stored and not (type(stored[key]) is int and stored[key] == value):
            raise UnsupportedNetwork(f"the stored {key} ({str(stored[key])[:20]}) disagrees with the settings ({value})")


def build_checked(kind: str, class_name: str, init_kwargs: dict[str, Any], state: Mapping[str, torch.Tensor],
                  owner: str, stored: Mapping[str, Any] | None = None, derived: tuple[str, ...] = ()) -> nn.Module:
    """The network ``init_kwargs`` describe, holding ``state``, or :class:`UnsupportedNetwork`.

    ``owner`` names the network in messages (``G_ema``); ``stored`` are attributes the file
    keeps besides the settings, checked for agreement. ``derived`` names buffers that the
    network computes from its settings and that files from other code bases store otherwise
    or not at all (:data:`DERIVED_BUFFERS`): those the state lacks come from the network
    itself. Order matters: nothing is allocated until the weights, the settings and the memory
    they imply have all been checked.
    """
    cls = network_class(kind, class_name)
    try:
        check_weights(state, owner)
        validate_settings(kind, class_name, init_kwargs)
    except (BadWeights, SettingsError) as error:
        raise UnsupportedNetwork(str(error)) from None
    check_stored_attributes(kind, class_name, init_kwargs, stored or {})
    present = sum(tensor.numel() for tensor in state.values())
    implied = implied_elements(kind, class_name, init_kwargs)
    if implied > IMPLIED_SLACK * present + IMPLIED_ALLOWANCE:
        raise UnsupportedNetwork(
            f"the settings describe a network of {implied:,} values, but the file holds only {present:,}: "
            f"settings and weights do not belong together"
        )
    kwargs = flat_generator_settings(init_kwargs) if class_name == "Generator" else dict(init_kwargs)
    try:
        network = cls(**kwargs)
    except (TypeError, ValueError, AssertionError, KeyError, IndexError, RuntimeError, ZeroDivisionError) as error:
        raise UnsupportedNetwork(f"cannot build {kind} {class_name} from its stored settings ({type(error).__name__})") from None
    if derived:
        own = {key: value for key, value in network.state_dict().items() if key.rsplit(".", 1)[-1] in derived}
        state = {**own, **state}
    return load_weights(network, state, kind, init_kwargs)


def _shape_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str | None:
    missing = [key for key in expected if key not in state]
    if missing:
        return f"tensor {missing[0]} is missing" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        return f"tensor {unexpected[0][:80]} is not part of this architecture" + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            return f"tensor {key} has shape {list(state[key].shape)}, the settings need {list(value.shape)}"
    return None


def load_weights(network: nn.Module, state: Mapping[str, torch.Tensor], kind: str, init_kwargs: dict[str, Any]) -> nn.Module:
    """Load ``state`` strictly, every name and shape exactly as the network has them (cast to
    the network's dtypes, so fp16 storage loads as float32), and tag the network with ``kind``
    and ``init_kwargs`` so it can be saved again; eval mode."""
    reference = network.state_dict()
    problem = _shape_mismatch(reference, state)
    if problem:
        raise UnsupportedNetwork(f"the stored weights do not fit the stored architecture: {problem}")
    network.load_state_dict({key: value.to(reference[key].dtype) for key, value in state.items()}, strict=True)
    network.eval().requires_grad_(False)
    network.init_kwargs = init_kwargs
    network.kind = kind
    return network
