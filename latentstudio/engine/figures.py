"""Report figures drawn with Pillow: bar charts, labelled heatmaps and labelled image grids.

The engine must not import Qt (pyqtgraph's exporters need it) and a plotting library would
be a heavy dependency for three kinds of figure, so these are drawn directly: white
background, titles, axis labels, ticks, a colour bar, all in Pillow's bundled font.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from latentstudio.engine.export import to_pil

BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
GRID = (225, 225, 225)
BAR = (59, 117, 175)
ACCENT = (214, 96, 77)

# Viridis sampled at 9 points (a colour-blind-safe, perceptually uniform colour map).
_VIRIDIS = np.array([
    (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
    (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37),
], dtype=np.float32)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (a scalable one when FreeType is available)."""
    return ImageFont.load_default(size=size)


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB through viridis (NaN -> light grey)."""
    values = np.asarray(values, dtype=np.float32)
    scaled = np.clip(np.nan_to_num(values, nan=0.0), 0, 1) * (len(_VIRIDIS) - 1)
    low = np.floor(scaled).astype(int).clip(0, len(_VIRIDIS) - 2)
    frac = (scaled - low)[..., None]
    rgb = _VIRIDIS[low] * (1 - frac) + _VIRIDIS[low + 1] * frac
    rgb[np.isnan(values)] = 200
    return rgb.round().astype(np.uint8)


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (1, 2 or 5 times a power of ten apart)."""
    if not top > 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [step * i for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def _text_size(draw: ImageDraw.ImageDraw, text: str, face) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face)
    return right - left, bottom - top


def _vertical_text(text: str, face, fill=INK) -> Image.Image:
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width, height = _text_size(probe, text, face)
    label = Image.new("RGBA", (width + 4, height + 8), (0, 0, 0, 0))
    ImageDraw.Draw(label).text((2, 0), text, font=face, fill=fill)
    return label.rotate(90, expand=True)


def bar_chart(
    values: Sequence[float],
    labels: Sequence[str],
    title: str,
    xlabel: str,
    ylabel: str,
    cumulative: bool = False,
    bar_width: int = 28,
) -> Image.Image:
    """Vertical bars with a y axis, grid lines and one label per bar; ``cumulative`` adds the
    running total as a line on the same axis (for explained variance)."""
    values = np.asarray(values, dtype=np.float64)
    running = np.cumsum(values) if cumulative else None
    top = float(max(values.max(initial=0.0), running.max() if running is not None else 0.0)) * 1.05
    ticks = nice_ticks(top)
    title_font, label_font, tick_font = font(20), font(15), font(12)
    left, right, upper, lower = 80, 30, 60, 80
    gap = max(6, bar_width // 3)
    plot_w = max(len(values) * (bar_width + gap) + gap, 320)
    plot_h = 300
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    plot_w = max(plot_w, _text_size(probe, title, title_font)[0] + 40 - left - right)
    image = Image.new("RGB", (left + plot_w + right, upper + plot_h + lower), BACKGROUND)
    draw = ImageDraw.Draw(image)
    y_max = ticks[-1]

    def y_of(value: float) -> float:
        return upper + plot_h - plot_h * value / y_max

    for tick in ticks:
        y = y_of(tick)
        draw.line([(left, y), (left + plot_w, y)], fill=GRID)
        text = _fmt(tick)
        tw, th = _text_size(draw, text, tick_font)
        draw.text((left - 8 - tw, y - th / 2 - 2), text, font=tick_font, fill=INK)
    step = max(1, math.ceil(len(values) / 30))
    for i, value in enumerate(values):
        x0 = left + gap + i * (bar_width + gap)
        draw.rectangle([x0, y_of(value), x0 + bar_width, y_of(0)], fill=BAR)
        if i % step == 0:
            tw, _ = _text_size(draw, labels[i], tick_font)
            draw.text((x0 + bar_width / 2 - tw / 2, upper + plot_h + 6), labels[i], font=tick_font, fill=INK)
    if running is not None:
        points = [(left + gap + i * (bar_width + gap) + bar_width / 2, y_of(v)) for i, v in enumerate(running)]
        if len(points) > 1:
            draw.line(points, fill=ACCENT, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=ACCENT)
        legend = "line: cumulative"
        tw, _ = _text_size(draw, legend, tick_font)
        draw.text((left + plot_w - tw - 4, upper - 18), legend, font=tick_font, fill=ACCENT)
    draw.line([(left, upper), (left, upper + plot_h), (left + plot_w, upper + plot_h)], fill=INK, width=1)
    tw, _ = _text_size(draw, title, title_font)
    draw.text(((image.width - tw) / 2, 16), title, font=title_font, fill=INK)
    tw, _ = _text_size(draw, xlabel, label_font)
    draw.text((left + (plot_w - tw) / 2, upper + plot_h + 40), xlabel, font=label_font, fill=INK)
    rotated = _vertical_text(ylabel, label_font)
    image.paste(rotated, (12, int(upper + (plot_h - rotated.height) / 2)), rotated)
    return image


def _wrap_to(label: str, width: int, face) -> str:
    """Put the words of a snake_case label on separate lines when it is wider than ``width``."""
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    if "\n" in label or _text_size(probe, label, face)[0] <= width:
        return label
    return label.replace("_", "\n")


def heatmap(
    matrix: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    xlabel: str,
    ylabel: str,
    colorbar_label: str,
    cell: int = 44,
    annotate: bool = True,
) -> Image.Image:
    """A labelled heatmap (rows x columns) with values in the cells and a colour bar."""
    matrix = np.asarray(matrix, dtype=np.float64)
    rows, cols = matrix.shape
    col_labels = [_wrap_to(str(label), cell - 4, font(12)) for label in col_labels]
    finite = matrix[np.isfinite(matrix)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 1.0
    high = high if high > low else low + 1.0
    title_font, label_font, tick_font = font(20), font(15), font(12)
    cell_font = font(11 if cell < 40 else 12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    row_text_w = max((_text_size(probe, label, tick_font)[0] for label in row_labels), default=0)
    left = 40 + row_text_w + 10
    upper, lower = 60, 70
    bar_gap, bar_w, bar_text = 24, 18, 60
    plot_w, plot_h = cols * cell, rows * cell
    natural = left + plot_w + bar_gap + bar_w + bar_text + 40
    width = max(natural, _text_size(probe, title, title_font)[0] + 40, 420)
    left += (width - natural) // 2  # centre the plot under a wider title
    image = Image.new("RGB", (width, upper + plot_h + lower), BACKGROUND)
    draw = ImageDraw.Draw(image)

    colours = colormap((matrix - low) / (high - low))
    for r in range(rows):
        for c in range(cols):
            x0, y0 = left + c * cell, upper + r * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=tuple(int(v) for v in colours[r, c]))
            if annotate and np.isfinite(matrix[r, c]):
                text = _fmt(matrix[r, c])
                tw, th = _text_size(draw, text, cell_font)
                bright = (matrix[r, c] - low) / (high - low) > 0.6
                draw.text((x0 + (cell - tw) / 2, y0 + (cell - th) / 2 - 2), text, font=cell_font, fill=INK if bright else BACKGROUND)
    for r, label in enumerate(row_labels):
        tw, th = _text_size(draw, label, tick_font)
        draw.text((left - 8 - tw, upper + r * cell + (cell - th) / 2 - 2), label, font=tick_font, fill=INK)
    for c, label in enumerate(col_labels):
        for line_index, line in enumerate(str(label).split("\n")):
            tw, _ = _text_size(draw, line, tick_font)
            draw.text((left + c * cell + (cell - tw) / 2, upper + plot_h + 6 + 15 * line_index), line, font=tick_font, fill=INK)

    bar_x = left + plot_w + bar_gap
    gradient = colormap(np.linspace(1, 0, plot_h)[:, None].repeat(bar_w, axis=1))
    image.paste(Image.fromarray(gradient), (bar_x, upper))
    draw.rectangle([bar_x, upper, bar_x + bar_w - 1, upper + plot_h - 1], outline=INK)
    for tick in nice_ticks(high):
        if tick < low or tick > high:
            continue
        y = upper + plot_h - plot_h * (tick - low) / (high - low)
        draw.line([(bar_x + bar_w, y), (bar_x + bar_w + 4, y)], fill=INK)
        _, th = _text_size(draw, _fmt(tick), tick_font)
        draw.text((bar_x + bar_w + 7, y - th / 2 - 2), _fmt(tick), font=tick_font, fill=INK)
    rotated = _vertical_text(colorbar_label, tick_font)
    image.paste(rotated, (bar_x + bar_w + bar_text - 8, int(upper + (plot_h - rotated.height) / 2)), rotated)

    tw, _ = _text_size(draw, title, title_font)
    draw.text(((image.width - tw) / 2, 16), title, font=title_font, fill=INK)
    tw, _ = _text_size(draw, xlabel, label_font)
    lines = max((len(str(label).split("\n")) for label in col_labels), default=1)
    draw.text((left + (plot_w - tw) / 2, upper + plot_h + 12 + 15 * lines), xlabel, font=label_font, fill=INK)
    rotated = _vertical_text(ylabel, label_font)
    image.paste(rotated, (max(8, left - row_text_w - 18 - rotated.width), int(upper + (plot_h - rotated.height) / 2)), rotated)
    return image


def labelled_grid(
    rows: Sequence[Sequence[np.ndarray]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    thumb: int = 128,
    padding: int = 4,
) -> Image.Image:
    """Images in rows (e.g. one direction per row, one strength per column), each resized to
    ``thumb`` pixels, with row labels on the left and column headers on top."""
    title_font, tick_font = font(20), font(14)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 20 + max((_text_size(probe, label, tick_font)[0] for label in row_labels), default=0)
    upper = 76
    columns = max((len(row) for row in rows), default=0)
    width = left + columns * (thumb + padding) + 16
    width = max(width, _text_size(probe, title, title_font)[0] + 40, 300)
    image = Image.new("RGB", (width, upper + len(rows) * (thumb + padding) + 12), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for r, row in enumerate(rows):
        y = upper + r * (thumb + padding)
        tw, th = _text_size(draw, row_labels[r], tick_font)
        draw.text((left - 10 - tw, y + (thumb - th) / 2 - 2), row_labels[r], font=tick_font, fill=INK)
        for c, picture in enumerate(row):
            tile = to_pil(picture).convert("RGB").resize((thumb, thumb), Image.Resampling.LANCZOS)
            image.paste(tile, (left + c * (thumb + padding), y))
    for c, label in enumerate(col_labels):
        tw, _ = _text_size(draw, label, tick_font)
        draw.text((left + c * (thumb + padding) + (thumb - tw) / 2, upper - 22), label, font=tick_font, fill=INK)
    tw, _ = _text_size(draw, title, title_font)
    draw.text(((image.width - tw) / 2, 16), title, font=title_font, fill=INK)
    return image
