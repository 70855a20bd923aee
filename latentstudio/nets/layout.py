"""Which layer each ``ws`` index drives, and at what resolution, for any supported generator.

Tools label per-layer sliders and group them coarse / middle / fine from this, so it is
computed from the network itself rather than assumed from the image resolution.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn


@dataclass(frozen=True)
class WsLayer:
    index: int
    name: str
    resolution: int


def ws_layout(G: nn.Module) -> list[WsLayer]:
    """One :class:`WsLayer` per ``ws`` index of ``G`` (StyleGAN2 or StyleGAN3)."""
    synthesis = G.synthesis
    if hasattr(synthesis, "block_resolutions"):
        return _stylegan2_layout(synthesis)
    return _stylegan3_layout(synthesis)


def _stylegan2_layout(synthesis: nn.Module) -> list[WsLayer]:
    # Block b{res} reads num_conv + num_torgb consecutive ws, and the index advances by
    # num_conv, so a block's toRGB shares its ws with the next block's conv0.
    users: dict[int, list[tuple[str, int]]] = {}
    w_idx = 0
    for res in synthesis.block_resolutions:
        block = getattr(synthesis, f"b{res}")
        names = (["conv0"] if res > 4 else []) + ["conv1"]
        names = names[: block.num_conv] + (["torgb"] if block.num_torgb else [])
        for offset, name in enumerate(names):
            users.setdefault(w_idx + offset, []).append((name, res))
        w_idx += block.num_conv
    layers = []
    for index in range(synthesis.num_ws):
        parts = users.get(index, [])
        # Name a shared index by the conv it feeds (what the user sees change), toRGB second.
        parts.sort(key=lambda part: (part[0] == "torgb", part[1]))
        name = " + ".join(f"{res}x{res} {layer}" for layer, res in parts) or "unused"
        resolution = max((res for layer, res in parts if layer != "torgb"), default=parts[0][1] if parts else 0)
        layers.append(WsLayer(index, name, resolution))
    return layers


def _stylegan3_layout(synthesis: nn.Module) -> list[WsLayer]:
    """ws[0] drives the Fourier-feature input; ws[1 + i] drives layer i (the last is toRGB).

    A StyleGAN3 layer's sampling grid says little about its content (the first layers of a
    1024 px model already run at 16 px plus margins); its cutoff frequency does. So each
    layer's ``resolution`` is its *effective* resolution, twice the cutoff (the Nyquist
    rate of its content), which runs from 4 px up to the output size like StyleGAN2's
    blocks, and the same coarse / middle / fine bounds apply to both.
    """
    layers = [WsLayer(0, "input", _effective_resolution(synthesis.input.bandwidth))]
    for i, name in enumerate(synthesis.layer_names):
        layer = getattr(synthesis, name)
        layers.append(WsLayer(i + 1, name, _effective_resolution(layer.out_cutoff)))
    return layers


def _effective_resolution(cutoff: float) -> int:
    return int(np.round(2 * float(cutoff)))


def layer_groups(layout: list[WsLayer], img_resolution: int) -> dict[str, list[int]]:
    """Split ws indices into ``coarse`` / ``middle`` / ``fine`` the way the StyleGAN paper does.

    At 1024 px: coarse = 4-8 px (pose, shape), middle = 16-32 px (features), fine = 64 px and
    up (colour, texture). Small models keep three non-empty groups by capping the bounds at a
    quarter and half of the output resolution.
    """
    coarse_max = min(8, img_resolution // 4)
    middle_max = min(32, img_resolution // 2)
    groups: dict[str, list[int]] = {"coarse": [], "middle": [], "fine": []}
    for layer in layout:
        if layer.resolution <= coarse_max:
            groups["coarse"].append(layer.index)
        elif layer.resolution <= middle_max:
            groups["middle"].append(layer.index)
        else:
            groups["fine"].append(layer.index)
    return groups
