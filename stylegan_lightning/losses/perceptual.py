"""LPIPS perceptual loss."""

from __future__ import annotations

import torch
from torch import nn

from ..utils.images import resize_images


class LPIPSLoss(nn.Module):
    """Mean LPIPS distance. ``network(x, y) -> [B]`` is an LPIPS network
    (:class:`stylegan_lightning.nets.perceptual.LPIPSNetwork`); images in [-1, 1] are compared at ``resolution``
    (256 in pSp / e4e / HyperStyle) when given."""

    def __init__(self, network: nn.Module, resolution: int | None = 256):
        super().__init__()
        self.network = network
        self.resolution = resolution

    @classmethod
    def pretrained(cls, net: str = "alex", backbone_path: str | None = None, resolution: int | None = 256):
        """LPIPS with the torchvision backbone found through the weights registry."""
        from ..nets.perceptual import LPIPSNetwork

        return cls(LPIPSNetwork(net=net, backbone_path=backbone_path), resolution)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prediction, target = resize_images(prediction, self.resolution), resize_images(target, self.resolution)
        return self.network(prediction, target).mean()
