"""Identity loss: 1 - cosine similarity of face embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class IdentityLoss(nn.Module):
    """``1 - cos(E(prediction), E(target))`` averaged over the batch, with ``E`` an identity encoder
    (:class:`stylegan_lightning.nets.identity.IdentityEncoder`: images in [-1, 1] -> embeddings). The target's
    embedding carries no gradient."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        if not getattr(encoder, "differentiable", True):
            raise ValueError("the identity loss needs a differentiable identity encoder (not the ONNX backend)")
        self.encoder = encoder

    @classmethod
    def pretrained(cls, backend: str = "arcface", path: str | None = None) -> "IdentityLoss":
        from ..nets.identity import build_identity_encoder

        return cls(build_identity_encoder(backend, path))

    def similarity(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image cosine similarity [B]."""
        with torch.no_grad():
            target_embedding = self.encoder(target)
        return F.cosine_similarity(self.encoder(prediction), target_embedding, dim=1)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (1 - self.similarity(prediction, target)).mean()
