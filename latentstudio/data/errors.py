"""The one error type the data layer raises before training starts."""
from __future__ import annotations


class DatasetError(Exception):
    """A data set cannot be used at all: missing, empty, every image broken, bad ``dataset.json``.

    Raised while the data set is being opened, never from ``__getitem__`` during training, and
    the message always names the path and what was wrong, so the CLI prints it as one line.
    """
