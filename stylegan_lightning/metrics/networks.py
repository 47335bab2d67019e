"""Metrics computed with frozen networks: LPIPS, DISTS, identity similarity."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .base import MeanOverImages


class _NetworkDistance(MeanOverImages):
    def __init__(self, network: nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.network = network

    def per_image(self, preds, target):
        return self.network(preds, target).reshape(-1)


class LPIPS(_NetworkDistance):
    """Mean LPIPS distance (``network`` = :class:`stylegan_lightning.nets.perceptual.LPIPSNetwork`)."""

    higher_is_better = False


class DISTS(_NetworkDistance):
    """Mean DISTS distance (``network`` = :class:`stylegan_lightning.nets.perceptual.DISTSNetwork`)."""

    higher_is_better = False


class IdentitySimilarity(MeanOverImages):
    """Mean cosine similarity between the identity embeddings of prediction and target
    (``encoder`` = :class:`stylegan_lightning.nets.identity.IdentityEncoder`)."""

    higher_is_better = True

    def __init__(self, encoder: nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder

    def per_image(self, preds, target):
        return F.cosine_similarity(self.encoder(preds), self.encoder(target), dim=1)

