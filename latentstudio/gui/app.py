"""Starting the editor: the application object, the theme, the window, and screenshot mode."""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

SCREENSHOT_TIMEOUT_S = 180.0


def run_editor(model: str | None = None, screenshot: str | None = None) -> int:
    """Open the editor on ``model`` (default: the bundled model or its stand-in) and run it.

    With ``screenshot``, the window opens offscreen with default settings, waits for the
    first frame (and the seed thumbnails and directions, so the picture is complete), saves
    a picture of the whole window and exits: 0 on success, 1 if no frame could be made.
    """
    if screenshot is not None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from latentstudio.defaults import default_model_path
    from latentstudio.gui.main_window import APPLICATION, ORGANIZATION, MainWindow
    from latentstudio.gui.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    apply_theme(app)

    notice = None
    opened_default = model is None
    if model is None:
        default, notice = default_model_path()
        model = None if default is None else str(default)
    scratch = tempfile.TemporaryDirectory() if screenshot is not None else None
    settings = QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.Format.IniFormat) if scratch else None
    window = MainWindow(settings=settings, notice=notice)
    window.show()
    if model is not None:
        window.open_model(model)
    status = {"code": 0}
    if screenshot is not None:
        _arm_screenshot(app, window, Path(screenshot), model is not None, status)
    elif opened_default and notice is None and model is not None and not window.settings.value("tour_shown", False, type=bool):
        QTimer.singleShot(800, window.show_tour)  # first launch on the default model
    code = app.exec()
    if scratch is not None:
        scratch.cleanup()
    return status["code"] or code


def _arm_screenshot(app, window, path: Path, has_model: bool, status: dict) -> None:
    """Poll until the window shows a complete first view, then save it and quit."""
    from PySide6.QtCore import QTimer

    started = time.monotonic()
    timer = QTimer(window)

    def complete() -> bool:
        return (
            window.current_frame() is not None
            and window.latent_panel.browser.ready
            and bool(window.document.direction_sets)
        )

    def failed(message: str) -> None:
        print(f"latentstudio gui: error: {message}", file=sys.stderr)
        status["code"] = 1
        timer.stop()
        window.close()
        app.quit()

    def poll() -> None:
        timed_out = time.monotonic() - started > SCREENSHOT_TIMEOUT_S
        if not has_model:
            return failed("no model to show")
        if not (complete() or (timed_out and window.current_frame() is not None)):
            if timed_out:
                failed("no frame was rendered in time")
            return
        timer.stop()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(path)):
            return failed(f"cannot write {path}")
        print(f"saved {path}")
        window.close()
        app.quit()

    window.modelFailed.connect(failed)
    timer.timeout.connect(poll)
    timer.start(100)
