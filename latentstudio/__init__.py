"""latentstudio: an interactive studio for style-based image generators.

The public API is small and lazy: importing ``latentstudio`` loads nothing heavy, so
``latentstudio --help`` starts at once and ``latentstudio.engine`` never pulls in Qt.

    >>> import latentstudio
    >>> G = latentstudio.load_model("tests/fixtures/sg2_skip32.pkl")
    >>> frame = latentstudio.Renderer(G).render(latentstudio.EditRecipe(seed=3))
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "latentstudio.io",
    "load_networks": "latentstudio.io",
    "ModelLoadError": "latentstudio.io.errors",
    "ModelInfo": "latentstudio.io.info",
    "EditRecipe": "latentstudio.engine.recipe",
    "DirectionEdit": "latentstudio.engine.recipe",
    "compose_ws": "latentstudio.engine.recipe",
    "Renderer": "latentstudio.engine.renderer",
    "Frame": "latentstudio.engine.renderer",
    "project": "latentstudio.engine.projection",
    "Projection": "latentstudio.engine.projection",
    "align_portrait": "latentstudio.engine.face_align",
    "read_photo": "latentstudio.engine.photo",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'latentstudio' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
