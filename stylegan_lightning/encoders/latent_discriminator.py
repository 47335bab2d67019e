"""e4e's latent-code discriminator and the history pools it trains with."""

from __future__ import annotations

import torch
from torch import nn


class LatentCodesDiscriminator(nn.Module):
    """MLP judging whether a style vector w comes from the mapping network (real) or the encoder (fake):
    ``n_mlp - 1`` x [Linear(D, D) + LeakyReLU(0.2)] then Linear(D, 1) (e4e's ``LatentCodesDiscriminator``)."""

    def __init__(self, style_dim: int = 512, n_mlp: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_mlp - 1):
            layers += [nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(style_dim, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.mlp(w)


class LatentPool(nn.Module):
    """A history of past latents (e4e's ``LatentCodesPool``, after the image pool of CycleGAN): ``query(w)``
    returns a batch where each row is, with probability 1/2 once the pool is full, a stored latent (which is
    replaced by the new one) and otherwise the new latent. The pool is a buffer, so it is checkpointed and
    resumes exactly; randomness comes from ``torch``'s global generator (seeded by Lightning)."""

    def __init__(self, size: int = 50, style_dim: int = 512):
        super().__init__()
        self.size = size
        self.register_buffer("latents", torch.zeros(size, style_dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, w: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return w
        out = []
        for row in w.detach():
            if int(self.count) < self.size:
                self.latents[int(self.count)] = row
                self.count += 1
                out.append(row)
            elif torch.rand(()) < 0.5:
                index = int(torch.randint(self.size, ()))
                out.append(self.latents[index].clone())
                self.latents[index] = row
            else:
                out.append(row)
        return torch.stack(out)
