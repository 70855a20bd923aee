"""Imports go one way: engine and io never load Qt; the GUI and the trainer never load the CLI."""
from __future__ import annotations

import subprocess
import sys

import pytest

QT_PACKAGES = ("PySide6", "pyqtgraph", "superqt")


def loaded_after_import(packages: list[str], watched_prefixes: tuple[str, ...]) -> list[str]:
    """Import every module under ``packages`` in a fresh interpreter; return the watched modules it loaded."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"for package in {packages!r}:\n"
        "    root = importlib.import_module(package)\n"
        "    for info in pkgutil.walk_packages(root.__path__, package + '.'):\n"
        "        if not info.name.endswith('__main__'):\n"
        "            importlib.import_module(info.name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({watched_prefixes!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=True)
    return eval(result.stdout.strip())  # a list literal of module names printed by the child


def test_engine_io_nets_data_and_train_do_not_import_qt():
    packages = ["latentstudio.engine", "latentstudio.io", "latentstudio.nets", "latentstudio.data", "latentstudio.train"]
    assert loaded_after_import(packages, QT_PACKAGES) == []


@pytest.mark.parametrize("package", ["latentstudio.gui", "latentstudio.train", "latentstudio.engine"])
def test_lower_layers_do_not_import_the_cli(package):
    assert loaded_after_import([package], ("latentstudio.cli",)) == []
