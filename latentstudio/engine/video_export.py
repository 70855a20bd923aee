"""Rendering an animation into a video file: sample, synthesise in batches, stream to a writer."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from latentstudio.engine.animation import Animation
from latentstudio.engine.animation_sampler import AnimationSampler, iter_frames
from latentstudio.engine.directions import Cancelled
from latentstudio.engine.renderer import Renderer
from latentstudio.engine.video import open_writer, video_format

PALETTE_SAMPLES = 16  # frames a GIF's global palette is made from
BATCH = 8
BATCHED_CPU_MAX_RESOLUTION = 128  # measured: 2.8x faster in batches at 64 px on the CPU, slower at 256 px

Progress = Callable[[int, int], None]


def video_size(renderer: Renderer, animation: Animation) -> tuple[int, int]:
    """``(width, height)`` of the animation's frames before upscaling (a grid is cells wide)."""
    resolution = int(renderer.G.img_resolution)
    return animation.columns * resolution, animation.rows * resolution


def default_batch_size(renderer: Renderer) -> int:
    """Images per synthesis call. Batches pay off where per-call overheads dominate (a GPU, a
    small model); a large model on the CPU is bound by arithmetic, and its batch-1 lean
    modulated convolution is faster than the batched one (benchmarks/RESULTS.md)."""
    if renderer.device.type != "cpu" or renderer.G.img_resolution <= BATCHED_CPU_MAX_RESOLUTION:
        return BATCH
    return 1


def palette_samples(renderer: Renderer, animation: Animation, sampler: AnimationSampler, count: int = PALETTE_SAMPLES) -> list[np.ndarray]:
    """Frames spread evenly over the animation, for a GIF palette that fits all of it."""
    indices = np.unique(np.linspace(0, animation.num_frames - 1, min(count, animation.num_frames)).round().astype(int))
    frames = []
    for index in indices.tolist():
        frames.extend(iter_frames(renderer, animation, 1, index, index + 1, sampler))
    return frames


def export_video(
    renderer: Renderer,
    animation: Animation,
    path: str | os.PathLike,
    *,
    scale: int = 1,
    crf: int | None = None,
    bitrate: int | None = None,
    batch_size: int | None = None,
    model_path: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Render every frame of ``animation`` into ``path`` (format from the extension).

    Everything that can be refused (keys that do not fit the model, an unwritable path, bad
    settings) is refused before the first frame. ``should_stop()`` returning true drops the
    partial file and raises :class:`~latentstudio.engine.directions.Cancelled`; a
    ``KeyboardInterrupt`` publishes the frames written so far as a valid, shorter video.
    ``progress(done, total)`` follows every frame. ``batch_size``: images per synthesis call
    (default :func:`default_batch_size`).
    """
    sampler = AnimationSampler(renderer, animation)
    total = animation.num_frames
    palette = palette_samples(renderer, animation, sampler) if video_format(path) == "gif" else ()
    writer = open_writer(path, animation.fps, scale=scale, animation=animation, model_path=model_path, crf=crf, bitrate=bitrate,
                         loop=animation.loop, expected_frames=total, image_size=video_size(renderer, animation),
                         palette_frames=palette)
    batch_size = batch_size or default_batch_size(renderer)
    with writer:
        for done, image in enumerate(iter_frames(renderer, animation, batch_size, sampler=sampler), start=1):
            if should_stop is not None and should_stop():
                raise Cancelled(f"export of {Path(path).name} cancelled after {done - 1} of {total} frames")
            writer.write(image)
            if progress is not None:
                progress(done, total)
    return writer.path
