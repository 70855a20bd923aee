"""Editor responsiveness: slider-to-frame latency and the worst event-loop stall.

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_latency.py [MODEL] [--changes 40]

Drives the real editor window (offscreen): moves per-layer offset sliders one at a time and
measures the time from the slider change to the frame of that recipe on screen (median and
95th percentile), then drags a slider in a burst (a change every 15 ms for 2 s) while a 5 ms
heartbeat timer records the largest gap in the GUI event loop. It also prints how long the
editor takes to open: from the start of this script (before Qt and torch are imported) to
the model's first frame on screen.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    script_start = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(REPO / "tests" / "fixtures" / "sg2_cond64.pkl"))
    parser.add_argument("--changes", type=int, default=40, help="single slider changes to time")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from latentstudio.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    scratch = tempfile.TemporaryDirectory()
    window = MainWindow(settings=QSettings(str(Path(scratch.name) / "s.ini"), QSettings.Format.IniFormat))
    window.show()
    window.open_model(args.model)

    def spin_until(condition, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the editor")
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 50)

    spin_until(lambda: window.current_frame() is not None)
    first_frame_ms = 1e3 * (time.perf_counter() - script_start)
    spin_until(lambda: window.current_frame() is not None and window.document.direction_sets and window.latent_panel.browser.ready)
    rows = window.styles_panel.rows
    latencies = []
    for change in range(args.changes):
        row = rows[change % len(rows)]
        started = time.perf_counter()
        row.offset.setValue(round(0.5 + 0.25 * (change % 7), 2) * (-1) ** change)
        window.document.end_merge()
        spin_until(lambda: window.current_frame() is not None)
        latencies.append(1e3 * (time.perf_counter() - started))

    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    frames: list[float] = []
    window.frameShown.connect(lambda frame: frames.append(frame.timings["total_ms"]))
    values = iter(np.linspace(-3, 3, 133))
    slider = rows[len(rows) // 2].offset
    issued: list[float] = []

    def drag() -> None:
        value = next(values, None)
        if value is not None:
            slider.setValue(float(value))
            issued.append(value)

    dragger = QTimer()
    dragger.timeout.connect(drag)
    heartbeat.start(5)
    dragger.start(15)
    burst_end = time.monotonic() + 2.0
    spin_until(lambda: time.monotonic() > burst_end)
    dragger.stop()
    spin_until(lambda: window.current_frame() is not None)
    heartbeat.stop()
    stall = 1e3 * max(np.diff(beats))

    print(f"model: {args.model}")
    print(f"editor open, script start (imports included) to the first frame on screen: {first_frame_ms:.0f} ms")
    print(f"slider-to-frame latency over {len(latencies)} changes: median {statistics.median(latencies):.1f} ms, "
          f"p95 {np.percentile(latencies, 95):.1f} ms, max {max(latencies):.1f} ms")
    print(f"burst: {len(issued)} slider changes in 2 s, {len(frames)} frames shown, {len(issued) - len(frames)} intermediate "
          f"requests dropped (render median {statistics.median(frames):.1f} ms); worst event-loop stall {stall:.1f} ms (heartbeat 5 ms)")
    window.close()
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
