"""A whole training run: data, trainer, ticks, snapshots, resume, stop requests, progress.

:func:`train` is what ``latentstudio train`` and ``python -m latentstudio.train`` call, in
every process of a distributed run. Only process 0 writes files and prints.

Ticks and snapshots: statistics are averaged over a tick (``--tick`` kimg) and written as one
``stats.jsonl`` line; checkpoints and sample grids are written at the first tick end after
every ``--snap`` kimg, at the end, and when the run is asked to stop (SIGTERM / SIGINT: the
current step finishes, a checkpoint is written, the process exits normally). Checkpoints fall
on tick ends, so a resumed run's ticks line up with the uninterrupted run's.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from latentstudio.engine.export import save_png
from latentstudio.io import load_networks
from latentstudio.train.checkpoints import find_checkpoint, load_state, save_checkpoint
from latentstudio.train.config import TrainOptions
from latentstudio.train.data import TEACHER_DATA, make_loader, open_training_data
from latentstudio.train.distributed import (
    ProcessInfo,
    any_process,
    init_process_group,
    process_info_from_env,
)
from latentstudio.train.loop import Trainer, write_reals_grid
from latentstudio.train.samples import fixed_latents, grid_size, render_grid, save_grid
from latentstudio.train.stats import EventStream, StatsLog
from latentstudio.train.teacher import TeacherData, load_teacher

RUN_FILE = "run.json"  # options and data set summary, written when a run (re)starts


@dataclass
class StopFlag:
    """Set by SIGTERM / SIGINT; the loop stops cleanly after the current step."""

    requested: bool = False
    previous: dict[int, Any] = field(default_factory=dict)

    def install(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def uninstall(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()


def resolve_device(options: TrainOptions, process: ProcessInfo) -> torch.device:
    name = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        device = torch.device("cuda", device.index if device.index is not None else process.local_rank)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    elif process.distributed:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // process.world_size))
    return device


def options_for_resume(resume: str | os.PathLike, overrides: dict[str, Any] | None = None) -> tuple[TrainOptions, Path, Path]:
    """The stored options of a checkpoint (plus ``overrides`` such as a longer ``kimg``),
    its network file and its state file. The run folder is where the checkpoint is."""
    network_path, state_path = find_checkpoint(resume)
    stored = load_state(state_path)["options"]
    stored.update(overrides or {})
    stored["outdir"] = str(state_path.parent)
    return TrainOptions.from_dict(stored), network_path, state_path


def train(options: TrainOptions, resume: str | os.PathLike | None = None, events: bool = False,
          progress: bool = True, log=None) -> Trainer:
    """Run (or continue, with ``resume``: a checkpoint's state file, network file or run folder)
    until ``options.kimg`` thousand images; returns the trainer. ``log(line)`` receives the
    one-line summaries (default: stderr)."""
    process = process_info_from_env()
    device = resolve_device(options, process)
    init_process_group(process, device)
    main = process.is_main
    emit = EventStream(events and main).emit
    say = (log or _write_line) if main else (lambda line: None)

    state = networks = None
    if resume is not None:
        network_path, state_path = find_checkpoint(resume)
        state = load_state(state_path)
        networks = load_networks(network_path, device="cpu")
        if state["world_size"] != process.world_size:
            say(f"note: resuming a {state['world_size']}-process run with {process.world_size} process(es); "
                f"the data order is kept, the per-process random draws are not")
    run_dir = Path(options.outdir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)

    teacher = None
    if options.teacher:
        teacher = TeacherData(load_teacher(options.teacher, device), options.resolution, options.seed)
        if options.distill > 0 and options.z_dim is None:
            options = dataclasses.replace(options, z_dim=teacher.z_dim)  # stored, so a resume keeps it
        if options.distill > 0 and options.z_dim != teacher.z_dim:
            raise ValueError(f"--distill feeds the teacher's z to the student: --z-dim must be {teacher.z_dim}, "
                             f"not {options.z_dim}")
    dataset = teacher if options.data == TEACHER_DATA and teacher is not None else open_training_data(options)
    c_dim = dataset.label_dim if options.cond else 0
    label_bank = None
    if c_dim:
        label_bank = torch.stack([torch.as_tensor(dataset.get_label(i)) for i in range(len(dataset))])
    skipped = [{"name": s[0], "reason": s[1]} for s in getattr(dataset, "skipped", [])]
    init_networks = None
    if options.init and state is None:
        init_networks = load_networks(options.init, device="cpu")
    trainer = Trainer(options, c_dim, device, process, init_networks=init_networks, label_bank=label_bank)
    if state is not None:
        trainer.load_state_dict(state, networks)

    if main:
        summary = {"options": options.to_dict(), "images": len(dataset), "skipped": skipped,
                   "c_dim": c_dim, "world_size": process.world_size, "device": str(device),
                   "resumed_from_step": trainer.step if state is not None else None}
        (run_dir / RUN_FILE).write_text(json.dumps(summary, indent=1))
    images_text = "images drawn on the fly from the teacher" if dataset is teacher else f"{len(dataset)} images"
    say(f"data: {options.data}: {images_text}" + (f", {len(skipped)} unreadable file(s) skipped" if skipped else ""))
    emit("start", run_dir=str(run_dir), images=len(dataset), skipped=len(skipped), step=trainer.step,
         kimg=trainer.images_seen / 1000, kimg_total=options.kimg, resumed=state is not None)

    grid_z = fixed_latents(options.seed, grid_size(options.resolution), trainer.G.z_dim)
    grid_c = (label_bank[torch.arange(len(grid_z)) % len(label_bank)] if label_bank is not None
              else torch.zeros([len(grid_z), c_dim]))

    def write_grid() -> Path:
        return save_png(run_dir / f"fakes{trainer.step:06d}.png", render_grid(trainer.G_ema, grid_z, grid_c))

    def write_snapshot() -> None:
        grid_path = write_grid()
        provenance = {"trainer": "latentstudio", "step": trainer.step, "kimg": trainer.images_seen / 1000,
                      "data": options.data}
        if c_dim and getattr(dataset, "class_names", None):
            provenance["class_names"] = list(dataset.class_names)
        checkpoint = save_checkpoint(run_dir, trainer.step, trainer.networks(), trainer.state_dict(),
                                     provenance, options.keep)
        emit("snapshot", step=trainer.step, kimg=trainer.images_seen / 1000, grid=str(grid_path),
             checkpoint=str(checkpoint))

    if main and state is None:
        if dataset is teacher:
            save_grid(run_dir / "reals.png", list(teacher.samples(grid_size(options.resolution))))
        else:
            write_reals_grid(run_dir / "reals.png", dataset, grid_size(options.resolution))
        emit("snapshot", step=0, kimg=0.0, grid=str(write_grid()), checkpoint=None)

    stats_log = StatsLog(run_dir, resume_step=trainer.step if state is not None else None) if main else None
    batches = _step_inputs(dataset, teacher, options, trainer.step, process, cuda=device.type == "cuda")
    total_images = int(math.ceil(options.kimg * 1000))
    tick_images = max(1, int(options.tick * 1000))
    snap_images = max(1, int(options.snap * 1000))
    stop = StopFlag()
    stop.install()
    bar = _progress_bar(main and progress and not events, trainer.images_seen, total_images)
    run_start = tick_start_time = time.perf_counter()
    tick_start_images = last_snap_images = trainer.images_seen
    if trainer.images_seen >= total_images:
        say(f"nothing to do: the run is already at {trainer.images_seen / 1000:.3f} kimg (--kimg {options.kimg})")
    try:
        while trainer.images_seen < total_images:
            real, labels, pairs = next(batches)
            trainer.train_step(real, labels, pairs)
            bar.update(trainer.batch)
            stopping = any_process(stop.requested, device)
            finished = trainer.images_seen >= total_images
            if not (trainer.images_seen - tick_start_images >= tick_images or finished or stopping):
                continue
            now = time.perf_counter()
            values = trainer.stats.collect()
            images = trainer.images_seen - tick_start_images
            seconds = now - tick_start_time
            record = {"step": trainer.step, "kimg": trainer.images_seen / 1000, **values,
                      **trainer.learning_rates(), "augment_p": trainer.augmenter.p,
                      "img_per_s": images / seconds if seconds > 0 else None,
                      "sec_per_kimg": seconds * 1000 / images if images else None,
                      "time": now - run_start}
            if main:
                stats_log.write(record)
                emit("tick", kimg_total=options.kimg, **record)
                say(_summary(record))
            tick_start_time, tick_start_images = now, trainer.images_seen
            if finished or stopping or trainer.images_seen // snap_images > last_snap_images // snap_images:
                if main:
                    write_snapshot()
                last_snap_images = trainer.images_seen
            if stopping:
                say(f"stopped at step {trainer.step} ({trainer.images_seen / 1000:.3f} kimg); resume with --resume {run_dir}")
                emit("stopped", step=trainer.step, kimg=trainer.images_seen / 1000)
                break
        if not stop.requested:
            emit("done", step=trainer.step, kimg=trainer.images_seen / 1000)
    finally:
        stop.uninstall()
        bar.close()
    return trainer


def _step_inputs(dataset, teacher: TeacherData | None, options: TrainOptions, start_step: int,
                 process: ProcessInfo, cuda: bool):
    """Endless ``(real images, labels, distillation pairs or None)``, one per step from ``start_step``.

    Reals come from the teacher itself (``--data teacher``) or from the data set; pairs are the
    teacher's latents and images when distilling (the reals themselves, when they are the teacher's).
    """
    if dataset is teacher:
        for images, labels, z in teacher.batches(start_step, options.batch_size, process.rank, process.world_size):
            yield images, labels, (z, images)
        return
    loader = make_loader(dataset, options, start_step, process.rank, process.world_size, cuda=cuda)
    step = start_step
    for images, labels in loader:
        pairs = None
        if teacher is not None and options.distill > 0:
            z = teacher.latents(step, options.batch_size, process.rank, process.world_size)
            pairs = (z, teacher.images(z))
        yield images, labels, pairs
        step += 1


def _write_line(line: str) -> None:
    """A summary line on stderr that does not break a running tqdm bar."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(enabled: bool, done: int, total: int):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=min(done, total), unit="img", unit_scale=True, desc="train", file=sys.stderr,
                dynamic_ncols=True)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def _summary(r: dict[str, Any]) -> str:
    distill = f"  distill {_fmt(r['distill'])}" if r.get("distill") is not None else ""
    return (f"kimg {r['kimg']:8.3f}  step {r['step']:6d}  G {_fmt(r['G_loss'])}  D {_fmt(r['D_loss'])}{distill}  "
            f"acc real {_fmt(r['D_real_acc'], '.2f')} fake {_fmt(r['D_fake_acc'], '.2f')}  "
            f"R1 {_fmt(r['R1'], '.4f')}  p {r['augment_p']:.3f}  {_fmt(r['sec_per_kimg'], '.1f')} s/kimg")
