"""The one error type every model loader raises, and the one-line rule its messages follow.

Every failure to load a model file, whatever the file holds, becomes one
:class:`ModelLoadError` whose message is a single line of at most :data:`MAX_MESSAGE`
characters that names the file and says what was wrong. Nothing a file contains (torch's
multi-line "Weights only load failed" text, a pybind signature dump, an exception whose text
is empty or 400 million characters long) reaches the user as it is: :func:`one_line` and
:func:`describe_error` squeeze it first.
"""
from __future__ import annotations

import os

MAX_MESSAGE = 300  # characters, the whole message (path and problem)
MAX_PATH = 100  # characters of the path kept in a message (its end: the file name matters most)
MAX_DETAIL = 160  # characters of a nested exception's text quoted in a problem


def one_line(text: object, limit: int) -> str:
    """``text`` on one line (runs of whitespace become one space), cut to ``limit`` characters.

    Only the first ``4 * limit`` characters are looked at, so a huge text costs nothing.
    """
    text = str(text)[: 4 * limit]
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def describe_error(error: BaseException, limit: int = MAX_DETAIL) -> str:
    """A nested exception as a short, never empty phrase (its type name when it has no text)."""
    try:
        text = one_line(error, limit)
    except Exception:  # noqa: BLE001 - a hostile __str__ must not escape either
        text = ""
    return text or type(error).__name__


def short_path(path: str, limit: int = MAX_PATH) -> str:
    """``path``, or ``…`` and its last ``limit - 1`` characters when it is longer."""
    path = one_line(path, 4 * limit) if "\n" in path else path
    return path if len(path) <= limit else "…" + path[-(limit - 1):]


class ModelLoadError(Exception):
    """A file could not be loaded as a model.

    The message names the file, says what was found or what was wrong and, where it helps,
    what is supported; it is always one line of at most :data:`MAX_MESSAGE` characters with a
    non-empty problem, so the CLI prints it as it is and the GUI shows it in a dialog.
    ``path`` and ``problem`` hold the two parts (``problem`` already squeezed).
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fsdecode(path)
        where = f"{short_path(self.path)}: " if self.path else ""
        self.problem = one_line(problem, MAX_MESSAGE - len(where)) or "could not be loaded (no details)"
        super().__init__(f"{where}{self.problem}")
