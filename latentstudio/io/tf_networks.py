"""NVlabs TensorFlow StyleGAN2 networks as latentstudio's StyleGAN2 networks (NVlabs names).

Pure functions from plain data: a TF network's ``static_kwargs`` and its variables (TF name
-> numpy array, sub-networks prefixed ``mapping/``, ``synthesis/``) go in, NVlabs init
kwargs and a ``state_dict`` come out. Reading the pickle is :mod:`latentstudio.io.tf_pickle`'s
job.

The settings and the variable names map exactly as NVlabs' ``legacy.py`` maps them (the
conversion the stylegan2-ada-pytorch and stylegan3 code bases use): ``fmap_base`` doubles
into ``channel_base``, dense weights ``[in, out]`` are transposed, convolution kernels
``[kh, kw, in, out]`` become ``[out, in, kh, kw]``, the up-sampling kernels (``Conv0_up``,
the generator's ``Skip``) are flipped because TF's up-sampling convolution is a transposed
convolution of the flipped kernel, TF adds 1 to ``mod_bias`` at run time where NVlabs
initialises the bias to 1, ``noise{i}`` is layer i's constant noise and ``dlatent_avg`` the
average latent. Two settings that ``legacy.py`` leaves to NVlabs' defaults but TF defines
differently (the label embedding width when ``latent_size != dlatent_size``, the
discriminator's label map width on small networks) take TF's value, where ``legacy.py``
would stop on a shape mismatch; everything ``legacy.py`` converts comes out the same.
Settings ``legacy.py`` does not know are refused by name, as it does.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from latentstudio.io.architectures import UnsupportedNetwork

# Settings legacy.py reads (or knowingly ignores) for each network; anything else is refused.
GENERATOR_SETTINGS = {
    "latent_size", "label_size", "dlatent_size", "resolution", "num_channels", "fmap_base", "fmap_max",
    "num_fp16_res", "conv_clamp", "architecture", "resample_kernel", "use_noise", "nonlinearity",
    "mapping_layers", "label_fmaps", "mapping_fmaps", "mapping_nonlinearity", "mapping_lrmul", "w_avg_beta",
    # used only while training or sampling in TF, not part of the network:
    "truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure", "conditioning", "fused_modconv",
}
DISCRIMINATOR_SETTINGS = {
    "label_size", "resolution", "num_channels", "architecture", "fmap_base", "fmap_max", "num_fp16_res",
    "conv_clamp", "mapping_fmaps", "nonlinearity", "resample_kernel", "freeze_layers", "mapping_layers",
    "mapping_lrmul", "mbstd_group_size", "mbstd_num_features", "structure", "conditioning",
}


def _refuse_unknown(network: str, static_kwargs: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(str(key) for key in static_kwargs if key not in known)
    if unknown:
        raise UnsupportedNetwork(f"TensorFlow {network} has settings that NVlabs' conversion does not know: {', '.join(unknown)}")


def _setting(network: str, kwargs: Mapping[str, Any], name: str, default: Any, kinds: tuple[type, ...]) -> Any:
    """``kwargs[name]`` (``default`` when absent or None), which must be one of ``kinds``."""
    value = kwargs.get(name)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise UnsupportedNetwork(f"TensorFlow {network} setting {name}={value!r} has the wrong type")
    return value


def _kernel(network: str, kwargs: Mapping[str, Any]) -> list[float]:
    taps = _setting(network, kwargs, "resample_kernel", [1, 3, 3, 1], (list, tuple))
    if not taps or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in taps):
        raise UnsupportedNetwork(f"TensorFlow {network} setting resample_kernel={taps!r} is not a list of numbers")
    return list(taps)


def _tf_width(fmap_base: int, fmap_max: int, stage: int) -> int:
    """TF's ``nf(stage)`` with its defaults ``fmap_decay=1``, ``fmap_min=1``."""
    return int(np.clip(int(fmap_base / 2.0**stage), 1, fmap_max))


def generator_settings(static_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The NVlabs ``Generator`` init kwargs of a TF ``G_main`` (G or Gs)."""
    _refuse_unknown("generator", static_kwargs, GENERATOR_SETTINGS)
    get = lambda name, default, *kinds: _setting("generator", static_kwargs, name, default, kinds or (int,))  # noqa: E731
    z_dim, w_dim, c_dim = get("latent_size", 512), get("dlatent_size", 512), get("label_size", 0)
    embed_features = get("label_fmaps", None)
    if embed_features is None and c_dim > 0 and z_dim != w_dim:
        embed_features = z_dim  # TF embeds labels to latent_size features by default, NVlabs to w_dim
    return {
        "z_dim": z_dim,
        "c_dim": c_dim,
        "w_dim": w_dim,
        "img_resolution": get("resolution", 1024),
        "img_channels": get("num_channels", 3),
        "mapping_kwargs": {
            "num_layers": get("mapping_layers", 8),
            "embed_features": embed_features,
            "layer_features": get("mapping_fmaps", None),
            "activation": get("mapping_nonlinearity", "lrelu", str),
            "lr_multiplier": get("mapping_lrmul", 0.01, int, float),
            "w_avg_beta": get("w_avg_beta", 0.995, int, float),
        },
        "synthesis_kwargs": {
            "channel_base": get("fmap_base", 16384) * 2,
            "channel_max": get("fmap_max", 512),
            "num_fp16_res": get("num_fp16_res", 0),
            "conv_clamp": get("conv_clamp", None, int, float),
            "architecture": get("architecture", "skip", str),
            "resample_filter": _kernel("generator", static_kwargs),
            "use_noise": get("use_noise", True, bool),
            "activation": get("nonlinearity", "lrelu", str),
        },
    }


def discriminator_settings(static_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The NVlabs ``Discriminator`` init kwargs of a TF ``D_stylegan2`` / ``D_main``."""
    _refuse_unknown("discriminator", static_kwargs, DISCRIMINATOR_SETTINGS)
    get = lambda name, default, *kinds: _setting("discriminator", static_kwargs, name, default, kinds or (int,))  # noqa: E731
    fmap_base, fmap_max, c_dim = get("fmap_base", 16384), get("fmap_max", 512), get("label_size", 0)
    cmap_dim = get("mapping_fmaps", None)
    if cmap_dim is None and c_dim > 0 and _tf_width(fmap_base, fmap_max, 0) != min(fmap_base // 2, fmap_max):
        cmap_dim = _tf_width(fmap_base, fmap_max, 0)  # TF's label map width, which NVlabs' default differs from
    activation = get("nonlinearity", "lrelu", str)
    return {
        "c_dim": c_dim,
        "img_resolution": get("resolution", 1024),
        "img_channels": get("num_channels", 3),
        "architecture": get("architecture", "resnet", str),
        "channel_base": fmap_base * 2,
        "channel_max": fmap_max,
        "num_fp16_res": get("num_fp16_res", 0),
        "conv_clamp": get("conv_clamp", None, int, float),
        "cmap_dim": cmap_dim,
        "block_kwargs": {
            "activation": activation,
            "resample_filter": _kernel("discriminator", static_kwargs),
            "freeze_layers": get("freeze_layers", 0),
        },
        "mapping_kwargs": {
            "num_layers": get("mapping_layers", 0),
            "embed_features": cmap_dim,
            "layer_features": cmap_dim,
            "activation": activation,
            "lr_multiplier": get("mapping_lrmul", 0.1, int, float),
        },
        "epilogue_kwargs": {
            "mbstd_group_size": get("mbstd_group_size", None),
            "mbstd_num_channels": get("mbstd_num_features", 1),
            "activation": activation,
        },
    }


# -- variables ---------------------------------------------------------------------------------

Transform = Callable[[str, np.ndarray], np.ndarray]


def _rank(name: str, value: np.ndarray, ndim: int) -> np.ndarray:
    if value.ndim != ndim:
        raise UnsupportedNetwork(f"TensorFlow variable {name} has shape {list(value.shape)}, expected {ndim} dimensions")
    return value


def _same(name: str, value: np.ndarray) -> np.ndarray:
    return value


def _vector(name: str, value: np.ndarray) -> np.ndarray:
    return _rank(name, value, 1)


def _dense(name: str, value: np.ndarray) -> np.ndarray:
    return _rank(name, value, 2).T  # [in, out] -> [out, in]


def _conv(name: str, value: np.ndarray) -> np.ndarray:
    return _rank(name, value, 4).transpose(3, 2, 0, 1)  # [kh, kw, in, out] -> [out, in, kh, kw]


def _conv_up(name: str, value: np.ndarray) -> np.ndarray:
    return _conv(name, _rank(name, value, 4)[::-1, ::-1])


def _first(name: str, value: np.ndarray) -> np.ndarray:
    return _rank(name, value, 4)[0]  # const [1, C, 4, 4] -> [C, 4, 4]


def _first_two(name: str, value: np.ndarray) -> np.ndarray:
    return _rank(name, value, 4)[0, 0]  # noise [1, 1, R, R] -> [R, R]


def _plus_one(name: str, value: np.ndarray) -> np.ndarray:
    return _vector(name, value) + 1


def _layer_leaf(leaf: str, up: bool) -> tuple[str | None, Transform]:
    """A modulated layer's TF variable -> its NVlabs name and transform (None: not a weight)."""
    leaves: dict[str, tuple[str | None, Transform]] = {
        "weight": ("weight", _conv_up if up else _conv),
        "bias": ("bias", _vector),
        "noise_strength": ("noise_strength", _same),
        "mod_weight": ("affine.weight", _dense),
        "mod_bias": ("affine.bias", _plus_one),
    }
    return leaves.get(leaf, (None, _same))


def _noise_layer(index: int) -> str:
    """TF noise input i -> the layer that reads it (legacy.py: conv0 reads ``2*log2(R) - 5``, conv1 ``2*log2(R) - 4``)."""
    if index == 0:
        return "synthesis.b4.conv1"
    return f"synthesis.b{2 ** ((index + 5) // 2)}.conv{0 if index % 2 else 1}"


def _generator_name(name: str) -> tuple[str | None, Transform]:
    if name == "dlatent_avg":
        return "mapping.w_avg", _vector
    if m := re.fullmatch(r"mapping/LabelEmbed/(weight|bias)", name):
        return f"mapping.embed.{m[1]}", _dense if m[1] == "weight" else _vector
    if m := re.fullmatch(r"mapping/Dense(\d+)/(weight|bias)", name):
        return f"mapping.fc{int(m[1])}.{m[2]}", _dense if m[2] == "weight" else _vector
    if name == "synthesis/4x4/Const/const":
        return "synthesis.b4.const", _first
    if m := re.fullmatch(r"synthesis/noise(\d+)", name):
        return f"{_noise_layer(int(m[1]))}.noise_const", _first_two
    if m := re.fullmatch(r"synthesis/4x4/(Conv|ToRGB)/(\w+)", name):
        leaf, transform = _layer_leaf(m[2], up=False)
        return (f"synthesis.b4.{'conv1' if m[1] == 'Conv' else 'torgb'}.{leaf}" if leaf else None), transform
    if m := re.fullmatch(r"synthesis/(\d+)x\1/(Conv0_up|Conv1|ToRGB)/(\w+)", name):
        leaf, transform = _layer_leaf(m[3], up=m[2] == "Conv0_up")
        layer = {"Conv0_up": "conv0", "Conv1": "conv1", "ToRGB": "torgb"}[m[2]]
        return (f"synthesis.b{int(m[1])}.{layer}.{leaf}" if leaf else None), transform
    if m := re.fullmatch(r"synthesis/(\d+)x\1/Skip/weight", name):
        return f"synthesis.b{int(m[1])}.skip.weight", _conv_up
    return None, _same


def _discriminator_name(name: str) -> tuple[str | None, Transform]:
    if m := re.fullmatch(r"(\d+)x\1/(FromRGB|Conv0|Conv1_down|Skip)/(weight|bias)", name):
        layer = {"FromRGB": "fromrgb", "Conv0": "conv0", "Conv1_down": "conv1", "Skip": "skip"}[m[2]]
        return f"b{int(m[1])}.{layer}.{m[3]}", _conv if m[3] == "weight" else _vector
    if m := re.fullmatch(r"4x4/Conv/(weight|bias)", name):
        return f"b4.conv.{m[1]}", _conv if m[1] == "weight" else _vector
    if m := re.fullmatch(r"(?:4x4/Dense0|Output|LabelEmbed|Mapping(\d+))/(weight|bias)", name):
        prefix = name.split("/")[0]
        layer = {"4x4": "b4.fc", "Output": "b4.out", "LabelEmbed": "mapping.embed"}.get(prefix) or f"mapping.fc{int(m[1])}"
        return f"{layer}.{m[2]}", _dense if m[2] == "weight" else _vector
    return None, _same


def _translate(variables: Mapping[str, np.ndarray], namer: Callable[[str], tuple[str | None, Transform]]
               ) -> tuple[dict[str, torch.Tensor], list[str]]:
    state: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for name, value in variables.items():
        target, transform = namer(name)
        if target is None:
            ignored.append(name)
            continue
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise UnsupportedNetwork(f"TensorFlow variable {name} is not a floating-point array")
        state[target] = torch.from_numpy(transform(name, value).copy())  # a C-contiguous copy, 0-d kept
    return state, ignored


def generator_state(variables: Mapping[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A TF generator's variables -> (NVlabs state dict without resampling filters, the TF
    variables that have no NVlabs counterpart and were ignored, e.g. ``lod``)."""
    return _translate(variables, _generator_name)


def discriminator_state(variables: Mapping[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A TF discriminator's variables -> (NVlabs state dict, ignored TF variable names)."""
    return _translate(variables, _discriminator_name)
