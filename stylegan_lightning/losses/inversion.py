"""The image losses of the inversion methods (pSp / e4e / HyperStyle / GradStyle): weighted L2, LPIPS and identity."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..utils.images import resize_images
from .identity import IdentityLoss
from .perceptual import LPIPSLoss
from .reconstruction import L2Loss


class InversionLosses(nn.Module):
    """``{"l2": l2_lambda * MSE, "lpips": lpips_lambda * LPIPS, "id": id_lambda * (1 - cos_id)}`` of a
    reconstruction against its target (resized to the target's size first); LPIPS and identity only when their
    weights are non-zero, built from the pretrained files in ``weights`` (a missing file is an error then).

    Args:
        l2_lambda, lpips_lambda, id_lambda: the weights.
        lpips_net, id_backend: the LPIPS backbone and the identity network.
        weights: explicit paths of pretrained files by registry key.
        l2_resolution: compare at this size for L2 (``None``: as given).
        lpips_resolution: compare at this size for LPIPS (``None``: as given).
    """

    def __init__(self, l2_lambda: float = 1.0, lpips_lambda: float = 0.0, id_lambda: float = 0.0,
                 lpips_net: str = "alex", id_backend: str = "arcface", weights: Mapping[str, str] | None = None,
                 l2_resolution: int | None = None, lpips_resolution: int | None = 256):
        super().__init__()
        from ..nets.identity import identity_weight_key
        from ..nets.perceptual import lpips_backbone_key

        weights = dict(weights or {})
        self.weights = {"l2": float(l2_lambda), "lpips": float(lpips_lambda), "id": float(id_lambda)}
        self.l2 = L2Loss(l2_resolution)
        self.lpips = (LPIPSLoss.pretrained(lpips_net, weights.get(lpips_backbone_key(lpips_net)), lpips_resolution)
                      if lpips_lambda > 0 else None)
        self.identity = (IdentityLoss.pretrained(id_backend, weights.get(identity_weight_key(id_backend) or ""))
                         if id_lambda > 0 else None)

    def networks(self) -> dict[str, nn.Module | None]:
        """The frozen networks of the losses (``lpips`` / ``identity``, ``None`` when off), for the evaluation
        metrics to share (``build_metric_networks(..., given)``)."""
        return {"lpips": self.lpips.network if self.lpips is not None else None,
                "identity": self.identity.encoder if self.identity is not None else None}

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        if reconstruction.shape[-1] != target.shape[-1]:
            reconstruction = resize_images(reconstruction, target.shape[-1])
        losses = {"l2": self.l2(reconstruction, target) * self.weights["l2"]}
        if self.lpips is not None:
            losses["lpips"] = self.lpips(reconstruction, target) * self.weights["lpips"]
        if self.identity is not None:
            losses["id"] = self.identity(reconstruction, target) * self.weights["id"]
        return losses


__all__ = ["InversionLosses"]
