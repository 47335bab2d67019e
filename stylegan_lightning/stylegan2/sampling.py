"""Sampling images from a generator, timed (the backbone demo and benchmark use it), and truncation sweeps."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..utils import Timer
from .frozen import FrozenGenerator


@dataclass
class SampleResult:
    images: torch.Tensor  # [n, 3, H, W] in [-1, 1], on the CPU
    w: torch.Tensor  # [n, style_dim]
    batch_seconds: list[float]  # wall time of each batch (the first includes warm-up)
    batch_sizes: list[int]

    @property
    def steady_images_per_second(self) -> float:
        """Throughput over the batches after the first (the only batch if there is one)."""
        skip = 1 if len(self.batch_seconds) > 1 else 0
        return sum(self.batch_sizes[skip:]) / max(sum(self.batch_seconds[skip:]), 1e-12)


@torch.no_grad()
def sample_images(frozen: FrozenGenerator, n: int, truncation: float = 1.0, seed: int = 0, batch_size: int = 8,
                  noise: str = "const") -> SampleResult:
    """``n`` images from z ~ N(0, I) drawn with ``seed`` (the same seed gives the same images on any device)."""
    z = torch.randn(n, frozen.style_dim, generator=torch.Generator().manual_seed(seed))
    images, ws, seconds = [], [], []
    for start in range(0, n, batch_size):
        batch = z[start: start + batch_size].to(frozen.latent_avg)
        with Timer(frozen.device) as timer:
            w = frozen.truncate(frozen.mapping(batch), truncation)
            images.append(frozen(w, noise=noise).cpu())
        ws.append(w.cpu())
        seconds.append(timer.seconds)
    return SampleResult(torch.cat(images), torch.cat(ws), seconds, [len(b) for b in ws])


@torch.no_grad()
def truncation_sweep(frozen: FrozenGenerator, n: int, truncations: list[float], seed: int = 0,
                     noise: str = "const") -> torch.Tensor:
    """Images [n * T, 3, H, W] (on the CPU) of the first ``n`` latents that :func:`sample_images` draws with
    ``seed``, each at every truncation ψ of ``truncations`` (row-major: one row per latent, one column per ψ;
    w = w_avg + ψ (w - w_avg), so ψ = 0 is the average face and ψ = 1 the untruncated sample)."""
    w = frozen.sample_w(n, generator=torch.Generator().manual_seed(seed))  # sample_images' first n latents
    rows = torch.stack([frozen.truncate(w, psi) for psi in truncations], 1)  # [n, T, D]
    return torch.cat([frozen(row, noise=noise).cpu() for row in rows])
