"""``latentstudio analyze MODEL dirs.npz --outdir report/``: figures and numbers for a direction set.

Writes ``explained_variance.png`` (variance share per direction), ``layer_sensitivity.png``
and ``layer_sensitivity_edges.png`` (direction x layer heatmaps), ``directions_grid.png``
(each direction at -3..+3 sigma, as in the GANSpace figures), optionally
``disentanglement.png``, and ``report.json`` with every number behind them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from latentstudio.cli.arguments import int_list


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("analyze", help="figures and a JSON report for a direction set (variance, per-layer sensitivity, grids)")
    parser.add_argument("model", help="model file")
    parser.add_argument("directions", help="direction set (.npz from 'latentstudio directions')")
    parser.add_argument("--outdir", default="report", help="output folder (default report)")
    parser.add_argument("--max-directions", type=int, default=10, help="analyse the first N directions (default 10)")
    parser.add_argument("--seeds", type=int_list, default=[0, 1, 2, 3], help="seeds for the layer sensitivity (default 0-3)")
    parser.add_argument("--grid-seed", type=int, default=0, help="seed shown in the direction grid (default 0)")
    parser.add_argument("--strength", type=float, default=3.0, help="edit strength in sigma (default 3)")
    parser.add_argument("--ppl-samples", type=int, default=64, help="perceptual path length samples, 0 to skip (default 64)")
    parser.add_argument("--factors", default=None, metavar="FILE",
                        help="an .npz with 'latents' [N, w_dim], 'factors' [N, F] (and optional 'factor_names') for a disentanglement report")
    parser.add_argument("--class", dest="class_index", type=int, default=None, metavar="K", help="class for conditional models")
    parser.add_argument("--thumb", type=int, default=96, help="thumbnail size in the grid (default 96)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    return parser


def run(args: argparse.Namespace) -> int:
    import warnings

    from latentstudio.cli import CliError
    from latentstudio.engine.directions import DirectionSet, DirectionSetError, DirectionSetWarning
    from latentstudio.io import load_model

    G = load_model(args.model, device=args.device)
    if G.c_dim and args.class_index is None:
        raise CliError(f"{args.model} is conditional ({G.c_dim} classes): pass --class K")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DirectionSetWarning)
        try:
            dset = DirectionSet.load(args.directions, expect_w_dim=G.w_dim, expect_fingerprint=G.info.fingerprint)
        except DirectionSetError as error:
            raise CliError(str(error)) from None
    for warning in caught:
        print(f"warning: {warning.message}")
    factors = read_factors(Path(args.factors), G.w_dim) if args.factors else None
    outdir = Path(args.outdir)
    written = write_report(G, dset.subset(range(min(len(dset), max(1, args.max_directions)))), outdir, seeds=args.seeds,
                           grid_seed=args.grid_seed, strength=args.strength, ppl_samples=args.ppl_samples,
                           class_index=args.class_index if G.c_dim else None, thumb=args.thumb, factors=factors)
    for path in written:
        print(f"wrote {path}")
    return 0


def read_factors(path: Path, w_dim: int):
    """``(latents, factors, names)`` from an .npz, refusing anything malformed."""
    import numpy as np

    from latentstudio.cli import CliError

    from latentstudio.untrusted import MAX_TABLE_BYTES, prefixed, read_npz

    data = read_npz(path, MAX_TABLE_BYTES, prefixed(CliError), "factors (.npz) file")
    try:
        latents = np.asarray(data["latents"], dtype=np.float64)
        factors = np.asarray(data["factors"], dtype=np.float64)
        names = [str(name) for name in data["factor_names"]] if "factor_names" in data else None
    except (KeyError, ValueError, TypeError) as error:
        raise CliError(f"{path}: expected an .npz with 'latents' and 'factors' arrays ({error})") from None
    if latents.ndim == 3:
        latents = latents[:, 0]
    factors = factors.reshape(len(factors), -1)
    if latents.ndim != 2 or latents.shape[1] != w_dim or len(latents) != len(factors):
        raise CliError(f"{path}: latents must be [N, {w_dim}] with N factor rows, got {latents.shape} and {factors.shape}")
    return latents, factors, names


def write_report(
    G,
    dset,
    outdir: Path,
    seeds=(0, 1, 2, 3),
    grid_seed: int = 0,
    strength: float = 3.0,
    ppl_samples: int = 64,
    class_index: int | None = None,
    thumb: int = 96,
    factors=None,
) -> list[Path]:
    """Compute the analyses and write the figures and ``report.json`` into ``outdir``."""
    import numpy as np
    from tqdm import tqdm

    from latentstudio.engine import analysis, figures
    from latentstudio.engine.directions import display_name
    from latentstudio.engine.recipe import EditRecipe
    from latentstudio.engine.renderer import Renderer

    outdir.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(G)
    info = G.info
    labels = [display_name(name) for name in dset.names]
    written: list[Path] = []
    report: dict = {
        "model": {"path": info.path, "fingerprint": info.fingerprint, "kind": info.kind, "resolution": info.resolution,
                  "num_ws": info.num_ws, "w_dim": info.w_dim},
        "directions": {"method": dset.method, "fingerprint": dset.fingerprint, "names": dset.names,
                       "sigmas": np.round(dset.sigmas, 5).tolist(), "layer_ranges": dset.layer_ranges, "stats": dset.stats},
    }

    if dset.explained_variance is not None:
        share = dset.explained_variance.astype(float)
        report["directions"]["explained_variance"] = np.round(share, 6).tolist()
        chart = figures.bar_chart(100 * share, [str(k) for k in range(len(dset))],
                                  title=f"Variance of sampled W along each {dset.method} direction",
                                  xlabel="direction index", ylabel="share of W variance (%)", cumulative=dset.method == "pca")
        written.append(_save(chart, outdir / "explained_variance.png"))

    with tqdm(total=len(dset), desc="layer sensitivity", unit="dir") as bar:
        sensitivity = analysis.layer_sensitivity(renderer, dset, seeds=seeds, strength=strength, class_index=class_index,
                                                 progress=lambda done, total: bar.update(done - bar.n))
    report["layer_sensitivity"] = sensitivity.to_dict()
    layer_labels = [f"{index}\n{res}px" for index, res in enumerate(info.layer_resolutions)]
    for measure, values, file_name in (("pixel", sensitivity.pixel, "layer_sensitivity.png"),
                                       ("edge", sensitivity.edge, "layer_sensitivity_edges.png")):
        what = "pixels" if measure == "pixel" else "edge magnitude"
        figure = figures.heatmap(values, labels, layer_labels,
                                 title=f"Where each direction acts: |change of {what}|, ±{strength:g} sigma on one layer",
                                 xlabel="ws layer (index, resolution)", ylabel="direction",
                                 colorbar_label=f"mean |change| ({'0-255' if measure == 'pixel' else 'edge'})")
        written.append(_save(figure, outdir / file_name))

    steps = np.linspace(-strength, strength, 7)
    base = EditRecipe(seed=grid_seed, class_index=class_index)
    rows = []
    for k in range(len(dset)):
        frames = renderer.render_many([base.replace(edits=(dset.edit(k, float(s)),)) for s in steps])
        rows.append([frame.raw for frame in frames])
    grid = figures.labelled_grid(rows, [f"{labels[k]} {_range_text(dset.layer_ranges[k])}" for k in range(len(dset))],
                                 [f"{s:+g} sigma" if s else "0 (seed)" for s in steps], title=f"Seed {grid_seed} moved along each direction (layer range in brackets)",
                                 thumb=thumb)
    written.append(_save(grid, outdir / "directions_grid.png"))

    if ppl_samples > 0:
        with tqdm(total=ppl_samples, desc="path length", unit="path") as bar:
            ppl = analysis.perceptual_path_length(G, n=ppl_samples, class_index=class_index,
                                                  progress=lambda done, total: bar.update(done - bar.n))
        report["perceptual_path_length"] = ppl.to_dict()

    if factors is not None:
        latents, values, names = factors
        result = analysis.disentanglement_report(latents, values, dset, factor_names=names)
        report["disentanglement"] = result.to_dict()
        figure = figures.heatmap(np.abs(result.correlation), labels, result.factor_names,
                                 title=f"|correlation| of direction projections with factors (MIG {result.mig:.3f})",
                                 xlabel="factor", ylabel="direction", colorbar_label="|Pearson r|")
        written.append(_save(figure, outdir / "disentanglement.png"))

    report_path = outdir / "report.json"
    report_path.write_text(json.dumps(report, indent=2, default=_jsonable))
    written.append(report_path)
    return written


def _range_text(layer_range: tuple[int, int]) -> str:
    first, last = layer_range
    return f"[{first}-{'end' if last == -1 else last}]"


def _save(image, path: Path) -> Path:
    image.save(path, format="PNG")
    return path


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
