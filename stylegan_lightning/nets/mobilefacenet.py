"""MobileFaceNet (Chen et al. 2018), layout of Xiaoccer/MobileFaceNet_Pytorch ``core/model.py``.

A light identity network: RGB 112x96 (height x width) faces aligned to the SphereFace template, normalised as
``(pixel - 127.5) / 128``, give a 128-d embedding. The released ``068.ckpt`` is ``{'epoch', 'net_state_dict'}``
with keys ``conv1.{conv,bn,prelu}``, ``dw_conv1.*``, ``blocks.N.conv.{0..7}`` (15 inverted-residual units),
``conv2.*``, ``linear7.{conv,bn}`` (7x6 depthwise "global" conv) and ``linear1.{conv,bn}``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .common import load_pretrained

# (expansion t, output channels c, repeats n, first stride s) of the inverted-residual stages
MOBILEFACENET_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


class InvertedResidual(nn.Module):
    """MobileNetV2 unit (``Bottleneck`` in the reference): 1x1 expand, BN, PReLU, 3x3 depthwise (stride), BN, PReLU,
    1x1 project, BN; residual connection when the stride is 1 and the channels are unchanged."""

    def __init__(self, inp: int, oup: int, stride: int, expansion: int):
        super().__init__()
        hidden = inp * expansion
        self.connect = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.PReLU(hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.connect else self.conv(x)


class ConvBlock(nn.Module):
    """Conv (optionally depthwise), BN and, unless ``linear``, PReLU."""

    def __init__(self, inp: int, oup: int, kernel, stride: int, padding: int, dw: bool = False,
                 linear: bool = False):
        super().__init__()
        self.linear = linear
        self.conv = nn.Conv2d(inp, oup, kernel, stride, padding, groups=inp if dw else 1, bias=False)
        self.bn = nn.BatchNorm2d(oup)
        if not linear:
            self.prelu = nn.PReLU(oup)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return x if self.linear else self.prelu(x)


class MobileFaceNet(nn.Module):
    """MobileFaceNet: ``[B, 3, 112, 96]`` normalised RGB faces -> ``[B, 128]`` embeddings (not normalised)."""

    input_size = (112, 96)
    embedding_dim = 128

    def __init__(self, setting: tuple[tuple[int, int, int, int], ...] = MOBILEFACENET_SETTING):
        super().__init__()
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.dw_conv1 = ConvBlock(64, 64, 3, 1, 1, dw=True)
        units, channels = [], 64
        for t, c, n, s in setting:
            for i in range(n):
                units.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
                channels = c
        self.blocks = nn.Sequential(*units)
        self.conv2 = ConvBlock(channels, 512, 1, 1, 0)
        self.linear7 = ConvBlock(512, 512, (7, 6), 1, 0, dw=True, linear=True)
        self.linear1 = ConvBlock(512, 128, 1, 1, 0, linear=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f"MobileFaceNet expects 112x96 (height x width) faces, got {tuple(x.shape[-2:])}")
        x = self.blocks(self.dw_conv1(self.conv1(x)))
        x = self.linear1(self.linear7(self.conv2(x)))
        return x.flatten(1)


def load_mobilefacenet(path: str | Path | None = None) -> MobileFaceNet:
    """MobileFaceNet with the weights ``068.ckpt`` (registry key ``mobilefacenet``; ``{'epoch', 'net_state_dict'}``
    or a raw state dict), loaded strictly, in eval mode."""
    net = MobileFaceNet()
    load_pretrained(net, "mobilefacenet", path, "MobileFaceNet weights")
    return net.eval()


__all__ = ["MOBILEFACENET_SETTING", "ConvBlock", "InvertedResidual", "MobileFaceNet", "load_mobilefacenet"]
