"""``ModelInfo``: what a loaded model is, for the status bar, ``latentstudio info`` and recipes."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# ``ModelInfo.format`` -> what to call it in front of a person.
FORMAT_NAMES = {
    "nvlabs-pickle": "NVlabs network pickle (PyTorch)",
    "nvlabs-tf-stylegan2": "NVlabs TensorFlow pickle (StyleGAN2)",
    "nvlabs-tf-stylegan2-ada": "NVlabs TensorFlow pickle (StyleGAN2-ADA)",
    "rosinality-train": "rosinality checkpoint (train.py)",
    "rosinality-converted": "rosinality checkpoint (convert_weight.py)",
    "native": "latentstudio .safetensors",
}


@dataclass(frozen=True)
class ModelInfo:
    """A description of one loaded generator.

    ``layer_names[i]`` names what ``ws[:, i]`` drives (e.g. ``"8x8 conv0 + 4x4 torgb"``), and
    ``layer_resolutions[i]`` its resolution, so tools can label and group per-layer controls.
    ``fingerprint`` identifies the weights (not the file): it survives ``convert`` and fp16
    storage, so direction sets computed on a pickle still match the converted model.
    """

    path: str
    format: str  # a key of FORMAT_NAMES
    kind: str  # "stylegan2" | "stylegan3"
    config: str  # StyleGAN2: synthesis architecture ("skip", ...); StyleGAN3: "T" or "R"
    resolution: int
    num_ws: int
    z_dim: int
    w_dim: int
    c_dim: int
    img_channels: int
    num_params: int
    fingerprint: str
    layer_names: tuple[str, ...]
    layer_resolutions: tuple[int, ...]
    networks: tuple[str, ...]
    class_names: tuple[str, ...] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        from pathlib import Path

        return Path(self.path).stem

    @property
    def format_name(self) -> str:
        """The file format in words (``rosinality checkpoint (train.py)``)."""
        return FORMAT_NAMES.get(self.format, self.format)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "format_name": self.format_name}
