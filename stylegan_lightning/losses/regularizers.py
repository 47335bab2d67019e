"""Latent-code regularisers of the encoders."""

from __future__ import annotations

import torch


def w_norm(latent: torch.Tensor, latent_avg: torch.Tensor | None = None) -> torch.Tensor:
    """pSp's W-norm loss: ``sum_b ||w_b - w_avg||_F / B`` over a W+ batch [B, n, D] (or W [B, D])."""
    if latent_avg is not None:
        latent = latent - latent_avg
    return latent.flatten(1).norm(2, dim=1).sum() / latent.shape[0]


def delta_regularizer(w_plus: torch.Tensor, upto: int | None = None) -> torch.Tensor:
    """e4e's delta regulariser: ``sum_{i=1..upto} mean_b ||w_i - w_0||_2`` over a W+ batch [B, n, D]
    (``upto`` = the progressive stage; all styles by default)."""
    if w_plus.ndim != 3:
        raise ValueError(f"expected a W+ batch [B, n, D], got {tuple(w_plus.shape)}")
    upto = w_plus.shape[1] - 1 if upto is None else min(upto, w_plus.shape[1] - 1)
    deltas = w_plus[:, 1: upto + 1] - w_plus[:, :1]
    return deltas.norm(2, dim=2).mean(0).sum()
