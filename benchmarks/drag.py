"""Drag to edit (DragGAN): speed in steps per second, and accuracy over random drags.

    python benchmarks/drag.py [MODEL] [--seeds 20] [--sizes 256] [--gui 100] [--device cpu] [--json drag.json]

Speed: optimisation steps per second on MODEL (default: the bundled default model) and on
config-f StyleGAN2 networks with random weights at ``--sizes``, with the image of every step
rendered (what the editor shows live) and without (the CLI's case: images only for its
progress line), next to one full frame of the renderer measured in the same run.

Accuracy, on MODEL: ``--seeds`` drags, seeds 0..N-1 at psi 0.7, each moving one handle (placed
at random in the middle 40 % of the image) by 10 % of the image width in a random direction,
with a mask (a disk of radius 20 % of the width around the handle and its target) and,
for comparison, without. Reported: the fraction of drags that end within 2 px of the target,
the median final distance, the median steps, and the mean absolute pixel change (0-255,
averaged over RGB) inside and outside the mask.

Editor (``--gui``): the real window offscreen runs a drag while a 5 ms heartbeat timer
measures the event loop; reported: step images shown per second and the worst stall.

The machine's load average is printed before and after: on a shared machine the absolute
speeds vary, the ratios to the renderer's frame less so.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from latentstudio.bench import config_f_generator  # noqa: E402
from latentstudio.engine.drag import DragSettings, drag  # noqa: E402
from latentstudio.engine.recipe import EditRecipe  # noqa: E402
from latentstudio.engine.renderer import Renderer  # noqa: E402
from latentstudio.io import load_model  # noqa: E402

DISTANCE = 0.1  # of the image width
MASK_RADIUS = 0.2  # of the image width
WITHIN_PX = 2.0


def steps_per_second(G, steps: int, with_images: bool) -> float:
    """Steps/s of a drag that cannot converge (stop distance 0), after one warm-up step."""
    R = G.img_resolution
    settings = DragSettings(steps=steps, stop_distance=0.0)
    recipe = EditRecipe(seed=1, truncation_psi=0.7)
    handle, target = (R * 0.4, R * 0.5), (R * 0.6, R * 0.5)
    drag(G, recipe, [handle], [target], settings=DragSettings(steps=1))  # warm-up
    callback = (lambda progress: None) if with_images else None  # a callback makes every step render its image
    start = time.perf_counter()
    result = drag(G, recipe, [handle], [target], settings=settings, callback=callback, every=1)
    return result.steps / (time.perf_counter() - start)


def frame_ms(G, repeats: int = 5) -> float:
    renderer = Renderer(G, incremental=False)
    renderer.render(EditRecipe(seed=0))
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        renderer.render(EditRecipe(seed=seed + 1))
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def speed(G, name: str, steps: int) -> dict:
    row = {"model": name, "resolution": G.img_resolution, "frame_ms": frame_ms(G),
           "steps_per_s_with_images": steps_per_second(G, steps, True),
           "steps_per_s_without_images": steps_per_second(G, steps, False)}
    print(f"| {name} | {G.img_resolution} | {row['steps_per_s_with_images']:.1f} | {row['steps_per_s_without_images']:.1f} "
          f"| {row['frame_ms']:.1f} ms | {1e3 / row['steps_per_s_with_images'] / row['frame_ms']:.1f} |", flush=True)
    return row


def random_drag(resolution: int, rng: np.random.Generator):
    angle = rng.uniform(0, 2 * np.pi)
    handle = rng.uniform(0.3 * resolution, 0.7 * resolution, size=2).round()
    target = handle + DISTANCE * resolution * np.array([np.cos(angle), np.sin(angle)])
    yy, xx = np.mgrid[:resolution, :resolution]
    centre = (handle + target) / 2
    mask = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < (MASK_RADIUS * resolution) ** 2
    return handle, target, mask


def accuracy(G, seeds: int, use_mask: bool, settings: DragSettings) -> dict:
    R = G.img_resolution
    rng = np.random.default_rng(0)
    renderer = Renderer(G)
    distances, steps, inside, outside, seconds = [], [], [], [], []
    for seed in range(seeds):
        handle, target, mask = random_drag(R, rng)
        recipe = EditRecipe(seed=seed, truncation_psi=0.7)
        start = time.perf_counter()
        result = drag(G, recipe, [handle], [target], mask=mask if use_mask else None, settings=settings)
        seconds.append(time.perf_counter() - start)
        change = np.abs(renderer.render(result.recipe).image.astype(float) - renderer.render(recipe).image).mean(axis=2)
        distances.append(float(result.distances[0]))
        steps.append(result.steps)
        inside.append(float(change[mask].mean()))
        outside.append(float(change[~mask].mean()))
    summary = {
        "mask": use_mask, "drags": seeds, "within_2px": float(np.mean(np.array(distances) <= WITHIN_PX)),
        "median_distance_px": float(np.median(distances)), "median_steps": float(np.median(steps)),
        "change_inside": float(np.mean(inside)), "change_outside": float(np.mean(outside)),
        "outside_over_inside": float(np.mean(outside) / max(np.mean(inside), 1e-9)),
        "distances": distances, "steps": steps, "seconds": seconds,
    }
    print(f"| {'yes' if use_mask else 'no'} | {summary['within_2px']:.0%} | {summary['median_distance_px']:.2f} px "
          f"| {summary['median_steps']:.0f} | {summary['change_inside']:.2f} | {summary['change_outside']:.2f} "
          f"| {summary['outside_over_inside']:.3f} |", flush=True)
    return summary


def editor_during_a_drag(model: str, steps: int) -> dict:
    """The real editor offscreen: a drag of ``steps`` steps (stop distance 0, so it runs them all)
    with a 5 ms heartbeat timer; how many step images the window showed, and its worst stall."""
    import tempfile

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    import latentstudio.gui.drag_tool as drag_tool
    from latentstudio.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    scratch = tempfile.TemporaryDirectory()
    window = MainWindow(settings=QSettings(str(Path(scratch.name) / "s.ini"), QSettings.Format.IniFormat))
    window.show()
    window.open_model(model)

    def spin_until(condition, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the editor")
            app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 50)

    spin_until(lambda: window.current_frame() is not None)
    tool = window.drag_tool
    R = window.document.model.img_resolution
    tool.add_pair((0.2 * R, 0.5 * R), (0.8 * R, 0.5 * R))  # too far to arrive within the steps
    tool.steps.setValue(steps)
    run_drag = drag_tool.run_drag
    drag_tool.run_drag = lambda G, recipe, handles, targets, mask, settings, *rest: run_drag(
        G, recipe, handles, targets, mask, DragSettings(steps=settings.steps, stop_distance=0.0), *rest)
    shown: list[float] = []
    tool._bridge.step.connect(lambda progress: shown.append(time.perf_counter()))
    beats: list[float] = []
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    heartbeat.start(5)
    started = time.perf_counter()
    tool.start()
    spin_until(lambda: not tool.running)
    heartbeat.stop()
    drag_tool.run_drag = run_drag
    gaps = 1e3 * np.diff(beats)
    row = {"model": model, "steps": steps, "images_shown": len(shown),
           "steps_per_s_shown": len(shown) / (shown[-1] - started) if shown else 0.0,
           "worst_stall_ms": float(gaps.max()), "p99_gap_ms": float(np.percentile(gaps, 99))}
    print(f"\neditor, {steps}-step drag on {Path(model).name}: {row['images_shown']} step images shown, "
          f"{row['steps_per_s_shown']:.1f} steps/s on screen; event loop: worst stall {row['worst_stall_ms']:.1f} ms, "
          f"99th percentile gap {row['p99_gap_ms']:.1f} ms (heartbeat 5 ms)", flush=True)
    window.close()
    scratch.cleanup()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(REPO / "assets" / "faces64.safetensors"))
    parser.add_argument("--seeds", type=int, default=20, help="random drags for the accuracy table (0: skip it)")
    parser.add_argument("--sizes", default="256", help="config-f sizes for the speed table ('' to skip)")
    parser.add_argument("--speed-steps", type=int, default=30, help="steps timed per speed measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--gui", type=int, default=100, metavar="STEPS",
                        help="also time a drag of STEPS steps in the real editor, offscreen (0: skip)")
    parser.add_argument("--json", help="also write every number here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          f"load average before: {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}")
    G = load_model(args.model, device=args.device)
    report: dict = {"model": args.model, "device": args.device, "threads": torch.get_num_threads(),
                    "load_before": load_before, "speed": [], "accuracy": []}

    print("\n| model | size | steps/s, image every step | steps/s, no images | renderer frame | step / frame |")
    print("| --- | --- | --- | --- | --- | --- |")
    report["speed"].append(speed(G, Path(args.model).name, args.speed_steps))
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        report["speed"].append(speed(config_f_generator(size, args.device), f"config-f {size}", max(3, args.speed_steps // 6)))

    if args.seeds:
        settings = DragSettings()
        print(f"\n{args.seeds} drags on {Path(args.model).name}, one handle moved {DISTANCE:.0%} of the width, "
              f"{settings.steps} steps at most; settings {settings.resolved(G, 1)}")
        print("\n| mask | within 2 px | median final distance | median steps | change inside | change outside | outside / inside |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for use_mask in (True, False):
            report["accuracy"].append(accuracy(G, args.seeds, use_mask, settings))
    if args.gui:
        report["editor"] = editor_during_a_drag(args.model, args.gui)
    report["load_after"] = os.getloadavg()
    print(f"\nload average after: {report['load_after'][0]:.1f} {report['load_after'][1]:.1f} {report['load_after'][2]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
