"""PySide6 widgets. The GUI never computes: it edits recipes and asks the engine to render."""
from __future__ import annotations

import sys


def _keep_none_alive() -> None:
    """Work around PySide6 6.12 on Python < 3.12 dropping a reference to ``None``.

    With those versions every call of a Qt method that returns ``void`` (``setValue``,
    ``processEvents``, ``setWindowTitle``...) decrements ``None``'s reference count without
    having incremented it, so after a few thousand calls the interpreter aborts with "Fatal
    Python error: none_dealloc". Python 3.12 made ``None`` immortal (a huge reference count);
    this gives it the same on older interpreters. Nothing changes where the bug is absent.
    """
    if sys.version_info >= (3, 12):
        return
    import ctypes

    import PySide6

    if PySide6.__version__.startswith("6.12"):
        ctypes.c_ssize_t.from_address(id(None)).value += 1 << 40


_keep_none_alive()
