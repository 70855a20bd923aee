"""``latentstudio project MODEL PHOTO [PHOTO ...]``: photos into latents the editor can edit.

For each photo, ``DIR/<photo stem>/`` gets ``target.png`` (the aligned crop), ``projected.png``
(the reconstruction, with its recipe embedded: drop it on the editor to edit the photo),
``projected_w.npz`` (NVlabs' layout: ``w`` float32 ``[1, num_ws, w_dim]``) and
``report.json``. A photo that cannot be read is reported in one line and the others go on.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("project", help="project photos into the model's latent space (GAN inversion)",
                                   description="Find the latents whose images match photos; the results open in the editor ready to edit.")
    parser.add_argument("model", help="model file")
    parser.add_argument("photos", nargs="+", metavar="PHOTO", help="photos (JPEG, PNG, WebP, TIFF, BMP, GIF)")
    parser.add_argument("--outdir", required=True, help="output folder; each photo gets DIR/<photo stem>/")
    parser.add_argument("--space", choices=("w", "w+", "w-then-w+"), default="w-then-w+",
                        help="w: one latent for all layers (NVlabs); w+: one per layer; w-then-w+: w for half the steps, then per layer "
                             "(default: the closest of the three, measured)")
    parser.add_argument("--steps", type=_non_negative, default=500, help="optimisation steps (default 500)")
    parser.add_argument("--loss", choices=("auto", "lpips", "discriminator", "pixel"), default="auto",
                        help="auto: LPIPS if VGG16 weights are on this machine, else the model's discriminator if the file has one, else pixels")
    parser.add_argument("--vgg16", metavar="PATH", default=None, help="torchvision's vgg16-397923af.pth for --loss lpips (never downloaded)")
    parser.add_argument("--no-align", action="store_true", help="use the centred square instead of FFHQ face alignment")
    parser.add_argument("--optimize-noise", action="store_true",
                        help="also fit the noise buffers (NVlabs); the recipe still renders the model's own noise, so projected.png does not use them")
    parser.add_argument("--lr", type=float, default=None, help="base learning rate (default: per space)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the w noise and w statistics (default 0)")
    parser.add_argument("--class", dest="class_index", type=int, default=None, metavar="K", help="class for conditional models (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cuda if available)")
    return parser


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from latentstudio.cli import CliError
    from latentstudio.engine.export import save_png
    from latentstudio.engine.face_align import align_portrait
    from latentstudio.engine.photo import PhotoError, read_photo
    from latentstudio.engine.projected_w import save_projected_w
    from latentstudio.engine.projection import project
    from latentstudio.engine.projection_losses import LossUnavailable, choose_loss
    from latentstudio.io import load_model, load_networks

    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    G = load_model(args.model, device=args.device)
    if G.c_dim and args.class_index is not None and not 0 <= args.class_index < G.c_dim:
        raise CliError(f"--class {args.class_index} is out of range for a model with {G.c_dim} classes")
    has_d = "D" in G.info.networks
    try:
        choose_loss(args.loss, has_d, args.vgg16)  # an impossible --loss fails before any work
    except LossUnavailable as error:
        raise CliError(str(error)) from None
    D = None
    if has_d and args.loss in ("auto", "discriminator"):
        D = load_networks(args.model, device=next(G.parameters()).device)["D"]

    outdir = Path(args.outdir)
    model_path = str(Path(args.model).resolve())
    failures, used = 0, set()
    for photo in args.photos:
        try:
            image = read_photo(photo)
        except PhotoError as error:
            print(f"latentstudio project: error: {error}", file=sys.stderr)
            failures += 1
            continue
        folder = _unique_folder(outdir, Path(photo).stem, used)
        alignment = align_portrait(image, G.img_resolution, detect=not args.no_align)
        save_png(folder / "target.png", alignment.image)
        with tqdm(total=args.steps, desc=Path(photo).name, unit="step", leave=True) as bar:
            def progress(report, bar=bar) -> None:
                bar.update(report.step - bar.n)
                bar.set_postfix(loss=f"{report.values.get('loss', 0):.4f}", refresh=False)

            result = project(G, alignment.image, space=args.space, steps=args.steps, loss=args.loss, D=D,
                             vgg16=args.vgg16, lr=args.lr, optimize_noise=args.optimize_noise, seed=args.seed,
                             class_index=args.class_index, callback=progress, every=max(1, args.steps // 100))
        recipe = result.recipe()
        save_png(folder / "projected.png", result.image, recipe, model=model_path)
        save_projected_w(folder / "projected_w.npz", result.latent)
        if result.noise_image is not None:
            save_png(folder / "projected_with_fitted_noise.png", result.noise_image)
        report = {"photo": str(Path(photo).resolve()), "model": model_path, **result.report(),
                  "alignment": {"method": alignment.method, "message": alignment.message,
                                "box": {"cx": alignment.box.cx, "cy": alignment.box.cy, "size": alignment.box.size, "angle": alignment.box.angle}},
                  "psnr_refers_to": "projected.png, the image its recipe renders (the model's constant noise)"}
        (folder / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"{photo}: {alignment.message}; {result.space}, {result.loss.name} loss, {result.steps} steps in "
              f"{result.seconds:.1f} s: PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.3f} -> {folder}")
    if failures:
        print(f"latentstudio project: {failures} of {len(args.photos)} photo(s) could not be read", file=sys.stderr)
        return 2
    return 0


def _unique_folder(outdir: Path, stem: str, used: set[str]) -> Path:
    """``outdir/stem``, or ``stem-2``, ``stem-3``... when two photos share a name."""
    name, number = stem or "photo", 1
    while name in used:
        number += 1
        name = f"{stem}-{number}"
    used.add(name)
    folder = outdir / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
