"""Fréchet distance between Gaussian fits of features (FID with any feature network).

``FrechetDistance(feature=net)`` embeds real and generated images with ``net`` (an ``nn.Module`` mapping
[B, 3, H, W] images in [-1, 1] to [B, F]) and reports

    ||mu_r - mu_f||^2 + tr(C_r) + tr(C_f) - 2 tr((C_r^1/2 C_f C_r^1/2)^1/2),

the Fréchet distance of the two Gaussian fits (Heusel et al. 2017). With Inception-v3 pool features this is the
usual FID; here the network is whatever the caller has (e.g. the MobileFaceNet identity embedder), so values are
comparable only between runs that use the same network -- name the logged value after it.

States are feature sums, outer-product sums and counts in float64 with ``dist_reduce_fx="sum"``, so the metric is
exact under DDP and memory does not grow with the number of images. The matrix square root uses symmetric
eigendecompositions (``C_r^1/2`` via ``eigh``, then the eigenvalues of the symmetric PSD product), which is
stable where ``scipy.linalg.sqrtm`` of the non-symmetric product can return complex noise.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import Metric


def gaussian_statistics(total: torch.Tensor, outer: torch.Tensor, count: torch.Tensor):
    """Mean and unbiased covariance from a feature sum [F], an outer-product sum [F, F] and a count."""
    mean = total / count
    covariance = (outer - count * torch.outer(mean, mean)) / (count - 1)
    return mean, covariance


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor, cov2: torch.Tensor) -> torch.Tensor:
    """Fréchet distance between N(mean1, cov1) and N(mean2, cov2) (float64)."""
    mean1, cov1, mean2, cov2 = (t.double() for t in (mean1, cov1, mean2, cov2))
    root1 = _psd_sqrt(cov1)
    product = root1 @ cov2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((product + product.T) / 2).clamp_min(0).sqrt().sum()
    return (mean1 - mean2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * trace_sqrt


class FrechetDistance(Metric):
    """FID-style metric over the features of ``feature`` (see the module docstring).

    Args:
        feature: frozen network mapping images to [B, F]; ``None`` means ``update`` receives features directly.
        num_features: F; read from ``feature.embedding_dim`` when not given.

    ``update(x, real=True|False)`` adds a batch of real or generated images (or features). ``compute()`` needs at
    least two samples of each kind and returns a float32 scalar. ``reset_real_features=False`` keeps the real
    statistics across :meth:`reset` (a fixed real set evaluated once).
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, feature: nn.Module | None = None, num_features: int | None = None,
                 reset_real_features: bool = True, **kwargs):
        super().__init__(**kwargs)
        if num_features is None:
            num_features = getattr(feature, "embedding_dim", None)
        if num_features is None:
            raise ValueError("FrechetDistance needs num_features (or a feature network with embedding_dim)")
        self.feature = feature
        if feature is not None:
            feature.requires_grad_(False).eval()
        self.num_features = int(num_features)
        self.reset_real_features = reset_real_features
        for kind in ("real", "fake"):
            self.add_state(f"{kind}_sum", torch.zeros(self.num_features, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{kind}_outer", torch.zeros(self.num_features, self.num_features, dtype=torch.float64),
                           dist_reduce_fx="sum")
            self.add_state(f"{kind}_count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Features [B, F] of a batch (the input itself when there is no feature network)."""
        if self.feature is None:
            return x
        self.feature.eval()
        return self.feature(x)

    def update(self, x: torch.Tensor, real: bool) -> None:
        with torch.no_grad():
            features = self.features(x).detach().double().reshape(x.shape[0], -1)
        if features.shape[1] != self.num_features:
            raise ValueError(f"FrechetDistance: features have {features.shape[1]} dims, expected {self.num_features}")
        if not torch.isfinite(features).all():
            raise ValueError("FrechetDistance: non-finite features")
        kind = "real" if real else "fake"
        setattr(self, f"{kind}_sum", getattr(self, f"{kind}_sum") + features.sum(0))
        setattr(self, f"{kind}_outer", getattr(self, f"{kind}_outer") + features.T @ features)
        setattr(self, f"{kind}_count", getattr(self, f"{kind}_count") + features.shape[0])

    def compute(self) -> torch.Tensor:
        if self.real_count < 2 or self.fake_count < 2:
            raise RuntimeError(f"FrechetDistance needs >= 2 real and fake samples (have {int(self.real_count)} real, "
                               f"{int(self.fake_count)} fake)")
        mean_r, cov_r = gaussian_statistics(self.real_sum, self.real_outer, self.real_count)
        mean_f, cov_f = gaussian_statistics(self.fake_sum, self.fake_outer, self.fake_count)
        return frechet_distance(mean_r, cov_r, mean_f, cov_f).float()

    def reset(self) -> None:
        if self.reset_real_features:
            super().reset()
            return
        kept = (self.real_sum.clone(), self.real_outer.clone(), self.real_count.clone())
        super().reset()
        self.real_sum, self.real_outer, self.real_count = kept
