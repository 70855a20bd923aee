"""Compare generators against held-out teacher samples: precision / recall and the same grid for each.

    python tools/compare_models.py --teacher gan-face-generate --out compare/ \
        A=runs/A/network-snapshot-000800.safetensors B=runs/B/network-snapshot-000800.safetensors

For every ``NAME=MODEL`` prints a table row (precision and recall, k = 3, ``--samples``
generated images at psi 1 vs as many held-out teacher images, in the pixel-PCA space of
:mod:`latentstudio.engine.quality` fitted on the teacher's images) and writes
``OUT/NAME.png``: an 8x8 grid of the same 64 seeds at psi 0.7. The first row, ``teacher``, is
the ceiling: a second held-out teacher set against the reference set, so a model's numbers
can be read against what the teacher itself scores. ``OUT/quality.json`` holds everything,
and ``OUT/comparison.png`` shows the first 8 images of every grid, one row per model.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from latentstudio.engine import figures
from latentstudio.engine.export import make_grid, save_png
from latentstudio.engine.quality import PixelPCAFeatures, precision_recall, sample_generator
from latentstudio.io import load_model
from latentstudio.io.loader import read_model_file
from latentstudio.train.teacher import REFERENCE_SEED, TeacherData, load_teacher

CEILING_SEED = 2000  # a second held-out teacher stream, scored against the reference one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL",
                        help="a label for the table and a model file to score")
    parser.add_argument("--teacher", default="gan-face-generate",
                        help="the teacher whose held-out samples are the reference")
    parser.add_argument("--samples", type=int, default=10_000,
                        help="images per set for precision / recall (default 10000)")
    parser.add_argument("--out", type=Path, default=Path("compare"),
                        help="folder for the grids, comparison.png and quality.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    teacher = load_teacher(args.teacher)
    reference = TeacherData(teacher, teacher.img_resolution, REFERENCE_SEED).samples(args.samples)
    features = PixelPCAFeatures(reference, dim=64)
    real = features(reference)
    ceiling = TeacherData(teacher, teacher.img_resolution, CEILING_SEED).samples(args.samples)
    rows = {"teacher": {**vars(precision_recall(real, features(ceiling), k=3)), "kimg": None}}
    save_png(args.out / "teacher.png", make_grid(list(ceiling[:64]), 8, padding=2))
    strips = {"teacher (held out)": list(ceiling[:8])}
    print(f"{'model':24s} {'kimg':>7s} {'precision':>9s} {'recall':>7s}")
    print(f"{'teacher (held out)':24s} {'-':>7s} {rows['teacher']['precision']:9.3f} {rows['teacher']['recall']:7.3f}")
    for item in args.models:
        name, _, path = item.partition("=")
        G = load_model(path, device="cpu")
        fakes, _ = sample_generator(G, args.samples, seed=1)
        kimg = read_model_file(path)[1].get("kimg")  # what the trainer recorded
        rows[name] = {**vars(precision_recall(real, features(fakes), k=3)), "kimg": kimg, "model": path}
        grid = list(sample_generator(G, 64, seed=2, psi=0.7)[0])
        save_png(args.out / f"{name}.png", make_grid(grid, 8, padding=2))
        strips[f"{name}: P {rows[name]['precision']:.2f} R {rows[name]['recall']:.3f}"] = grid[:8]
        kimg_text = f"{kimg:7.1f}" if isinstance(kimg, (int, float)) else f"{'?':>7s}"
        print(f"{name:24s} {kimg_text} {rows[name]['precision']:9.3f} {rows[name]['recall']:7.3f}")
    (args.out / "quality.json").write_text(json.dumps(rows, indent=2))
    figures.labelled_grid(list(strips.values()), list(strips), [""] * 8,
                          "the same 8 latents for every model (psi 0.7); P / R: precision / recall against held-out teacher images",
                          thumb=64
                          ).save(args.out / "comparison.png")


if __name__ == "__main__":
    main()
