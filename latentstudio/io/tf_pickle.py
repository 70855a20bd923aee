"""NVlabs TensorFlow network pickles (the stylegan2 and stylegan2-ada TF releases), read as data.

Such a file is a tuple ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` objects. The real
class ``exec()``s the Python source stored in each network (``build_module_src``) when it is
unpickled; here the class is replaced by :class:`TFNetworkRecord`, which keeps the pickled
state as plain data and drops ``build_module_src`` unread, so no code from the file can run.
The numpy arrays of the variables are rebuilt by the restricted unpickler (plain numeric
dtypes only). :mod:`latentstudio.io.tf_networks` maps settings and variables onto our networks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from torch import nn

from latentstudio.io.architectures import DERIVED_BUFFERS, UnsupportedNetwork, build_checked
from latentstudio.io.errors import ModelLoadError, describe_error
from latentstudio.io.numpy_pickle import NUMPY_GLOBALS
from latentstudio.io.safe_pickle import ALLOWED_GLOBALS, Allowed, Budget, DisallowedGlobal, Record, UnsafePickle, restricted_load
from latentstudio.io.tf_networks import discriminator_settings, discriminator_state, generator_settings, generator_state

STYLEGAN2 = "nvlabs-tf-stylegan2"
STYLEGAN2_ADA = "nvlabs-tf-stylegan2-ada"

# Build functions of the networks we read: StyleGAN2 configs E/F and StyleGAN2-ADA (TF).
GENERATOR_FUNCS = {"G_main"}
MAPPING_FUNCS = {"G_mapping"}
SYNTHESIS_FUNCS = {"G_synthesis_stylegan2": STYLEGAN2, "G_synthesis": STYLEGAN2_ADA}
DISCRIMINATOR_FUNCS = {"D_stylegan2": STYLEGAN2, "D_main": STYLEGAN2_ADA}
# ... and what the others are, to say so when refusing them.
KNOWN_OTHERS = {
    "G_synthesis_stylegan_revised": "a StyleGAN2 config A-D network, grown progressively",
    "D_stylegan": "a StyleGAN2 config A-D discriminator, grown progressively",
    "G_style": "a StyleGAN (version 1) or StyleGAN2 config A network",
    "D_basic": "a StyleGAN (version 1) or StyleGAN2 config A discriminator",
}
STATE_FIELDS = {"version": int, "name": str, "static_kwargs": dict, "components": dict,
                "build_func_name": str, "variables": list}
MAX_DEPTH = 3  # G -> mapping / synthesis; nothing nests deeper


@dataclass
class TFNetworkRecord(Record):
    """What a ``dnnlib.tflib.network.Network`` was, as data: its pickled state, minus the code.

    The real class's ``__setstate__`` compiles and runs ``build_module_src``; here that field
    is dropped unread and every other one kept as it is (checked by :func:`network_state`).
    """

    state: dict[str, Any] = field(default_factory=dict)


class _PendingNetwork:
    """``Network()`` before its BUILD brings the state."""


def _network_new(budget: Budget, *args: Any) -> _PendingNetwork:
    if args:
        raise UnsafePickle("a TensorFlow network constructed with arguments")
    return _PendingNetwork()


def _network_build(budget: Budget, pending: Any, state: Any) -> TFNetworkRecord:
    if not isinstance(pending, _PendingNetwork) or type(state) is not dict:
        raise UnsafePickle("a TensorFlow network whose state is not a dict")
    return TFNetworkRecord({key: value for key, value in state.items() if key != "build_module_src"})


# What a TF network pickle may ask for: the containers every format may use, numpy's plain
# arrays, dtypes and scalars as re-implemented by issue 13's numpy module (numpy 1.x names,
# as these files were written, and numpy 2's), and the Network class, which becomes the
# record above (its state as data): the class itself, whose unpickling runs code, never.
TF_GLOBALS: dict[tuple[str, str], Allowed] = {
    **ALLOWED_GLOBALS,
    **NUMPY_GLOBALS,
    ("dnnlib.tflib.network", "Network"): Allowed("dnnlib.tflib.network.Network", new=_network_new, build=_network_build),
}


def network_state(record: Any, what: str) -> dict[str, Any]:
    """A network's state after checking every field's type (the variables as name -> array)."""
    if not isinstance(record, TFNetworkRecord):
        raise UnsupportedNetwork(f"{what} is {type(record).__name__}, not a TensorFlow network")
    state = record.state
    for field, kind in STATE_FIELDS.items():
        if not isinstance(state.get(field), kind) or isinstance(state.get(field), bool):
            raise UnsupportedNetwork(f"{what}'s {field} is {type(state.get(field)).__name__}, expected {kind.__name__}")
    if state["version"] < 4:
        raise UnsupportedNetwork(f"{what} is a version {state['version']} TensorFlow network; versions 4 and 5 are read")
    if not all(isinstance(key, str) for key in state["static_kwargs"]):
        raise UnsupportedNetwork(f"{what}'s settings have names that are not strings")
    variables: dict[str, np.ndarray] = {}
    for entry in state["variables"]:
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str)):
            raise UnsupportedNetwork(f"{what} has a variable that is not a (name, array) pair")
        name, value = entry
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise UnsupportedNetwork(f"{what}'s variable {name} is not a floating-point array")
        if name in variables:
            raise UnsupportedNetwork(f"{what}'s variable {name} appears twice")
        variables[name] = value
    return {**state, "variables": variables}


def collect_variables(record: Any, what: str, depth: int = 0) -> dict[str, np.ndarray]:
    """Every variable of a network and its components, named as ``legacy.py`` names them
    (``Dense0/weight`` at the top, ``mapping/Dense0/weight`` in the mapping component)."""
    if depth >= MAX_DEPTH:
        raise UnsupportedNetwork(f"{what}'s components nest too deeply")
    state = network_state(record, what)
    variables = dict(state["variables"])
    for name, component in state["components"].items():
        if not isinstance(name, str):
            raise UnsupportedNetwork(f"{what} has a component whose name is not a string")
        for key, value in collect_variables(component, f"{what}/{name}", depth + 1).items():
            variables[f"{name}/{key}"] = value
    return variables


def build_functions(G: dict[str, Any], D: dict[str, Any], Gs: dict[str, Any]) -> dict[str, str]:
    """The TF build function of every network, checked: StyleGAN2 configs E/F and
    StyleGAN2-ADA are read, every other network is refused by name (configs A-D, StyleGAN 1)."""
    found = {"D": (D["build_func_name"], set(DISCRIMINATOR_FUNCS))}
    for name, generator in (("G", G), ("Gs", Gs)):
        components = generator["components"]
        found[name] = (generator["build_func_name"], GENERATOR_FUNCS)
        found[f"{name}/mapping"] = (_component_func(components, "mapping", name), MAPPING_FUNCS)
        found[f"{name}/synthesis"] = (_component_func(components, "synthesis", name), set(SYNTHESIS_FUNCS))
    for what, (func, supported) in found.items():
        if func not in supported:
            described = f" ({KNOWN_OTHERS[func]})" if func in KNOWN_OTHERS else ""
            raise UnsupportedNetwork(f"{what} is built by {func!r:.60}{described}; "
                                     f"supported are StyleGAN2 configs E/F and StyleGAN2-ADA networks")
    return {what: func for what, (func, _) in found.items()}


def variant(G: dict[str, Any], D: dict[str, Any], functions: dict[str, str]) -> str:
    """:data:`STYLEGAN2_ADA` when the build functions, the settings (fp16, clamping) or the
    pickle version (5) are StyleGAN2-ADA's, else :data:`STYLEGAN2`."""
    ada_functions = SYNTHESIS_FUNCS[functions["G/synthesis"]] == STYLEGAN2_ADA or DISCRIMINATOR_FUNCS[functions["D"]] == STYLEGAN2_ADA
    ada_settings = {"num_fp16_res", "conv_clamp"} & (set(G["static_kwargs"]) | set(D["static_kwargs"]))
    return STYLEGAN2_ADA if ada_functions or ada_settings or G["version"] >= 5 else STYLEGAN2


def _component_func(components: dict[str, Any], component: str, owner: str) -> str:
    what = f"{owner}/{component}"
    if component not in components:
        raise UnsupportedNetwork(f"{what} is missing: not a StyleGAN2 generator")
    return network_state(components[component], what)["build_func_name"]


def read_tf_pickle(path: Path, stream: BinaryIO, size: int, budget: Budget) -> tuple[dict[str, nn.Module], dict[str, Any], str]:
    """Networks by name (``G``, ``D``, and ``Gs`` as ``G_ema``), provenance and the variant
    (:data:`STYLEGAN2` or :data:`STYLEGAN2_ADA`)."""
    data = _unpickle(path, stream, size, budget)
    if not (isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetworkRecord) for n in data)):
        found = f"a {len(data)}-tuple" if isinstance(data, tuple) else type(data).__name__
        raise ModelLoadError(path, f"a TensorFlow-era pickle, but not a (G, D, Gs) network triple: found {found}")
    networks: dict[str, nn.Module] = {}
    ignored: dict[str, list[str]] = {}
    try:
        G, D, Gs = (network_state(n, name) for n, name in zip(data, ("G", "D", "Gs")))
        functions = build_functions(G, D, Gs)
        file_variant = variant(G, D, functions)
        for name, record, state in (("G", data[0], G), ("D", data[1], D), ("G_ema", data[2], Gs)):
            what = "Gs" if name == "G_ema" else name
            if name == "D":
                init_kwargs = discriminator_settings(state["static_kwargs"])
                weights, unused = discriminator_state(collect_variables(record, what))
            else:
                init_kwargs = generator_settings(state["static_kwargs"])
                weights, unused = generator_state(collect_variables(record, what))
            class_name = "Discriminator" if name == "D" else "Generator"
            networks[name] = build_checked("stylegan2", class_name, init_kwargs, weights, what, derived=DERIVED_BUFFERS)
            if unused:
                ignored[what] = unused
    except UnsupportedNetwork as error:
        raise ModelLoadError(path, describe_error(error, 240)) from None
    provenance: dict[str, Any] = {"source_format": file_variant, "tf_build_functions": functions}
    if ignored:
        provenance["ignored_tf_variables"] = ignored
    return networks, provenance, file_variant


def _unpickle(path: Path, stream: BinaryIO, size: int, budget: Budget) -> Any:
    try:
        return restricted_load(stream, size, TF_GLOBALS, budget=budget)
    except DisallowedGlobal as error:
        raise ModelLoadError(path, error.explain("the TensorFlow network pickle")) from None
    except UnsafePickle as error:
        raise ModelLoadError(path, f"not a readable network pickle: {describe_error(error)}") from None
