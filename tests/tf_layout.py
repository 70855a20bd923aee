"""NVlabs TensorFlow network pickles of any size, written without TensorFlow, for tests.

``tf_pickle`` writes our (NVlabs-named) networks out as the ``(G, D, Gs)`` tuple of
``dnnlib.tflib.network.Network`` states that the TF releases pickle: TF variable names and
layouts (``[kh, kw, in, out]`` kernels, ``[in, out]`` dense weights, flipped up-sampling
kernels, ``mod_bias`` without its +1, ``noise{i}``, ``dlatent_avg``), the settings as
``static_kwargs``, and ``build_module_src`` set to a sentinel program. This is the inverse of
NVlabs' ``legacy.py`` conversion, the same construction that made the TF fixtures, so tests
can make hostile variants and networks of sizes the fixtures do not have.
"""
from __future__ import annotations

import contextlib
import math
import pickle
import sys
import types
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

SENTINEL_SOURCE = (
    "import os\n"
    "open(os.environ.get('LATENTSTUDIO_SENTINEL', 'LATENTSTUDIO_SENTINEL_EXECUTED'), 'w').write('ran')\n"
    "raise RuntimeError('build_module_src must never run')\n"
)


def _conv(value: np.ndarray, flip: bool = False) -> np.ndarray:
    kernel = value.transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> [kh, kw, in, out]
    return np.ascontiguousarray(kernel[::-1, ::-1] if flip else kernel)


def _layer_variables(prefix: str, layer: str, state: dict[str, np.ndarray], flip: bool) -> dict[str, np.ndarray]:
    return {
        f"{prefix}/weight": _conv(state[f"{layer}.weight"], flip),
        f"{prefix}/bias": state[f"{layer}.bias"],
        f"{prefix}/mod_weight": np.ascontiguousarray(state[f"{layer}.affine.weight"].T),
        f"{prefix}/mod_bias": state[f"{layer}.affine.bias"] - 1,
        **({f"{prefix}/noise_strength": state[f"{layer}.noise_strength"]} if f"{layer}.noise_strength" in state else {}),
    }


def _dense(state: dict[str, np.ndarray], layer: str, tf_name: str) -> dict[str, np.ndarray]:
    """A dense layer: weight ``[out, in]`` -> ``[in, out]``, bias as it is."""
    return {f"{tf_name}/weight": np.ascontiguousarray(state[f"{layer}.weight"].T), f"{tf_name}/bias": state[f"{layer}.bias"]}


def _label_mapping(state: dict[str, np.ndarray], num_layers: int, dense_name: str) -> dict[str, np.ndarray]:
    """``LabelEmbed`` (when conditional) and the mapping's dense layers ``{dense_name}{i}``."""
    variables = _dense(state, "mapping.embed", "LabelEmbed") if "mapping.embed.weight" in state else {}
    for i in range(num_layers):
        variables.update(_dense(state, f"mapping.fc{i}", f"{dense_name}{i}"))
    return variables


def generator_variables(G: nn.Module) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(G_main's own, G_mapping's, G_synthesis') variables of a StyleGAN2 generator."""
    state = {k: v.detach().numpy() for k, v in G.state_dict().items()}
    mapping = _label_mapping(state, G.mapping.num_layers, "Dense")
    synthesis = {"4x4/Const/const": state["synthesis.b4.const"][None]}
    for res in G.synthesis.block_resolutions:
        b = f"synthesis.b{res}"
        layers = [("Conv", "conv1", False)] if res == 4 else [("Conv0_up", "conv0", True), ("Conv1", "conv1", False)]
        for tf_name, layer, flip in layers:
            synthesis.update(_layer_variables(f"{res}x{res}/{tf_name}", f"{b}.{layer}", state, flip))
            noise = f"{b}.{layer}.noise_const"
            if noise in state:
                index = 0 if res == 4 else 2 * int(math.log2(res)) - (5 if layer == "conv0" else 4)
                synthesis[f"noise{index}"] = state[noise][None, None]
        if f"{b}.torgb.weight" in state:
            synthesis.update(_layer_variables(f"{res}x{res}/ToRGB", f"{b}.torgb", state, flip=False))
        if f"{b}.skip.weight" in state:
            synthesis[f"{res}x{res}/Skip/weight"] = _conv(state[f"{b}.skip.weight"], flip=True)
    return {"dlatent_avg": state["mapping.w_avg"]}, mapping, synthesis


def discriminator_variables(D: nn.Module) -> dict[str, np.ndarray]:
    state = {k: v.detach().numpy() for k, v in D.state_dict().items()}
    variables = {}
    for res in [*D.block_resolutions, 4]:  # the 4x4 epilogue has a fromrgb in the skip architecture
        for layer, tf_name in (("fromrgb", "FromRGB"), ("conv0", "Conv0"), ("conv1", "Conv1_down"), ("skip", "Skip")):
            for leaf in ("weight", "bias"):
                key = f"b{res}.{layer}.{leaf}"
                if key in state:
                    variables[f"{res}x{res}/{tf_name}/{leaf}"] = _conv(state[key]) if leaf == "weight" else state[key]
    if "mapping.embed.weight" in state:
        variables.update(_label_mapping(state, D.mapping.num_layers, "Mapping"))
    variables["4x4/Conv/weight"] = _conv(state["b4.conv.weight"])
    variables["4x4/Conv/bias"] = state["b4.conv.bias"]
    variables.update(_dense(state, "b4.fc", "4x4/Dense0"))
    variables.update(_dense(state, "b4.out", "Output"))
    return variables


def network_state(name: str, func: str, static_kwargs: dict, variables: dict[str, np.ndarray],
                  components: dict | None = None, version: int = 4) -> dict[str, Any]:
    """What ``Network.__getstate__`` returns (version 4 fields; 5 adds shapes and names)."""
    state = {"version": version, "name": name, "static_kwargs": dict(static_kwargs), "components": components or {},
             "build_module_src": SENTINEL_SOURCE, "build_func_name": func, "variables": list(variables.items())}
    if version >= 5:
        state.update(input_shapes=[[None, 512]], output_shapes=[[None, 3, 1024, 1024]],
                     input_names=["latents_in"], output_names=["images_out"])
    return state


def generator_network(name: str, G: nn.Module, static_kwargs: dict, synthesis_func: str = "G_synthesis_stylegan2",
                      version: int = 4) -> dict[str, Any]:
    own, mapping, synthesis = generator_variables(G)
    components = {
        "mapping": network_state("G_mapping", "G_mapping", {}, mapping, version=version),
        "synthesis": network_state("G_synthesis", synthesis_func, {}, synthesis, version=version),
    }
    return network_state(name, "G_main", static_kwargs, own, components, version=version)


class Network:
    """Pickles as ``dnnlib.tflib.network.Network`` with the given state (never unpickled here)."""

    def __init__(self, state: dict[str, Any]):
        self._state = dict(state)
        if isinstance(state.get("components"), dict):
            self._state["components"] = {k: Network(v) if isinstance(v, dict) else v for k, v in state["components"].items()}

    def __getstate__(self) -> dict[str, Any]:
        return self._state


@contextlib.contextmanager
def _as_tflib_network() -> Iterator[None]:
    """Let pickle name :class:`Network` ``dnnlib.tflib.network.Network``, as the TF code did."""
    names = ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network")
    saved = {name: sys.modules.get(name) for name in names}
    module = types.ModuleType("dnnlib.tflib.network")
    module.Network = Network
    sys.modules.update({"dnnlib": types.ModuleType("dnnlib"), "dnnlib.tflib": types.ModuleType("dnnlib.tflib"),
                        "dnnlib.tflib.network": module})
    Network.__module__ = "dnnlib.tflib.network"
    try:
        yield
    finally:
        Network.__module__ = __name__
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def randomised(network: nn.Module, seed: int) -> nn.Module:
    """``network`` with random values everywhere (biases, noise strengths and ``w_avg`` too,
    modulation biases around their initial 1), so that every weight matters; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in network.state_dict().items():
            if "resample_filter" not in name:
                scale = 0.2 if name.endswith(("bias", "noise_strength", "w_avg")) else 1.0
                value.copy_(torch.randn(value.shape, generator=g) * scale + (1 if name.endswith("affine.bias") else 0))
    return network.eval()


def dumps(networks: Any, protocol: int = 3) -> bytes:
    """Pickle ``networks`` (e.g. a tuple of three :func:`network_state` dicts) as the TF code did."""
    wrapped = tuple(Network(n) if isinstance(n, dict) else n for n in networks) if isinstance(networks, tuple) else networks
    with _as_tflib_network():
        return pickle.dumps(wrapped, protocol=protocol)


def tf_networks(G: nn.Module, D: nn.Module, G_static: dict, D_static: dict, Gs: nn.Module | None = None,
                synthesis_func: str = "G_synthesis_stylegan2", discriminator_func: str = "D_stylegan2",
                version: int = 4) -> tuple[dict, dict, dict]:
    """``(G, D, Gs)`` network states as the TF code pickles them (``Gs`` defaults to ``G``)."""
    g = generator_network("G", G, G_static, synthesis_func, version)
    gs = generator_network("Gs", Gs if Gs is not None else G, G_static, synthesis_func, version)
    d = network_state("D", discriminator_func, D_static, discriminator_variables(D), version=version)
    return g, d, gs
