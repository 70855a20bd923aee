"""Sample quality: precision and recall of generated images against real ones.

The k-nearest-neighbour manifold estimate of Kynkaanniemi et al. (2019): each set's manifold
is the union of balls around its feature vectors, each ball reaching that vector's k-th
nearest neighbour in the same set. Precision is the share of generated samples inside the
real manifold (are the samples realistic?), recall the share of real samples inside the
generated manifold (is the data's variety covered?).

The paper uses VGG-16 features, which would mean downloading weights; latentstudio works
offline, so the default feature space is fixed and documented instead: images scaled to
[0, 1], flattened, projected on the top 64 principal components of the real images
(:class:`PixelPCAFeatures`). Numbers in this space compare models trained on the same data;
they are not comparable with VGG-based numbers in papers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA


class PixelPCAFeatures:
    """Top-``dim`` principal components of real images' pixels, fitted once."""

    def __init__(self, real_images: np.ndarray, dim: int = 64, seed: int = 0):
        self.pca = PCA(n_components=dim, svd_solver="randomized", random_state=seed)
        self.pca.fit(self._flatten(real_images))

    @staticmethod
    def _flatten(images: np.ndarray) -> np.ndarray:
        """uint8 ``[N, H, W, C]`` -> float32 ``[N, H*W*C]`` in [0, 1]."""
        return images.reshape(len(images), -1).astype(np.float32) / 255.0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.pca.transform(self._flatten(images)).astype(np.float32)


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int
    num_real: int
    num_fake: int


def _kth_neighbour_radii(features: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    """Distance from each vector to its k-th nearest neighbour in the same set (self excluded)."""
    radii = torch.empty(len(features))
    for start in range(0, len(features), batch):
        distances = torch.cdist(features[start : start + batch], features)
        radii[start : start + batch] = distances.kthvalue(k + 1, dim=1).values  # k+1: skip self (0)
    return radii


def _inside(queries: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, batch: int) -> torch.Tensor:
    inside = torch.zeros(len(queries), dtype=torch.bool)
    for start in range(0, len(queries), batch):
        distances = torch.cdist(queries[start : start + batch], manifold)
        inside[start : start + batch] = (distances <= radii.unsqueeze(0)).any(dim=1)
    return inside


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, batch: int = 1024) -> PrecisionRecall:
    """Precision and recall of ``fake`` feature vectors against ``real`` ones (``[N, D]`` each)."""
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"need more than k={k} samples in each set (got {len(real)} real, {len(fake)} fake)")
    real_t = torch.from_numpy(np.asarray(real, dtype=np.float32))
    fake_t = torch.from_numpy(np.asarray(fake, dtype=np.float32))
    real_radii = _kth_neighbour_radii(real_t, k, batch)
    fake_radii = _kth_neighbour_radii(fake_t, k, batch)
    precision = _inside(fake_t, real_t, real_radii, batch).float().mean().item()
    recall = _inside(real_t, fake_t, fake_radii, batch).float().mean().item()
    return PrecisionRecall(precision, recall, k, len(real), len(fake))


@torch.inference_mode()
def sample_generator(G: torch.nn.Module, count: int, seed: int, psi: float = 1.0,
                     batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images (uint8 NHWC, constant noise) and their untruncated W ``[count, w_dim]``,
    from z drawn with ``seed``: the generated side of :func:`precision_recall` and of figures."""
    from latentstudio.engine.renderer import to_uint8

    generator = torch.Generator().manual_seed(seed)
    images, latents = [], []
    for start in range(0, count, batch):
        z = torch.randn(min(batch, count - start), G.z_dim, generator=generator)
        ws = G.mapping(z.to(G.mapping.w_avg.device), None)
        images.append(to_uint8(G.synthesis(G.mapping.w_avg.lerp(ws, psi), noise_mode="const")))
        latents.append(ws[:, 0].cpu().numpy())
    return np.concatenate(images), np.concatenate(latents)
