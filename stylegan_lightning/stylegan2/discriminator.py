"""StyleGAN2 residual discriminator with rosinality's parameter names (``convs.*``, ``final_conv``,
``final_linear``), so ``{"d": ...}`` entries of rosinality training checkpoints load strictly."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn

from .generator import channel_layout
from .layers import DEFAULT_BLUR_KERNEL, ConvLayer, EqualLinear, ResBlock


class Discriminator(nn.Module):
    """StyleGAN2 discriminator: 1x1 FromRGB, residual downsampling blocks to 4x4, minibatch standard deviation,
    3x3 conv, two linear layers -> one logit per image.

    ``channel_max`` caps channel counts and ``channels`` gives an explicit ``{resolution: channels}`` table, as in
    :class:`~stylegan_lightning.stylegan2.Generator`.
    ``forward(x, return_features=True)`` also returns the feature map after each residual block.
    """

    def __init__(
        self,
        size: int,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[int] = DEFAULT_BLUR_KERNEL,
        channel_max: int | None = None,
        stddev_group: int = 4,
        channels: Mapping[int, int] | None = None,
    ):
        super().__init__()
        self.size = size
        self.config = dict(size=size, channel_multiplier=channel_multiplier, blur_kernel=list(blur_kernel),
                           channel_max=channel_max, stddev_group=stddev_group,
                           channels=channel_layout(size, channels=channels) if channels is not None else None)
        channels = channel_layout(size, channel_multiplier, channel_max, channels)
        log_size = int(math.log2(size))
        convs: list[nn.Module] = [ConvLayer(3, channels[size], 1)]
        in_channel = channels[size]
        for i in range(log_size, 2, -1):
            out_channel = channels[2 ** (i - 1)]
            convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.stddev_group = stddev_group
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_channel + 1, channels[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(channels[4] * 4 * 4, channels[4], activation="fused_lrelu"),
            EqualLinear(channels[4], 1),
        )

    def _group_size(self, batch: int) -> int:
        # rosinality uses min(batch, 4) and fails when it does not divide the batch; the largest divisor of the
        # batch up to stddev_group gives the same result wherever rosinality works.
        return max(g for g in range(1, min(batch, self.stddev_group) + 1) if batch % g == 0)

    def minibatch_stddev(self, out: torch.Tensor) -> torch.Tensor:
        """Append the minibatch standard-deviation feature map (groups of ``stddev_group`` samples)."""
        batch, channel, height, width = out.shape
        group = self._group_size(batch)
        stddev = out.view(group, -1, self.stddev_feat, channel // self.stddev_feat, height, width)
        stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8)
        stddev = stddev.mean([2, 3, 4], keepdim=True).squeeze(2)
        stddev = stddev.repeat(group, 1, height, width)
        return torch.cat([out, stddev], 1)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        if x.ndim != 4 or x.shape[1:] != (3, self.size, self.size):
            raise ValueError(f"Discriminator({self.size}) expects [B, 3, {self.size}, {self.size}], got {tuple(x.shape)}")
        features = []
        out = x
        for layer in self.convs:
            out = layer(out)
            features.append(out)
        out = self.final_conv(self.minibatch_stddev(out))
        out = self.final_linear(out.view(out.shape[0], -1))
        return (out, features) if return_features else out
