"""``load_model`` and ``load_networks``: one entry point for every model file we read."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from latentstudio.io.errors import ModelLoadError, describe_error
from latentstudio.io.info import ModelInfo
from latentstudio.io.native import read_native
from latentstudio.io.nvlabs_pickle import read_nvlabs_pickle
from latentstudio.io.rosinality_checkpoint import read_rosinality
from latentstudio.io.safe_pickle import Budget
from latentstudio.io.settings import flat_generator_settings
from latentstudio.io.sniff import PICKLE, SAFETENSORS, TF_PICKLE, TORCH_LEGACY, TORCH_ZIP, sniff_format
from latentstudio.io.tf_pickle import read_tf_pickle
from latentstudio.nets.layout import ws_layout
from latentstudio.untrusted import open_regular_file

SUPPORTED = (
    "NVlabs network pickles (PyTorch, and TensorFlow StyleGAN2 / StyleGAN2-ADA), rosinality "
    "stylegan2-pytorch checkpoints and latentstudio .safetensors files"
)


def default_device() -> torch.device:
    """CUDA when there is one, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, or a ``ValueError`` saying why it cannot be used here."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{device!r} is not a device name (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("CUDA is not available here (no NVIDIA GPU, or a CPU-only PyTorch build); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"there is no {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS (Apple GPU) is not available here; use --device cpu")
    return device


@contextmanager
def model_errors(path: str | os.PathLike) -> Iterator[None]:
    """Whatever goes wrong inside becomes one :class:`ModelLoadError` naming ``path``.

    The readers raise ``ModelLoadError`` with a precise message for everything they check;
    this is the last line of defence for what they did not foresee (a hostile file must
    never surface as a traceback, a RecursionError or a MemoryError).
    """
    try:
        yield
    except ModelLoadError:
        raise
    except MemoryError:
        raise ModelLoadError(path, "not enough memory to load this file") from None
    except Exception as error:  # noqa: BLE001 - the one place that turns every other failure into a message
        raise ModelLoadError(path, f"could not be loaded ({type(error).__name__}: {describe_error(error)})") from None


def load_networks(path: str | os.PathLike, device: str | torch.device | None = "cpu") -> dict[str, nn.Module]:
    """Every network in the file by name (``G``, ``D``, ``G_ema``), in eval mode.

    Each network has ``kind`` ("stylegan2" / "stylegan3") and ``init_kwargs`` attributes, so
    it can be saved again (:func:`latentstudio.io.save_native`) or trained further. Raises
    :class:`ModelLoadError` (one line) for anything else.
    """
    with model_errors(path):
        networks, _, _ = read_model_file(path)
        target = torch.device(device) if device is not None else default_device()
        return {name: network.to(target) for name, network in networks.items()}


def load_model(path: str | os.PathLike, device: str | torch.device | None = None) -> nn.Module:
    """The inference generator of a model file (``G_ema`` when present), with ``.info``.

    ``device=None`` picks CUDA when available, else the CPU. Raises :class:`ModelLoadError`
    (one line naming the file, what was found and what is supported) for anything else.
    """
    with model_errors(path):
        networks, provenance, file_format = read_model_file(path)
        name = "G_ema" if "G_ema" in networks else "G" if "G" in networks else None
        if name is None:
            raise ModelLoadError(path, f"the file holds no generator (found: {', '.join(networks) or 'nothing'})")
        generator = networks[name]
        generator.info = describe(generator, Path(path), file_format, provenance, tuple(networks))
        return generator.to(torch.device(device) if device is not None else default_device())


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, nn.Module], dict[str, Any], str]:
    """Networks in a model file, its provenance and the file's format name (CPU, eval mode)."""
    with model_errors(path), open_regular_file(path, ModelLoadError, "model file") as (stream, size):
        kind, description = sniff_format(stream, size)
        stream.seek(0)
        budget = Budget.for_file(size)
        if kind == PICKLE:
            networks, provenance = read_nvlabs_pickle(Path(path), stream, size, budget)
            file_format = "nvlabs-pickle"
        elif kind == SAFETENSORS:
            networks, provenance = read_native(Path(path), stream, size, budget)
            file_format = "native"
        elif kind == TF_PICKLE:
            networks, provenance, file_format = read_tf_pickle(Path(path), stream, size, budget)
        elif kind == TORCH_ZIP:
            networks, provenance, file_format = read_rosinality(Path(path), stream, size, budget)
        elif kind == TORCH_LEGACY:
            raise ModelLoadError(path, f"{description}, which latentstudio does not read; load it in PyTorch and "
                                       f"torch.save it again (a current PyTorch writes the zip format)")
        else:
            raise ModelLoadError(path, f"{description}, not a model. Supported: {SUPPORTED}")
        if not networks:
            raise ModelLoadError(path, "the file holds no networks")
        return networks, provenance, file_format


def describe(G: nn.Module, path: Path, file_format: str, provenance: dict[str, Any], networks: tuple[str, ...]) -> ModelInfo:
    layout = ws_layout(G)
    flat = flat_generator_settings(G.init_kwargs)
    if G.kind == "stylegan3":
        config = "R" if flat.get("use_radial_filters") or flat.get("conv_kernel") == 1 else "T"
    else:
        config = flat.get("architecture", "skip")
    class_names = provenance.get("class_names")
    return ModelInfo(
        path=str(path),
        format=file_format,
        kind=G.kind,
        config=config,
        resolution=int(G.img_resolution),
        num_ws=int(G.num_ws),
        z_dim=int(G.z_dim),
        w_dim=int(G.w_dim),
        c_dim=int(G.c_dim),
        img_channels=int(G.img_channels),
        num_params=sum(p.numel() for p in G.parameters()),
        fingerprint=fingerprint(G),
        layer_names=tuple(layer.name for layer in layout),
        layer_resolutions=tuple(layer.resolution for layer in layout),
        networks=networks,
        class_names=tuple(class_names) if class_names else None,
        provenance=provenance,
    )


def fingerprint(G: nn.Module) -> str:
    """A short hash of the mapping network's weights, rounded to float16.

    Directions live in W, which the mapping network defines, so this is what a direction set
    must match. Rounding to float16 makes it survive fp16 storage and format conversion.
    """
    digest = hashlib.sha256()
    for key, value in sorted(G.mapping.state_dict().items()):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(value.detach().cpu().to(torch.float16).numpy()).tobytes())
    return digest.hexdigest()[:16]
