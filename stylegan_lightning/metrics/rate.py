"""Rate: bits per pixel, from real bitstream byte counts or from entropy-model likelihoods."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from .base import MeanOverImages


def _per_image(value, batch: int | None = None) -> torch.Tensor:
    value = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if batch is not None and value.numel() == 1 and batch > 1:
        value = value.expand(batch)
    return value


class BitsPerPixel(MeanOverImages):
    """Mean over images of ``8 * bytes / pixels``: the rate a file on disk really costs.

    ``update(num_bytes, num_pixels)``: ``num_bytes`` per image (int, list or tensor [B]); ``num_pixels`` per image
    (H * W of the *original* image; an int applies to every image).
    """

    higher_is_better = False

    def update(self, num_bytes, num_pixels) -> None:  # type: ignore[override]
        num_bytes = _per_image(num_bytes)
        num_pixels = _per_image(num_pixels, num_bytes.numel())
        if num_pixels.shape != num_bytes.shape or (num_pixels <= 0).any() or (num_bytes < 0).any():
            raise ValueError("BitsPerPixel: need one non-negative byte count and one positive pixel count per image")
        self.add_values(8 * num_bytes / num_pixels)


class LikelihoodBitsPerPixel(MeanOverImages):
    """Mean over images of ``sum(-log2 p) / pixels`` over every likelihood tensor of an entropy model: the rate
    the model estimates (the bitstream adds coder overhead on top).

    ``update(likelihoods, num_pixels)``: ``likelihoods`` a tensor [B, ...] or a list / dict of them.
    """

    higher_is_better = False

    def update(self, likelihoods: torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
               num_pixels) -> None:  # type: ignore[override]
        if isinstance(likelihoods, Mapping):
            likelihoods = list(likelihoods.values())
        elif isinstance(likelihoods, torch.Tensor):
            likelihoods = [likelihoods]
        bits = sum(-torch.log(p.detach().double()).flatten(1).sum(1) / math.log(2) for p in likelihoods)
        self.add_values(bits / _per_image(num_pixels, bits.numel()).to(bits.device))
