"""Pixel reconstruction loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class L2Loss(nn.Module):
    """Mean squared error between images (pSp's ``loss_l2``); optionally at a fixed ``resolution``."""

    def __init__(self, resolution: int | None = None):
        super().__init__()
        self.resolution = resolution

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.resolution is not None:
            prediction, target = resize(prediction, self.resolution), resize(target, self.resolution)
        return F.mse_loss(prediction, target)


def resize(images: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Area-downsample (or bilinearly upsample) square images to ``resolution``; unchanged when it matches."""
    if resolution is None or images.shape[-1] == resolution:
        return images
    mode = "area" if images.shape[-1] > resolution else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(images, size=(resolution, resolution), mode=mode, **kwargs)
