"""The one error type every model loader raises."""
from __future__ import annotations

import os


class ModelLoadError(Exception):
    """A file could not be loaded as a model.

    The message always names the file, says what was found and what is supported, so the
    CLI can print it as one line and the GUI can show it in a dialog. Loaders never let a
    traceback from deep inside pickle or torch escape; they wrap it in this.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}")
