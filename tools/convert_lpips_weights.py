"""Rebuild ``latentstudio/engine/weights/lpips_vgg_lin_v0.1.safetensors`` from the lpips wheel.

The five 1x1 linear layers of LPIPS-VGG (v0.1, 7 KB) are BSD-2-Clause (Zhang et al. 2018;
notice in ``latentstudio/engine/weights/LICENSE-lpips.txt``). The VGG16 backbone is not
included anywhere: LPIPS runs only where its torchvision weights already are.

    pip download --no-deps lpips==0.1.4 -d /tmp/lpips && unzip -o /tmp/lpips/*.whl -d /tmp/lpips
    python tools/convert_lpips_weights.py /tmp/lpips/lpips/weights/v0.1/vgg.pth
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

TARGET = Path(__file__).resolve().parents[1] / "latentstudio/engine/weights/lpips_vgg_lin_v0.1.safetensors"


def main(source: str) -> None:
    state = torch.load(source, map_location="cpu", weights_only=True)
    weights = {f"lin{i}": state[f"lin{i}.model.1.weight"].reshape(-1).to(torch.float32).contiguous() for i in range(5)}
    save_file(weights, str(TARGET), metadata={"source": "lpips 0.1.4 weights/v0.1/vgg.pth", "licence": "BSD-2-Clause"})
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main(sys.argv[1])
