"""PCA on 100k sampled W of a randomly initialised 8-layer, 512-dim mapping network (CPU).

Prints, separately: sampling W through the mapping network (batched), and the PCA fit with
each scikit-learn solver, as seconds and as a ratio to the default solver. The full SVD is
the exact reference the others are checked against (top-component cosine and variance).

    python benchmarks/pca_100k.py [--samples 100000] [--num 20] [--threads N] [--skip-full]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.decomposition import PCA

from latentstudio.engine.directions import pca_directions, sample_w
from latentstudio.nets.stylegan2 import MappingNetwork


class MappingOnly(torch.nn.Module):
    """Just enough of a generator for the direction finders: NVlabs-default 8x512 mapping."""

    def __init__(self, dim: int = 512, num_ws: int = 18):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = dim, 0, dim, num_ws
        self.mapping = MappingNetwork(dim, 0, dim, num_ws=num_ws, num_layers=8, lr_multiplier=1.0)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--num", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-full", action="store_true", help="skip the slow exact full-SVD solver")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # lr_multiplier 1 gives W a spread like a trained network's; with the default 0.01 and
    # random weights W is nearly constant (timings are the same either way).
    G = MappingOnly().eval()
    print(f"mapping: 8 x 512, {args.samples:,} samples, {args.num} components, torch threads {torch.get_num_threads()}")

    w, sampling = timed(lambda: sample_w(G, args.samples, seed=0))
    print(f"sample W           {sampling:7.2f} s  ({args.samples / sampling:,.0f} w/s)")

    solvers = ["covariance_eigh", "randomized"] + ([] if args.skip_full else ["full"])
    fits = {}
    for solver in solvers:
        pca, seconds = timed(lambda: PCA(n_components=args.num, svd_solver=solver, random_state=0).fit(w))
        fits[solver] = (pca, seconds)
    reference = fits["full" if "full" in fits else "covariance_eigh"][0]
    base = fits["covariance_eigh"][1]
    for solver, (pca, seconds) in fits.items():
        cosine = abs(float(pca.components_[0] @ reference.components_[0]))
        variance_error = float(np.max(np.abs(pca.explained_variance_ratio_ - reference.explained_variance_ratio_)))
        print(f"fit {solver:<15}{seconds:7.2f} s  ({seconds / base:5.1f}x default)  top-component |cos| {cosine:.6f}  "
              f"max variance-ratio error {variance_error:.1e}")

    _, total = timed(lambda: pca_directions(G, num=args.num, samples=args.samples, seed=0))
    print(f"pca_directions end to end (sample + default fit): {total:.2f} s")


if __name__ == "__main__":
    main()
