"""``Renderer``: turns an :class:`EditRecipe` into a :class:`Frame`, caching what repeats.

One renderer owns one generator on one device. ``render`` never raises: a failure becomes
``Frame.error`` (a one-line message for the status bar), so an interactive caller can keep
going. Mapped latents are cached per ``(seed, class)``, because while a person drags a
slider the seeds stay the same and only the cheap ws arithmetic and synthesis change.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from latentstudio.engine.incremental import IncrementalSynthesis
from latentstudio.engine.recipe import EditRecipe, RecipeError, compose_ws, map_seed

PreviewCallback = Callable[["Frame"], None]


@dataclass
class Frame:
    """One rendered image and how it was made.

    ``image`` is ``H x W x 3`` uint8 (grayscale models are repeated to 3 channels; ``raw``
    keeps the model's own channel count for export). ``timings`` holds milliseconds.
    ``preview`` frames are low-resolution partial images scaled up to full size, sent
    while the full frame is still being computed. ``layers_run`` / ``num_layers``: how many
    synthesis layers this frame re-ran, of how many (equal without incremental synthesis).
    """

    recipe: EditRecipe
    image: np.ndarray | None = None
    raw: np.ndarray | None = None
    ws: torch.Tensor | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    preview: bool = False
    layers_run: int | None = None
    num_layers: int | None = None
    frame_index: int | None = None  # the animation frame this is, for frames of an animation

    @property
    def ok(self) -> bool:
        return self.error is None and self.image is not None


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """NCHW float in about [-1, 1] -> N x H x W x C uint8, rounded as NVlabs does."""
    images = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return images.permute(0, 2, 3, 1).cpu().numpy()


def as_rgb(image: np.ndarray) -> np.ndarray:
    """H x W x C uint8 -> H x W x 3 (grayscale repeated; extra channels dropped)."""
    if image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


class Renderer:
    """Renders recipes with one generator on one device.

    The fast paths, each chosen at run time and each off with a flag (the plain path,
    ``incremental=False, lean=False``, is the NVlabs reference computation):

    - ``incremental``: re-run only the synthesis layers a new recipe affects (batch 1;
      :mod:`latentstudio.engine.incremental`); pixel-identical to a full render.
    - ``lean``: the batch-1 modulated convolution that never copies weights where that
      costs more than it saves (``fused_modconv="auto"`` in :mod:`latentstudio.nets.ops`);
      equal to the reference up to float rounding.
    """

    MAPPED_CACHE_SIZE = 512
    # A preview is only worth sending when the full frame takes longer than this: below it,
    # the final frame arrives about as soon, and painting a blocky image first only flickers.
    PREVIEW_MIN_FRAME_MS = 40.0

    def __init__(
        self,
        G: nn.Module,
        device: torch.device | str | None = None,
        incremental: bool = True,
        lean: bool = True,
        cache_bytes: int = 512 * 2**20,
    ):
        self.G = G.eval()
        if device is not None:
            self.G = self.G.to(device)
        self.device = next(self.G.parameters()).device
        self._mapped: OrderedDict[tuple[int, int | None], torch.Tensor] = OrderedDict()
        is_stylegan2 = self.G.kind == "stylegan2"
        self._synthesis_kwargs = {"fused_modconv": "auto"} if lean and is_stylegan2 else {}
        # fused_modconv=None: the blocks' own default, the reference computation when not lean.
        self.incremental = (
            IncrementalSynthesis(self.G.synthesis, cache_bytes, self._synthesis_kwargs.get("fused_modconv"))
            if incremental else None
        )
        self._full_synthesis_ms = float("inf")  # the last synthesis that ran every layer; unknown yet

    # -- latents ------------------------------------------------------------------------
    def mapped(self, seed: int, class_index: int | None) -> torch.Tensor:
        """Untruncated ``ws`` of a seed, cached (least recently used dropped first)."""
        key = (seed, class_index)
        ws = self._mapped.get(key)
        if ws is None:
            ws = map_seed(self.G, seed, class_index, self.device)
            self._mapped[key] = ws
            while len(self._mapped) > self.MAPPED_CACHE_SIZE:
                self._mapped.popitem(last=False)
        else:
            self._mapped.move_to_end(key)
        return ws

    def compose(self, recipe: EditRecipe) -> torch.Tensor:
        """``ws`` for a recipe, using the mapped-latent cache."""
        ws_a = None if recipe.latent is not None else self.mapped(recipe.seed, recipe.class_index)
        ws_b = None if recipe.mix_seed is None else self.mapped(recipe.mix_seed, recipe.class_index)
        return compose_ws(self.G, recipe, ws_a, ws_b)

    # -- synthesis ----------------------------------------------------------------------
    def synthesize(self, ws: torch.Tensor, recipe: EditRecipe, on_preview: PreviewCallback | None = None,
                   reuse: bool = True) -> torch.Tensor:
        """NCHW float image for ``ws`` with the recipe's noise and input transform.

        ``reuse=False`` runs the whole network and leaves the incremental cache alone (for
        one-off frames such as thumbnails, which would otherwise evict the editor's).
        """
        if self.G.kind == "stylegan3":
            self.G.synthesis.set_transform(recipe.translate, recipe.rotate)
        if self.incremental is not None and reuse and ws.shape[0] == 1:
            wanted = on_preview is not None and self._full_synthesis_ms >= self.PREVIEW_MIN_FRAME_MS
            on_block = self._preview_sender(recipe, on_preview) if wanted else None
            start = time.perf_counter()
            image = self.incremental(ws, recipe.noise_mode, recipe.noise_seed, on_block,
                                     context=(recipe.translate, recipe.rotate))
            if self.incremental.stats.steps_run == self.incremental.stats.num_steps:
                self._full_synthesis_ms = 1e3 * (time.perf_counter() - start)
            return image
        kwargs: dict = {"noise_mode": recipe.noise_mode, **self._synthesis_kwargs}
        if recipe.noise_mode == "random" and self.G.kind == "stylegan2":
            # A CPU generator: the same noise seed gives the same noise on every device.
            kwargs["noise_generator"] = torch.Generator().manual_seed(recipe.noise_seed)
        return self.G.synthesis(ws, **kwargs)

    def _preview_sender(self, recipe: EditRecipe, on_preview: PreviewCallback):
        """A block callback that sends a low-resolution partial image as a preview.

        In the skip architecture the image after any block is a valid low-resolution picture
        (the finer blocks only add detail). R/4 comes after a small fraction of the work up
        to 128 px; from 256 px on, the R/4 block itself is a third of the frame (config-f,
        measured), so the preview is taken at R/8. Nothing is sent when the restart begins
        past that block.
        """
        preview_resolution = self.G.img_resolution // (4 if self.G.img_resolution <= 128 else 8)
        started = time.perf_counter()

        def on_block(index: int, resolution: int, img: torch.Tensor | None) -> None:
            if resolution != preview_resolution or img is None or preview_resolution < 8:
                return
            factor = self.G.img_resolution // resolution
            raw = to_uint8(img)[0].repeat(factor, axis=0).repeat(factor, axis=1)
            on_preview(Frame(recipe=recipe, raw=raw, image=as_rgb(raw), preview=True,
                             timings={"total_ms": 1e3 * (time.perf_counter() - started)}))

        return on_block

    def cache_info(self) -> dict[str, int]:
        """Memory held by the caches and what the last synthesis re-ran."""
        info = {"mapped_latents": len(self._mapped)}
        if self.incremental is not None:
            stats = self.incremental.stats
            info.update(cached_bytes=stats.cached_bytes, restart_block=stats.restart_block,
                        restart_step=stats.restart_step, blocks_run=stats.blocks_run,
                        num_blocks=stats.num_blocks, steps_run=stats.steps_run, num_steps=stats.num_steps)
        return info

    def render(self, recipe: EditRecipe, on_preview: PreviewCallback | None = None, reuse: bool = True) -> Frame:
        """Render one recipe. Never raises: errors come back as ``Frame.error``.

        ``on_preview(frame)`` receives an early low-resolution frame (StyleGAN2 skip
        architecture, resolution >= 32: R/4, or R/8 from 256 px) before the full frame,
        unless this renderer's last full synthesis took under ``PREVIEW_MIN_FRAME_MS``.
        ``reuse``: see :meth:`synthesize`.
        """
        frame = Frame(recipe=recipe)
        try:
            with torch.inference_mode():
                start = time.perf_counter()
                ws = self.compose(recipe)
                composed = time.perf_counter()
                raw = to_uint8(self.synthesize(ws, recipe, on_preview, reuse))[0]
                done = time.perf_counter()
        except RecipeError as error:
            frame.error = str(error)
            return frame
        except Exception as error:  # noqa: BLE001 - a frame error must never kill the caller
            frame.error = f"render failed: {type(error).__name__}: {error}"
            return frame
        frame.ws, frame.raw, frame.image = ws, raw, as_rgb(raw)
        if self.incremental is not None and reuse:
            frame.layers_run, frame.num_layers = self.incremental.stats.steps_run, self.incremental.stats.num_steps
        frame.timings = {"compose_ms": 1e3 * (composed - start), "synthesis_ms": 1e3 * (done - composed), "total_ms": 1e3 * (done - start)}
        return frame

    def render_ws(self, ws: torch.Tensor, noise_mode: str = "const", noise_seed: int = 0,
                  transforms: Sequence[tuple[tuple[float, float], float]] | None = None) -> np.ndarray:
        """Raw images (``N x H x W x C`` uint8) of a batch of ``ws`` in one synthesis call.

        The batch path of :meth:`render_many` and of animations, which have per-frame ws but
        no recipe per frame. It never touches the incremental cache. ``transforms``: one
        ``(translate, rotate)`` per image for StyleGAN3 (``None``: untransformed). Random
        noise (StyleGAN2) is drawn from ``noise_seed`` for every image alike, as
        :meth:`render` draws it, so those images run one at a time.
        """
        with torch.inference_mode():
            if self.G.kind == "stylegan3":
                moves = transforms if transforms is not None else [((0.0, 0.0), 0.0)] * len(ws)
                self.G.synthesis.set_transforms([t for t, _ in moves], [r for _, r in moves])
                try:
                    return to_uint8(self.G.synthesis(ws))
                finally:
                    self.G.synthesis.set_transform()
            if noise_mode == "random":
                return np.concatenate([
                    to_uint8(self.G.synthesis(row, noise_mode="random", noise_generator=torch.Generator().manual_seed(noise_seed),
                                              **self._synthesis_kwargs))
                    for row in ws.split(1)
                ])
            return to_uint8(self.G.synthesis(ws, noise_mode=noise_mode, **self._synthesis_kwargs))

    def render_many(self, recipes: Sequence[EditRecipe], batch_size: int = 16) -> list[Frame]:
        """Render many recipes, batching synthesis where noise allows (thumbnails, grids)."""
        frames: list[Frame] = []
        batchable = [r.noise_mode != "random" or self.G.kind == "stylegan3" for r in recipes]
        pending: list[tuple[EditRecipe, torch.Tensor]] = []

        def flush() -> None:
            if not pending:
                return
            start = time.perf_counter()
            ws = torch.cat([w for _, w in pending])
            by_mode: dict[str, list[int]] = {}
            for i, (recipe, _) in enumerate(pending):
                by_mode.setdefault(recipe.noise_mode, []).append(i)
            raws: list[np.ndarray | None] = [None] * len(pending)
            for mode, rows in by_mode.items():
                moves = [(pending[i][0].translate, pending[i][0].rotate) for i in rows]
                for row, image in zip(rows, self.render_ws(ws[rows], mode, transforms=moves)):
                    raws[row] = image
            each_ms = 1e3 * (time.perf_counter() - start) / len(pending)
            for (recipe, w), raw in zip(pending, raws):
                frames.append(Frame(recipe=recipe, raw=raw, image=as_rgb(raw), ws=w, timings={"total_ms": each_ms}))
            pending.clear()

        for recipe, can_batch in zip(recipes, batchable):
            if not can_batch:
                flush()
                frames.append(self.render(recipe, reuse=False))
                continue
            try:
                with torch.inference_mode():
                    pending.append((recipe, self.compose(recipe)))
            except Exception as error:  # noqa: BLE001
                flush()
                frames.append(Frame(recipe=recipe, error=str(error)))
                continue
            if len(pending) >= batch_size:
                flush()
        flush()
        return frames
