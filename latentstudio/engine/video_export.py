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

Progress = Callable[[int, int], None]


def video_size(renderer: Renderer, animation: Animation) -> tuple[int, int]:
    """``(width, height)`` of the animation's frames before upscaling (a grid is cells wide)."""
    resolution = int(renderer.G.img_resolution)
    return animation.columns * resolution, animation.rows * resolution


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
    batch_size: int = 8,
    model_path: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Render every frame of ``animation`` into ``path`` (format from the extension).

    Everything that can be refused (keys that do not fit the model, an unwritable path, bad
    settings) is refused before the first frame. ``should_stop()`` returning true drops the
    partial file and raises :class:`~latentstudio.engine.directions.Cancelled`; a
    ``KeyboardInterrupt`` publishes the frames written so far as a valid, shorter video.
    ``progress(done, total)`` follows every frame.
    """
    sampler = AnimationSampler(renderer, animation)
    total = animation.num_frames
    palette = palette_samples(renderer, animation, sampler) if video_format(path) == "gif" else ()
    writer = open_writer(path, animation.fps, scale=scale, animation=animation, model_path=model_path, crf=crf, bitrate=bitrate,
                         loop=animation.loop, expected_frames=total, image_size=video_size(renderer, animation),
                         palette_frames=palette)
    with writer:
        for done, image in enumerate(iter_frames(renderer, animation, batch_size, sampler=sampler), start=1):
            if should_stop is not None and should_stop():
                raise Cancelled(f"export of {Path(path).name} cancelled after {done - 1} of {total} frames")
            writer.write(image)
            if progress is not None:
                progress(done, total)
    return writer.path
