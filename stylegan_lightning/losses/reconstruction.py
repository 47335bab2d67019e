"""Pixel reconstruction loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.images import resize_images


class L2Loss(nn.Module):
    """Mean squared error between images (pSp's ``loss_l2``); optionally at a fixed ``resolution``."""

    def __init__(self, resolution: int | None = None):
        super().__init__()
        self.resolution = resolution

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.resolution is not None:
            prediction, target = resize_images(prediction, self.resolution), resize_images(target, self.resolution)
        return F.mse_loss(prediction, target)

