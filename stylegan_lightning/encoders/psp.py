"""pSp's feature-pyramid style encoder (``GradualStyleEncoder``) and its "map2style" head.

Layout (pixel2style2pixel ``models/encoders/psp_encoders.py``; names kept for strict checkpoint loading)::

    input_layer, body                 IR-SE backbone (see :mod:`.backbone`), taps c1 / c2 / c3
    latlayer1  Conv2d(channels[-2] -> width, 1x1)      p2 = up(c3) + latlayer1(c2)
    latlayer2  Conv2d(channels[-3] -> width, 1x1)      p1 = up(p2) + latlayer2(c1)
    styles.i   GradualStyleBlock(width, style_dim, spatial of its level)

``width`` is the c3 channel count (512 officially). Style ``i`` reads c3 (coarse, ``i < coarse_ind = 3``), p2
(middle, ``i < middle_ind = 7``) or p1 (fine). For a 256x256 input c3 / p2 / p1 are 16 / 32 / 64 pixels wide, so
the blocks have 4 / 5 / 6 stride-2 convolutions; other input sizes scale these.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..stylegan2.layers import EqualLinear
from .backbone import OFFICIAL_BLOCKS, OFFICIAL_CHANNELS, BackboneConfig, IRSEBackbone, upsample_add

COARSE_IND = 3
MIDDLE_IND = 7


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


class GradualStyleBlock(nn.Module):
    """map2style: ``log2(spatial)`` (at least one) stride-2 3x3 convolutions, each followed by LeakyReLU (slope
    0.01), take a ``spatial`` x ``spatial`` map to 1x1; then ``EqualLinear(out_c, out_c, lr_mul=1)``."""

    def __init__(self, in_c: int, out_c: int, spatial: int):
        super().__init__()
        if not _is_power_of_two(spatial):
            raise ValueError(f"GradualStyleBlock needs a power-of-two spatial size, got {spatial}")
        self.out_c = out_c
        self.spatial = spatial
        n_convs = max(1, int(math.log2(spatial)))
        layers: list[nn.Module] = []
        for index in range(n_convs):
            layers += [nn.Conv2d(in_c if index == 0 else out_c, out_c, kernel_size=3, stride=2, padding=1),
                       nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        if x.shape[-2:] != (1, 1):
            raise ValueError(f"GradualStyleBlock(spatial={self.spatial}) got a map that reduces to "
                             f"{tuple(x.shape[-2:])} instead of 1x1")
        return self.linear(x.flatten(1))


class PyramidFeatures(NamedTuple):
    """The encoder's hierarchical features (GradStyle's T_m): backbone taps c1 / c2 / c3 (input / 4, / 8, / 16
    for four stages) and the FPN maps p2 (c2's size) and p1 (c1's size), both ``width`` channels."""

    c1: torch.Tensor
    c2: torch.Tensor
    c3: torch.Tensor
    p2: torch.Tensor
    p1: torch.Tensor

    def level(self, index: int) -> torch.Tensor:
        """The map a style level reads: 0 = coarse (c3), 1 = middle (p2), 2 = fine (p1)."""
        return (self.c3, self.p2, self.p1)[index]


class PyramidStyleEncoder(IRSEBackbone):
    """Backbone + FPN + one map2style block per style: the layout pSp's and e4e's encoders share.

    Args:
        n_styles: number of style vectors (the generator's ``n_latent``: 2 log2(size) - 2).
        style_dim: size of each style vector (512 officially).
        input_size: square input resolution (256 officially); a power of two, at least 2 x 2**stages.
        blocks, channels, mode, input_nc: the backbone (see :class:`~.backbone.BackboneConfig`).
        coarse_ind, middle_ind: first style index of the middle and of the fine level.
    """

    kind = ""
    official_name = ""
    accepts_any_size = False

    def __init__(self, n_styles: int = 18, style_dim: int = 512, input_size: int = 256,
                 blocks: tuple[int, ...] = OFFICIAL_BLOCKS, channels: tuple[int, ...] = OFFICIAL_CHANNELS,
                 mode: str = "ir_se", input_nc: int = 3, coarse_ind: int = COARSE_IND, middle_ind: int = MIDDLE_IND):
        config = BackboneConfig(tuple(blocks), tuple(channels), mode, input_nc)
        super().__init__(config)
        if n_styles < 1 or style_dim < 1:
            raise ValueError(f"n_styles and style_dim must be positive, got {n_styles}, {style_dim}")
        coarse_spatial = input_size // config.reduction
        if not _is_power_of_two(input_size) or coarse_spatial < 2:
            raise ValueError(f"input_size must be a power of two >= {2 * config.reduction} for "
                             f"{len(config.blocks)} stages, got {input_size}")
        self.n_styles = n_styles
        self.style_dim = style_dim
        self.input_size = input_size
        self.coarse_ind = coarse_ind
        self.middle_ind = middle_ind
        width = config.width
        self.styles = nn.ModuleList(
            GradualStyleBlock(width, style_dim, coarse_spatial * 2 ** self.style_level(i)) for i in range(n_styles)
        )
        self.latlayer1 = nn.Conv2d(config.channels[-2], width, kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(config.channels[-3], width, kernel_size=1, stride=1, padding=0)

    @property
    def style_count(self) -> int:
        """Official name of :attr:`n_styles`."""
        return self.n_styles

    def style_level(self, index: int) -> int:
        """0 (coarse, reads c3), 1 (middle, p2) or 2 (fine, p1) for style ``index``."""
        return 0 if index < self.coarse_ind else 1 if index < self.middle_ind else 2

    def features(self, x: torch.Tensor) -> PyramidFeatures:
        """The hierarchical features of ``x`` ([B, input_nc, input_size, input_size])."""
        self.check_input(x, self.input_size)
        c1, c2, c3 = self.backbone_features(x)
        p2 = upsample_add(c3, self.latlayer1(c2))
        p1 = upsample_add(p2, self.latlayer2(c1))
        return PyramidFeatures(c1, c2, c3, p2, p1)

    def extra_repr(self) -> str:
        return (f"n_styles={self.n_styles}, style_dim={self.style_dim}, input_size={self.input_size}, "
                f"blocks={self.config.blocks}, channels={self.config.channels}, mode={self.config.mode!r}, "
                f"input_nc={self.config.input_nc}")


class GradualStyleEncoder(PyramidStyleEncoder):
    """pSp's encoder: every style vector from its own map2style block on its pyramid level.

    ``forward(x)`` returns W+ offsets [B, n_styles, style_dim] (before ``latent_avg`` is added);
    ``forward(x, return_features=True)`` also returns the :class:`PyramidFeatures`.
    """

    kind = "psp"
    official_name = "GradualStyleEncoder"

    def forward(self, x: torch.Tensor, return_features: bool = False):
        features = self.features(x)
        w = torch.stack([style(features.level(self.style_level(i))) for i, style in enumerate(self.styles)], dim=1)
        return (w, features) if return_features else w


__all__ = ["COARSE_IND", "MIDDLE_IND", "GradualStyleBlock", "GradualStyleEncoder", "PyramidFeatures",
           "PyramidStyleEncoder"]
