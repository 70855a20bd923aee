"""The editor's command line: screenshot mode."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image

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

