"""The Drag tool's screenshots for docs/: points placed, mid-drag, and the result next to the original.

    QT_QPA_PLATFORM=offscreen python tools/drag_screenshots.py [MODEL] [--seed 8] [--outdir docs]

Drives the real editor offscreen: opens MODEL (default: the bundled model), places two
handle / target pairs that turn the head, runs the drag, and saves

- ``drag_editor.png``: the whole window mid-drag;
- ``drag_steps.png``: the image with its points before the drag, mid-drag, and the result,
  side by side with captions.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PANEL = 400  # pixels per panel of drag_steps.png
PAIRS = [((31, 38), (39, 38)), ((31, 50), (39, 50))]  # nose and mouth to the right: the head turns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(REPO / "assets" / "faces64.safetensors"))
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--outdir", default=str(REPO / "docs"))
    args = parser.parse_args()

    from PIL import Image, ImageDraw
    from PySide6.QtCore import QEventLoop, QRectF, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from latentstudio.gui.main_window import MainWindow
    from latentstudio.gui.theme import apply_theme

    app = QApplication([])
    apply_theme(app)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    settings_dir = Path(args.outdir) / ".screenshot-settings"
    settings_dir.mkdir(parents=True, exist_ok=True)
    window = MainWindow(settings=QSettings(str(settings_dir / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(1440, 860)
    window.show()

    def wait_until(condition, timeout_ms: int = 120_000) -> None:
        waited = 0
        while not condition():
            loop = QEventLoop()
            QTimer.singleShot(20, loop.quit)
            loop.exec()
            waited += 20
            if waited > timeout_ms:
                raise TimeoutError("the editor did not get there in time")

    def image_only() -> Image.Image:
        """The image view's picture (with the overlay), cropped to the image."""
        view = window.image_view
        rect = view.mapFromScene(view.view_box.mapViewToScene(QRectF(0, 0, *view.image.shape[1::-1])).boundingRect()).boundingRect()
        shot = view.grab(rect).toImage()
        shot.save(str(settings_dir / "crop.png"))
        return Image.open(settings_dir / "crop.png").convert("RGB").resize((PANEL, PANEL), Image.Resampling.LANCZOS)

    window.open_model(args.model)
    wait_until(lambda: window.current_frame() is not None)
    window.document.set_recipe(window.document.recipe.replace(seed=args.seed), "Seed")
    wait_until(lambda: window.current_frame() is not None)
    tool = window.drag_tool
    tool.action.setChecked(True)
    for handle, target in PAIRS:
        tool.add_pair(handle, target)
    wait_until(lambda: True)
    panels = [("points placed", image_only())]

    steps: list = []
    tool._bridge.step.connect(steps.append)
    tool.start()
    wait_until(lambda: len(steps) >= 6)
    window.grab().save(str(Path(args.outdir) / "drag_editor.png"))
    panels.append((f"mid-drag, step {steps[-1].step}", image_only()))
    wait_until(lambda: not tool.running)
    wait_until(lambda: window.current_frame() is not None)
    panels.append((tool.status.text().split(";")[0].replace("Arrived after", "result,"), image_only()))

    gap, caption = 12, 22
    strip = Image.new("RGB", (len(panels) * PANEL + (len(panels) + 1) * gap, PANEL + caption + 2 * gap), (27, 29, 33))
    draw = ImageDraw.Draw(strip)
    for index, (text, panel) in enumerate(panels):
        left = gap + index * (PANEL + gap)
        strip.paste(panel, (left, gap))
        draw.text((left, gap + PANEL + 6), text, fill=(220, 220, 220))
    strip.save(Path(args.outdir) / "drag_steps.png")
    window.shutdown()
    for leftover in settings_dir.glob("*"):
        leftover.unlink()
    settings_dir.rmdir()
    print(f"wrote {Path(args.outdir) / 'drag_editor.png'} and {Path(args.outdir) / 'drag_steps.png'}; "
          f"{tool.status.text()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
