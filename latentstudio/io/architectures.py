"""Which of our network classes rebuilds a stored network, from its class name and structure.

Files describe networks by constructor kwargs plus tensors. This module maps a
``(kind, role)`` to our class, so every loader (pickles, native files) builds networks the
same way, and a kind we do not support yet gives one clear message.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any

from torch import nn

KINDS = {
    "stylegan2": "latentstudio.nets.stylegan2",
    "stylegan3": "latentstudio.nets.stylegan3",
}
ROLES = {"Generator", "Discriminator"}


class UnsupportedNetwork(Exception):
    """The file holds a network kind or class we cannot rebuild, or weights that do not fit it."""


def network_class(kind: str, class_name: str) -> type[nn.Module]:
    if kind not in KINDS:
        raise UnsupportedNetwork(f"unknown network kind {kind!r} (supported: {', '.join(KINDS)})")
    if class_name not in ROLES:
        raise UnsupportedNetwork(f"unexpected network class {class_name!r} (expected Generator or Discriminator)")
    # A StyleGAN3 file's discriminator is the StyleGAN2 one.
    module_name = KINDS["stylegan2"] if class_name == "Discriminator" else KINDS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnsupportedNetwork(f"{kind} networks are not supported by this version ({error})") from None
    return getattr(module, class_name)


def build_network(kind: str, class_name: str, init_kwargs: dict[str, Any]) -> nn.Module:
    """Construct an uninitialised network of the stored architecture, on the CPU."""
    cls = network_class(kind, class_name)
    kwargs = flatten_generator_kwargs(init_kwargs) if class_name == "Generator" else dict(init_kwargs)
    accepted = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    if not takes_any:
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise UnsupportedNetwork(f"{class_name} has settings this version does not know: {', '.join(unknown)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, AssertionError, KeyError) as error:
        raise UnsupportedNetwork(f"cannot build {kind} {class_name} from its stored settings: {error}") from None


def flatten_generator_kwargs(init_kwargs: dict[str, Any]) -> dict[str, Any]:
    """stylegan2-ada-pytorch nests synthesis settings in ``synthesis_kwargs``; stylegan3 does not."""
    kwargs = {key: value for key, value in init_kwargs.items() if key != "synthesis_kwargs"}
    kwargs.update(init_kwargs.get("synthesis_kwargs") or {})
    return kwargs


def load_weights(network: nn.Module, state: dict[str, Any], kind: str, init_kwargs: dict[str, Any]) -> nn.Module:
    """Load ``state`` strictly (cast to the network's dtypes, so fp16 storage loads as float32)
    and tag the network with ``kind`` and ``init_kwargs`` so it can be saved again; eval mode."""
    reference = network.state_dict()
    state = {key: value.to(reference[key].dtype) if key in reference else value for key, value in state.items()}
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0]
        raise UnsupportedNetwork(f"the stored weights do not fit the stored architecture ({first_line})") from None
    network.eval().requires_grad_(False)
    network.init_kwargs = init_kwargs
    network.kind = kind
    return network
