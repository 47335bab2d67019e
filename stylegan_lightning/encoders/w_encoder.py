"""The encoder into W (one style vector for every layer): HyperStyle's ``WEncoder``.

Layout (yuval-alaluf/hyperstyle ``models/encoders/w_encoder.py``; pSp's ``BackboneEncoderUsingLastLayerIntoW``
has the same parameters)::

    input_layer, body      IR-SE backbone (see :mod:`.backbone`)
    output_pool            AdaptiveAvgPool2d(1)          (no parameters)
    linear                 EqualLinear(channels[-1] -> style_dim, lr_mul=1)

HyperStyle's checkpoint ``faces_w_encoder.pt`` loads strictly into the official configuration.
"""

from __future__ import annotations

import torch
from torch import nn

from ..stylegan2.layers import EqualLinear
from .backbone import OFFICIAL_BLOCKS, OFFICIAL_CHANNELS, BackboneConfig, IRSEBackbone


class WEncoder(IRSEBackbone):
    """Backbone -> global average pool -> ``EqualLinear``: one w [B, style_dim] (:meth:`encode_w`), repeated
    over the styles by ``forward`` ([B, n_styles, style_dim], before ``latent_avg`` is added).

    The pooling makes any input size work; ``input_size`` (256 officially) is the size images are resized to by
    :class:`~.inverter.LatentEncoder`.
    """

    kind = "w"
    official_name = "WEncoder"
    accepts_any_size = True

    def __init__(self, n_styles: int = 18, style_dim: int = 512, input_size: int = 256,
                 blocks: tuple[int, ...] = OFFICIAL_BLOCKS, channels: tuple[int, ...] = OFFICIAL_CHANNELS,
                 mode: str = "ir_se", input_nc: int = 3):
        super().__init__(BackboneConfig(tuple(blocks), tuple(channels), mode, input_nc))
        if n_styles < 1 or style_dim < 1 or input_size < 1:
            raise ValueError(f"n_styles, style_dim and input_size must be positive, got {n_styles}, {style_dim}, "
                             f"{input_size}")
        self.n_styles = n_styles
        self.style_dim = style_dim
        self.input_size = input_size
        self.output_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = EqualLinear(self.config.width, style_dim, lr_mul=1)

    @property
    def style_count(self) -> int:
        """Official name of :attr:`n_styles`."""
        return self.n_styles

    def encode_w(self, x: torch.Tensor) -> torch.Tensor:
        """One code per image: [B, style_dim]."""
        self.check_input(x, None)
        return self.linear(self.output_pool(self.backbone_output(x)).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_w(x).unsqueeze(1).repeat(1, self.n_styles, 1)

    def extra_repr(self) -> str:
        return (f"n_styles={self.n_styles}, style_dim={self.style_dim}, input_size={self.input_size}, "
                f"blocks={self.config.blocks}, channels={self.config.channels}, mode={self.config.mode!r}, "
                f"input_nc={self.config.input_nc}")


__all__ = ["WEncoder"]
