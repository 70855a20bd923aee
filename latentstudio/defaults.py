"""Where the bundled default model and its directions live.

``latentstudio`` with no arguments opens the default model from ``assets/`` in the source
tree. Until one is trained and shipped there, the smallest reference fixture stands in, and
the GUI says so.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS = REPO_ROOT / "assets"
DEFAULT_MODEL = ASSETS / "faces64.safetensors"
DEFAULT_DIRECTIONS = ASSETS / "faces64_pca.npz"
FALLBACK_MODEL = REPO_ROOT / "tests" / "fixtures" / "sg2_cond64.pkl"


def default_model_path() -> tuple[Path | None, str | None]:
    """``(path, notice)``: the model to open with no arguments and, if it is a stand-in, why."""
    if DEFAULT_MODEL.exists():
        return DEFAULT_MODEL, None
    if FALLBACK_MODEL.exists():
        return FALLBACK_MODEL, (
            "No default model is bundled yet (assets/faces64.safetensors): showing a small random-weight "
            "test network instead. Open your own model with File > Open model."
        )
    return None, "No default model found: open a model with File > Open model."


def default_directions_path() -> Path | None:
    return DEFAULT_DIRECTIONS if DEFAULT_DIRECTIONS.exists() else None
