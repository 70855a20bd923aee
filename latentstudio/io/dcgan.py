"""Reading a DCGAN generator checkpoint (a teacher for training), as data, never with ``torch.load``.

The file is what PyTorch's DCGAN tutorial code saves: a torch zip whose pickle is a dict
holding the generator's state dict under ``netG_state_dict`` (as ``gan-face-generate``
ships it in ``weights.tar``), or that state dict alone. It goes through the bounded torch
zip reader of :mod:`latentstudio.io.torch_zip` with an allow-list of plain containers and
tensors, and every weight's shape is checked against the architecture the first and last
layers imply before anything is built.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from latentstudio.io.errors import ModelLoadError, describe_error
from latentstudio.io.safe_pickle import ALLOWED_GLOBALS, Allowed, DisallowedGlobal, UnsafePickle
from latentstudio.io.tensors import SAVED_TENSOR_GLOBALS
from latentstudio.io.torch_zip import read_torch_zip
from latentstudio.nets.dcgan import CONV_INDICES, NORM_INDICES, DCGANGenerator
from latentstudio.untrusted import open_regular_file

STATE_KEY = "netG_state_dict"
MAX_FEATURES = 1024  # f: the widest layer has 8 f channels
MAX_Z_DIM = 4096
DCGAN_GLOBALS: dict[tuple[str, str], Allowed] = {**ALLOWED_GLOBALS, **SAVED_TENSOR_GLOBALS}


def read_dcgan(path: str | os.PathLike) -> DCGANGenerator:
    """The DCGAN generator stored in ``path``, in eval mode; :class:`ModelLoadError` (one line) otherwise."""
    with open_regular_file(path, ModelLoadError, "DCGAN checkpoint") as (stream, size):
        try:
            data = read_torch_zip(stream, size, DCGAN_GLOBALS)
        except DisallowedGlobal as error:
            raise ModelLoadError(path, error.explain("the checkpoint")) from None
        except UnsafePickle as error:
            raise ModelLoadError(path, f"not a readable PyTorch checkpoint: {describe_error(error)}") from None
    state = data.get(STATE_KEY, data) if isinstance(data, Mapping) else None
    if not isinstance(state, Mapping):
        raise ModelLoadError(path, f"not a DCGAN checkpoint (expected a dict with {STATE_KEY!r} or a state dict)")
    return _build(path, state)


def _build(path: str | os.PathLike, state: Mapping[str, Any]) -> DCGANGenerator:
    first, last = state.get(f"main.{CONV_INDICES[0]}.weight"), state.get(f"main.{CONV_INDICES[-1]}.weight")
    if not (isinstance(first, torch.Tensor) and isinstance(last, torch.Tensor) and first.ndim == last.ndim == 4):
        raise ModelLoadError(path, "not a DCGAN generator: no transposed convolutions main.0 ... main.12 "
                                   "(the layout of PyTorch's DCGAN tutorial)")
    z_dim, features, channels = first.shape[0], last.shape[0], last.shape[1]
    if not (0 < z_dim <= MAX_Z_DIM and 0 < features <= MAX_FEATURES and channels in (1, 3)):
        raise ModelLoadError(path, f"implausible DCGAN sizes: z_dim {z_dim}, {features} features, {channels} channels")
    network = DCGANGenerator(z_dim, features, channels)
    # Batch-norm step counters are bookkeeping of the teacher's training, not weights.
    expected = {name: value for name, value in network.state_dict().items() if not name.endswith("num_batches_tracked")}
    names = {name for name in state if not str(name).endswith("num_batches_tracked")}
    missing, unexpected = sorted(set(expected) - names), sorted(map(str, names - set(expected)))
    if missing or unexpected:
        problem = f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(unexpected[:3])}"
        raise ModelLoadError(path, f"not the DCGAN tutorial's generator layout ({problem})")
    for name, target in expected.items():
        value = state[name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.shape != target.shape:
            found = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise ModelLoadError(path, f"{name} is {found}, the architecture needs float {tuple(target.shape)}")
        if not torch.isfinite(value).all():
            raise ModelLoadError(path, f"{name} holds NaN or infinite values")
    network.load_state_dict({name: state[name].to(target.dtype) for name, target in expected.items()}, strict=False)
    return network
