"""Sample a 64x64 face data set from the MIT-licensed DCGAN in ``gan-face-generate==1.1.1``.

    pip install --no-deps gan-face-generate==1.1.1
    python tools/make_faces.py --count 100000 --out data/faces64.zip

The package ships ``weights.tar`` (a torch checkpoint with key ``netG_state_dict``). We read
it with latentstudio's bounded reader into latentstudio's own DCGAN module
(:func:`latentstudio.train.teacher.load_teacher`; the package's code is never imported) and
write an NVlabs-style zip with latentstudio's own writer, so the trainer reads it like any
other data set. ``latentstudio train --teacher gan-face-generate`` draws the same faces on
the fly instead. The DCGAN itself was trained on DigiFace-1M (synthetic faces).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from latentstudio.data.archive import DatasetZipWriter
from latentstudio.data.errors import DatasetError
from latentstudio.train.teacher import load_teacher

Z_DIM = 100


def load_dcgan(device: torch.device) -> torch.nn.Module:
    try:
        return load_teacher("gan-face-generate", device)
    except DatasetError as error:
        raise SystemExit(str(error)) from None


def sample_faces(network: torch.nn.Module, count: int, seed: int, batch: int, device: torch.device):
    """Yield uint8 ``[64, 64, 3]`` faces, deterministic for a seed."""
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, count, batch):
        n = min(batch, count - start)
        z = torch.randn(n, Z_DIM, 1, 1, generator=generator).to(device)
        with torch.inference_mode():
            images = network(z).clamp(-1, 1)
        pixels = ((images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        yield from pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("data/faces64.zip"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    network = load_dcgan(device)
    with DatasetZipWriter(args.out) as writer:
        for face in tqdm(sample_faces(network, args.count, args.seed, args.batch, device), total=args.count, unit="img"):
            writer.add(np.ascontiguousarray(face))
    print(f"wrote {args.count} faces to {args.out}")


if __name__ == "__main__":
    main()
