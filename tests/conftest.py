"""Shared test helpers: where the reference fixtures live and a cached loader for them."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import torch

FIXTURES_DIR = Path(__file__).parent / "fixtures"


@lru_cache(maxsize=None)
def _load_reference(name: str) -> dict[str, Any]:
    return torch.load(FIXTURES_DIR / f"{name}.pt", weights_only=True)


@pytest.fixture
def sentinel(tmp_path, monkeypatch) -> Path:
    """Where the fixtures' sentinel program would write if anything ran it (it must not)."""
    path = tmp_path / "sentinel"
    monkeypatch.setenv("LATENTSTUDIO_SENTINEL", str(path))
    return path


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine more threads only spin against each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``tests/fixtures``: NVlabs reference networks (``.pt`` / ``.pkl``), see their README."""
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def load_reference():
    """``load_reference('sg2_skip32')`` -> the ``.pt`` dict (init kwargs, state dicts, inputs,
    reference outputs), loaded once per session. Treat it as read-only."""
    return _load_reference


def lively_copy(source: Path, target: Path) -> str:
    """A native copy of a fixture whose mapping network spreads W like a trained one.

    The fixtures' untrained mapping layers use lr_multiplier 0.01, so every seed maps to
    nearly the same w (seeds and mixing change no pixel). Scaling the fc weights and biases
    by 1 / lr_multiplier gives seeds that differ as in a trained model; synthesis is untouched.
    """
    from latentstudio.io import load_networks, save_native

    G = load_networks(source)["G_ema"]
    with torch.no_grad():
        for name, parameter in G.mapping.named_parameters():
            if name.startswith("fc"):
                parameter.mul_(100)
    return str(save_native(target, {"G_ema": G}))
