"""``latentstudio directions MODEL --method pca|sefa|svm ... --out dirs.npz``: find directions in W."""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from latentstudio.cli.arguments import layer_range

METHODS = ("pca", "sefa", "svm", "logistic", "linear")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "directions",
        help="find editing directions in W (PCA, SeFa, or supervised from labels) and save them as .npz",
        description=(
            "pca: principal axes of sampled W (GANSpace). sefa: closed-form factorisation of the style "
            "weights of --layers. svm / logistic: normal of a classifier fitted on labelled seeds or "
            "latents (InterFaceGAN); linear: ridge regression on scores. Slider units (sigmas) are "
            "measured on --samples sampled W."
        ),
    )
    parser.add_argument("model", help="model file")
    parser.add_argument("--method", choices=METHODS, default="pca", help="how to find directions (default pca)")
    parser.add_argument("--num", type=int, default=20, help="number of directions for pca / sefa (default 20)")
    parser.add_argument("--samples", type=int, default=None,
                        help="sampled W for PCA / for the sigma calibration (default 100000 for pca, 10000 otherwise)")
    parser.add_argument("--layers", type=layer_range, default=None, metavar="FIRST-LAST",
                        help="layer range: the edits' default range; for sefa also the layers factorised (default all)")
    parser.add_argument("--labels", default=None, metavar="FILE",
                        help="for svm / logistic / linear: a CSV of 'seed,label' rows, or an .npz with 'latents' [N, w_dim] and 'labels' [N]")
    parser.add_argument("--name", default=None, help="name of a supervised direction (default: the labels file's name)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled W (default 0)")
    parser.add_argument("--solver", choices=("covariance_eigh", "randomized", "full"), default="covariance_eigh",
                        help="scikit-learn PCA solver (default covariance_eigh: exact and fastest for many samples)")
    parser.add_argument("--class", dest="class_index", type=int, default=None, metavar="K",
                        help="class for conditional models (default: random classes when sampling)")
    parser.add_argument("--batch-size", type=int, default=2048, help="mapping batch size (default 2048)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--out", default="directions.npz", help="output .npz (default directions.npz)")
    return parser


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from latentstudio.cli import CliError
    from latentstudio.engine import directions
    from latentstudio.io import load_model

    if args.num < 1:
        raise CliError("--num must be at least 1")
    G = load_model(args.model, device=args.device)
    samples = args.samples or (100_000 if args.method == "pca" else 10_000)
    if samples < 2:
        raise CliError("--samples must be at least 2")
    layers = args.layers or (0, -1)
    if layers[1] != -1 and layers[1] >= G.num_ws:
        raise CliError(f"--layers {layers[0]}-{layers[1]} is outside this model's layers 0-{G.num_ws - 1}")
    if args.method in ("pca", "sefa") and args.labels:
        raise CliError(f"--labels is for supervised methods, not {args.method}")

    with tqdm(total=samples, desc="sampling W", unit="w", unit_scale=True) as bar:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            if args.method == "pca":
                dset = directions.pca_directions(G, num=args.num, samples=samples, seed=args.seed, batch_size=args.batch_size,
                                                 solver=args.solver, layer_range=layers, class_index=args.class_index, progress=progress)
            elif args.method == "sefa":
                dset = directions.sefa_directions(G, num=args.num, layers=layers, samples=samples, seed=args.seed, progress=progress)
            else:
                if not args.labels:
                    raise CliError(f"--method {args.method} needs --labels FILE")
                latents, targets = read_labels(Path(args.labels), G, args.class_index)
                vector, stats = directions.supervised_direction(latents, targets, method=args.method)
                name = args.name or Path(args.labels).stem
                dset = directions.direction_set_from_vectors(G, vector[None], [name], args.method, [layers], samples=samples,
                                                             seed=args.seed, progress=progress, stats={**stats, "labelled": len(targets)})
        except ValueError as error:
            raise CliError(str(error)) from None
    path = dset.save(args.out)
    print(f"wrote {len(dset)} {dset.method} direction(s) to {path}")
    for k in range(min(len(dset), 10)):
        print(f"  {dset.names[k]:<12} sigma {dset.sigmas[k]:.4g}  variance share {dset.explained_variance[k]:.2%}")
    return 0


def read_labels(path: Path, G, class_index: int | None):
    """Latents ``[N, w_dim]`` and labels ``[N]`` from a CSV of seeds or an .npz of latents."""
    import numpy as np
    import torch

    from latentstudio.cli import CliError
    from latentstudio.engine.recipe import RecipeError, map_seed
    from latentstudio.untrusted import MAX_TABLE_BYTES, prefixed, read_npz, read_regular_file

    if path.suffix == ".npz":
        data = read_npz(path, MAX_TABLE_BYTES, prefixed(CliError), "labels (.npz) file")
        try:
            latents, labels = np.asarray(data["latents"], dtype=np.float32), np.asarray(data["labels"], dtype=np.float64)
        except (KeyError, ValueError, TypeError) as error:
            raise CliError(f"{path}: expected an .npz with 'latents' and 'labels' arrays ({error})") from None
        if latents.ndim == 3:  # [N, num_ws, w_dim]: W is the same on every layer for sampled latents
            latents = latents[:, 0]
        if latents.ndim != 2 or latents.shape[1] != G.w_dim or len(latents) != len(labels):
            raise CliError(f"{path}: latents must be [N, {G.w_dim}] with N labels, got {latents.shape} and {labels.shape}")
        return latents, labels
    seeds, labels = [], []
    text = read_regular_file(path, MAX_TABLE_BYTES, prefixed(CliError), "labels (.csv) file").decode("utf-8", "replace")
    for number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not row or row[0].strip().startswith("#"):
            continue
        try:
            seeds.append(int(row[0]))
            labels.append(float(row[1]))
        except (ValueError, IndexError):
            if number == 1:
                continue  # a header line
            raise CliError(f"{path}:{number}: expected 'seed,label', found {','.join(row)[:80]!r}") from None
    if not seeds:
        raise CliError(f"{path}: no 'seed,label' rows")
    device = G.mapping.w_avg.device
    try:
        with torch.inference_mode():
            latents = np.stack([map_seed(G, seed, class_index, device)[0, 0].cpu().numpy() for seed in seeds])
    except RecipeError as error:
        raise CliError(str(error)) from None
    return latents, np.asarray(labels)
