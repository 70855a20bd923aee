"""Video export speed (batched against one frame at a time) and memory against video length.

    python benchmarks/video_export.py [--frames 120] [--big-frames 16] [--batch 8] [--memory-frames 200,2000]
                                      [--skip-256] [--only-memory] [--threads N]

1. Frames per second of a whole MP4 export (sampling, synthesis, encoding) of a looping seed
   walk, for the default model and a 256 px config-f StyleGAN2 with random weights: batches of
   ``--batch`` images against one image per synthesis call, measured in turns in the same
   process on the same weights (ratios are what to compare; absolute numbers follow the load).
2. Peak memory (resident set size) of exporting ``--memory-frames`` frames of the default
   model, each length in a fresh process: a streaming export needs the same memory for a
   short video and a long one.

The machine's load average is printed before and after, since the CPUs are shared.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def walk(G, frames: int):
    from latentstudio.engine.animation import seed_walk
    from latentstudio.engine.recipe import EditRecipe

    keys = 4
    return seed_walk(EditRecipe(truncation_psi=0.7), list(range(keys)), max(1, frames // keys), loop=True)


def export_fps(renderer, animation, batch: int, folder: Path) -> float:
    from latentstudio.engine.video_export import export_video

    start = time.perf_counter()
    export_video(renderer, animation, folder / f"b{batch}.mp4", batch_size=batch)
    return animation.num_frames / (time.perf_counter() - start)


def speed(label: str, G, frames: int, batch: int, repeats: int) -> dict:
    from latentstudio.engine.renderer import Renderer

    renderer = Renderer(G, incremental=False)
    animation = walk(G, frames)
    results: dict[int, list[float]] = {1: [], batch: []}
    with tempfile.TemporaryDirectory() as folder:
        export_fps(renderer, walk(G, min(frames, 8)), batch, Path(folder))  # warm-up
        for _ in range(repeats):
            for size in (1, batch):  # in turns, so a change of load hits both alike
                results[size].append(export_fps(renderer, animation, size, Path(folder)))
    one, many = statistics.median(results[1]), statistics.median(results[batch])
    print(f"{label}: {animation.num_frames} frames, one at a time {one:.3g} frames/s, batches of {batch} {many:.3g} frames/s, "
          f"batched / one at a time {many / one:.2f}x  (runs: {[float(f'{v:.3g}') for v in results[1]]} / "
          f"{[float(f'{v:.3g}') for v in results[batch]]})")
    return {"model": label, "frames": animation.num_frames, "one_fps": one, "batched_fps": many, "ratio": many / one}


def memory_child(frames: int) -> None:
    """Run in a fresh process: export ``frames`` frames, print peak RSS (whole run and first tenth)."""
    import torch  # noqa: F401 - loaded before the baseline is taken

    from latentstudio.defaults import DEFAULT_MODEL
    from latentstudio.engine.renderer import Renderer
    from latentstudio.engine.video_export import export_video
    from latentstudio.io import load_model

    renderer = Renderer(load_model(DEFAULT_MODEL, device="cpu"), incremental=False)
    samples: list[tuple[int, int]] = []  # (frames done, rss bytes)
    page = os.sysconf("SC_PAGE_SIZE")
    done = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with open("/proc/self/statm") as statm:
                samples.append((done[0], int(statm.read().split()[1]) * page))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as folder:
        export_video(renderer, walk(renderer.G, frames), Path(folder) / "long.mp4", batch_size=8,
                     progress=lambda d, _t: done.__setitem__(0, d))
    stop.set()
    sampler.join()
    first_tenth = max((rss for d, rss in samples if d <= frames // 10), default=0)
    # VmHWM, not getrusage's ru_maxrss: that one keeps the parent's peak across fork + exec.
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"frames": frames, "peak_rss": peak, "peak_rss_first_tenth": first_tenth,
                      "peak_rss_sampled": max(rss for _, rss in samples)}))


def memory(lengths: list[int], threads: int | None) -> list[dict]:
    rows = []
    for frames in lengths:
        command = [sys.executable, __file__, "--memory-child", str(frames)] + (["--threads", str(threads)] if threads else [])
        out = subprocess.run(command, capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"memory: {frames} frames, peak RSS {row['peak_rss'] / 2**20:.1f} MiB "
              f"(sampled: {row['peak_rss_first_tenth'] / 2**20:.1f} MiB during the first tenth, {row['peak_rss_sampled'] / 2**20:.1f} MiB overall)")
    if len(rows) > 1:
        growth = rows[-1]["peak_rss"] - rows[0]["peak_rss"]
        print(f"memory: {rows[-1]['frames']} frames need {growth / 2**20:+.1f} MiB against {rows[0]['frames']} frames")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120, help="frames of the default model's walk")
    parser.add_argument("--big-frames", type=int, default=16, help="frames of the 256 px walk")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-frames", default="200,2000")
    parser.add_argument("--skip-256", action="store_true")
    parser.add_argument("--only-memory", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        memory_child(args.memory_child)
        return
    import torch

    from latentstudio.bench import config_f_generator
    from latentstudio.defaults import DEFAULT_MODEL
    from latentstudio.io import load_model

    print(f"load average before: {os.getloadavg()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.only_memory:
        speed(f"default model ({DEFAULT_MODEL.name}, 64 px)", load_model(DEFAULT_MODEL, device="cpu"), args.frames, args.batch, args.repeats)
    if not (args.skip_256 or args.only_memory):
        torch.manual_seed(0)
        speed("config-f 256 px, random weights", config_f_generator(256), args.big_frames, args.batch, args.repeats)
    memory([int(v) for v in args.memory_frames.split(",")], args.threads)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
