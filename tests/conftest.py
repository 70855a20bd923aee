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


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``tests/fixtures``: NVlabs reference networks (``.pt`` / ``.pkl``), see their README."""
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def load_reference():
    """``load_reference('sg2_skip32')`` -> the ``.pt`` dict (init kwargs, state dicts, inputs,
    reference outputs), loaded once per session. Treat it as read-only."""
    return _load_reference
