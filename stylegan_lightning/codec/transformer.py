"""Attention blocks of the codec's entropy model.

- :class:`HyperEncoder` (sender only): a transformer over the style tokens whose output, projected to a few
  channels per token, is the hyper-latent ``z``.
- :class:`HyperDecoder`: masked multi-head self-attention over the decoded hyper-latent tokens, giving the
  hyperprior feature of every style token.
- :class:`CrossLayerEntropyTransformer`: the Gaussian parameters (mean, scale) of layer k's symbols from its
  hyperprior features (self-attention within the layer) and, by cross-attention, from the decoded symbols of the
  layers before it (a learned start token stands in when there are none).

Masks are *block causal* over the scalable layers: a token of layer k sees tokens of layers <= k only, so the
first k layers' entropy parameters never depend on anything a decoder holding k layers lacks.
"""

from __future__ import annotations

import torch
from torch import nn


def block_causal_mask(layer_ids: torch.Tensor) -> torch.Tensor:
    """Boolean attention mask (True = blocked) letting token i attend token j iff layer(j) <= layer(i)."""
    return layer_ids[None, :] > layer_ids[:, None]


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: self-attention, optional cross-attention, then an MLP; residual each time."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, cross: bool = False):
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross = cross
        if cross:
            self.norm_cross = nn.LayerNorm(dim)
            self.norm_context = nn.LayerNorm(dim)
            self.cross_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        hidden = int(dim * mlp_ratio)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm_self(x)
        x = x + self.self_attention(h, h, h, attn_mask=mask, need_weights=False)[0]
        if self.cross:
            if context is None:
                raise ValueError("a cross-attention block needs a context")
            c = self.norm_context(context)
            x = x + self.cross_attention(self.norm_cross(x), c, c, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))


class _TokenTransformer(nn.Module):
    """Input projection + per-style-index positional embedding + masked self-attention blocks."""

    def __init__(self, in_channels: int, dim: int, n_tokens: int, depth: int, heads: int):
        super().__init__()
        self.embed = nn.Linear(in_channels, dim)
        self.position = nn.Parameter(torch.zeros(n_tokens, dim))
        nn.init.normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(AttentionBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def encode(self, tokens: torch.Tensor, layer_ids: torch.Tensor) -> torch.Tensor:
        """``tokens`` [B, n, in_channels] are style vectors 0..n-1 (a prefix of the layers)."""
        n = tokens.shape[1]
        x = self.embed(tokens) + self.position[:n]
        mask = block_causal_mask(layer_ids[:n])
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


class HyperEncoder(_TokenTransformer):
    """Style tokens y [B, n, C] -> hyper-latent z [B, n, hyper_channels] (layer-wise: z of layer k summarises
    layers <= k)."""

    def __init__(self, channels: int, hyper_channels: int, dim: int, n_tokens: int, depth: int, heads: int):
        super().__init__(channels, dim, n_tokens, depth, heads)
        self.project = nn.Linear(dim, hyper_channels)

    def forward(self, tokens: torch.Tensor, layer_ids: torch.Tensor) -> torch.Tensor:
        return self.project(self.encode(tokens, layer_ids))


class HyperDecoder(_TokenTransformer):
    """Decoded hyper-latent tokens ẑ [B, n, hyper_channels] (a prefix of the layers) -> hyperprior features
    [B, n, dim], by masked self-attention."""

    def __init__(self, hyper_channels: int, dim: int, n_tokens: int, depth: int, heads: int):
        super().__init__(hyper_channels, dim, n_tokens, depth, heads)

    def forward(self, z_hat: torch.Tensor, layer_ids: torch.Tensor) -> torch.Tensor:
        return self.encode(z_hat, layer_ids)


class CrossLayerEntropyTransformer(nn.Module):
    """(hyperprior features of layer k, decoded symbols of layers < k) -> (means, scales) of layer k's symbols.

    ``features`` [B, n_k, dim] belong to style vectors ``positions`` (LongTensor [n_k]); ``context`` [B, m, C]
    are the decoded tokens of the earlier layers at ``context_positions`` [m] (m may be 0).
    """

    def __init__(self, channels: int, dim: int, n_tokens: int, depth: int, heads: int):
        super().__init__()
        self.embed_context = nn.Linear(channels, dim)
        self.context_position = nn.Parameter(torch.zeros(n_tokens, dim))
        self.start = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.context_position, std=0.02)
        nn.init.normal_(self.start, std=0.02)
        self.blocks = nn.ModuleList(AttentionBlock(dim, heads, cross=True) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.parameters_head = nn.Linear(dim, 2 * channels)
        nn.init.zeros_(self.parameters_head.weight)
        nn.init.zeros_(self.parameters_head.bias)

    def forward(self, features: torch.Tensor, context: torch.Tensor,
                context_positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start = self.start.expand(features.shape[0], -1, -1)
        if context.shape[1]:
            embedded = self.embed_context(context) + self.context_position[context_positions]
            memory = torch.cat([start, embedded], dim=1)
        else:
            memory = start
        x = features
        for block in self.blocks:
            x = block(x, context=memory)
        means, scales = self.parameters_head(self.norm(x)).chunk(2, dim=-1)
        return means, nn.functional.softplus(scales + 1.0)
