"""Screenshots for docs/projection.md: the Projection tab mid-run and an edited projected photo.

    QT_QPA_PLATFORM=offscreen python tools/projection_screenshots.py [--steps 500]

Opens the real editor offscreen on the default model, projects scikit-image's ``astronaut``
(NASA, public domain), grabs the tab when a third of the steps are done, waits for the result,
moves one style offset and saves ``docs/projection_panel.png`` and ``docs/projection_edited.png``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QEventLoop, QSettings, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def wait_until(app: QApplication, condition, timeout_s: float = 300.0) -> None:
    loop = QEventLoop()
    timer = QTimer(interval=50)
    timer.timeout.connect(lambda: loop.quit() if condition() else None)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    timer.start()
    loop.exec()
    timer.stop()
    if not condition():
        raise SystemExit("timed out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--model", default=str(ROOT / "assets/faces64.safetensors"))
    args = parser.parse_args()
    import skimage

    from latentstudio.gui.main_window import MainWindow
    from latentstudio.gui.theme import apply_theme

    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    window.resize(1440, 880)
    window.show()
    window.open_model(args.model)
    wait_until(app, lambda: window.current_frame() is not None and window.document.direction_sets)
    panel = window.projection_panel
    window.project_photo(str(Path(skimage.__file__).parent / "data" / "astronaut.png"))
    wait_until(app, lambda: panel.photo is not None)
    panel.steps.setValue(args.steps)
    panel.start()
    wait_until(app, lambda: panel.progress.value() >= args.steps // 3)
    window.grab().save(str(ROOT / "docs/projection_panel.png"))
    wait_until(app, lambda: panel.result is not None and not panel.is_running())
    wait_until(app, lambda: window.current_frame() is not None)
    rows = {r.layer: r for r in window.styles_panel.rows}
    rows[3].offset.setValue(2.5)
    window.document.end_merge()
    wait_until(app, lambda: window.current_frame() is not None)
    window.grab().save(str(ROOT / "docs/projection_edited.png"))
    print(f"PSNR {panel.result.psnr:.2f} dB, SSIM {panel.result.ssim:.3f}, {panel.result.seconds:.1f} s")
    window.shutdown()


if __name__ == "__main__":
    main()
