"""Landmark loss: keep pose, expression and face shape."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LANDMARK_MODES = ("heatmap", "coordinates")


class LandmarkLoss(nn.Module):
    """Distance between landmark predictions of a heatmap network
    (:class:`stylegan_lightning.nets.landmarks.LandmarkNet`: ``heatmaps(images)`` and ``forward(images) ->
    [B, K, 2]`` pixel coordinates).

    - ``heatmap`` (default): mean squared distance between the two heatmap stacks (the target's detached);
    - ``coordinates``: mean Euclidean distance between soft-argmax landmarks, in units of the image width.
    """

    def __init__(self, network: nn.Module, mode: str = "heatmap"):
        super().__init__()
        if mode not in LANDMARK_MODES:
            raise ValueError(f"mode must be one of {LANDMARK_MODES}, got {mode!r}")
        self.network = network
        self.mode = mode

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mode == "heatmap":
            with torch.no_grad():
                target_heatmaps = self.network.heatmaps(target)
            return F.mse_loss(self.network.heatmaps(prediction), target_heatmaps)
        with torch.no_grad():
            target_points = self.network(target)
        return (self.network(prediction) - target_points).norm(dim=-1).mean() / prediction.shape[-1]
