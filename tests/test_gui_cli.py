"""The editor's command line: screenshot mode, and that the engine stays free of Qt."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

ENGINE_MODULES = ("latentstudio.engine", "latentstudio.engine.renderer", "latentstudio.engine.recipe", "latentstudio.engine.export")


def test_engine_does_not_import_qt():
    code = (
        "import sys, importlib\n"
        f"for name in {ENGINE_MODULES!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'superqt')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_gui_screenshot_exits_zero_with_the_rendered_editor(tmp_path, fixtures_dir):
    shot = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "latentstudio", "gui", str(fixtures_dir / "sg2_cond64.pkl"), "--screenshot", str(shot)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert result.returncode == 0, result.stderr
    picture = np.asarray(Image.open(shot).convert("RGB"))
    assert picture.shape[0] >= 600 and picture.shape[1] >= 1000  # the whole window
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 500  # widgets and a rendered image, not a blank

