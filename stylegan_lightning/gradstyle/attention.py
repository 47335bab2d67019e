"""Selective Attention and the Aligner of GradStyle's Global Alignment Module (arXiv 2402.14398, Eq. 7-9).

In the editing stream the residual features ``F_m`` (computed from the source image, hence laid out like the
reconstruction) must be re-aligned to the edited generator features ``f_m^edi`` before they are fused. The
:class:`Aligner` does this with cross-attention: the tokens of ``f_m^edi`` ask, the tokens of ``F_m`` answer.

Selective Attention (Eq. 9) keeps, for every query, only the top ``mu`` fraction of its scores ``q k^T``; the others
are suppressed (they receive exactly zero weight) so that a query mixes only the few regions of ``F_m`` that resemble
it::

    S-Att(Z_F, Z_f) = Softmax(q k^T (.) Top_mu(q k^T) / sqrt(d_k)) v

- :func:`sinusoidal_position_embedding_2d`: fixed 2-D sin/cos embeddings of the token grid.
- :func:`top_ratio_mask`: exactly ``max(1, ceil(ratio * Nk))`` kept entries per row.
- :func:`selective_attention`: the functional form on ``[B, heads, N, d]`` tensors.
- :class:`SelectiveAttention`: multi-head projections around it; :class:`AlignerLayer`: pre-norm block;
  :class:`Aligner`: feature map in, feature map out.

Memory: attention here is dense. For ``B`` samples, ``h`` heads, ``Nq`` queries and ``Nk`` keys,
:func:`selective_attention` materialises the float score matrix ``[B, h, Nq, Nk]`` (masked in place) and the softmax
output of the same size (the one kept for backward), plus, while the mask is built, a bool mask of that shape (1 byte
per entry) and the int64 indices of the kept entries (``8 * k`` bytes per row, i.e. ``2 * ratio`` times the float32
score matrix). The default stages stop at 32x32 = 1024 tokens: one float32 score matrix is 4 MiB per sample and
head, 256 MiB per copy for ``B=8, h=8``. A 64x64 stage (4096 tokens, ``refine_layers`` with 7 or 8) costs 16 times
that, about 4 GiB per copy and 2-3 copies at peak: chunk the batch (or use fewer heads) there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "Aligner",
    "AlignerLayer",
    "SelectiveAttention",
    "selective_attention",
    "sinusoidal_position_embedding_2d",
    "top_k_count",
    "top_ratio_mask",
]


def sinusoidal_position_embedding_2d(height: int, width: int, dim: int, device: torch.device | str | None = None,
                                     dtype: torch.dtype | None = None) -> Tensor:
    """Fixed 2-D sinusoidal position embeddings of an ``height x width`` token grid, ``[height * width, dim]``.

    Tokens are in row-major order (token ``y * width + x``, the order of ``features.flatten(2)``). The first half
    of the channels encodes the row ``y``, the second half the column ``x``; each half is
    ``[sin(p * w_i), cos(p * w_i)]`` over the geometric frequencies ``w_i = 10000 ** (-i / (dim / 4))``,
    ``i = 0 .. dim/4 - 1``, as in the Transformer. Token 0 is therefore ``[0]*(dim/4) + [1]*(dim/4)`` twice.

    Raises:
        ValueError: if ``dim`` is not a positive multiple of 4 or the grid is empty.
    """
    if dim <= 0 or dim % 4:
        raise ValueError(f"dim must be a positive multiple of 4 (sin/cos for y and x), got {dim}")
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    quarter = dim // 4
    omega = torch.exp(torch.arange(quarter, dtype=torch.float64) * (-math.log(10000.0) / quarter))
    ys = torch.arange(height, dtype=torch.float64)[:, None] * omega  # [H, dim/4]
    xs = torch.arange(width, dtype=torch.float64)[:, None] * omega  # [W, dim/4]
    emb_y = torch.cat([ys.sin(), ys.cos()], dim=1)[:, None, :].expand(height, width, 2 * quarter)
    emb_x = torch.cat([xs.sin(), xs.cos()], dim=1)[None, :, :].expand(height, width, 2 * quarter)
    emb = torch.cat([emb_y, emb_x], dim=2).reshape(height * width, dim)
    return emb.to(device=device, dtype=dtype if dtype is not None else torch.get_default_dtype())


def top_k_count(ratio: float, n: int) -> int:
    """Number of entries a row of ``n`` keeps at ``ratio``: ``max(1, ceil(ratio * n))``, at most ``n``.

    ``ratio * n`` is rounded to 9 decimals first so that float noise (``0.07 * 100 = 7.000000000000001``) does
    not add an entry.

    Raises:
        ValueError: if ``ratio`` is not in ``(0, 1]`` or ``n < 1``.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if n < 1:
        raise ValueError(f"need at least one key, got {n}")
    return min(n, max(1, math.ceil(round(ratio * n, 9))))


def top_ratio_mask(scores: Tensor, ratio: float) -> Tensor:
    """Boolean mask (True = kept) of the largest ``max(1, ceil(ratio * Nk))`` entries of each row of ``scores``.

    ``scores`` is ``[..., Nq, Nk]``; rows are along the last dimension. Exactly that many entries are kept in every
    row, ties included (which of equal scores survive is decided by :func:`torch.topk`, deterministically for a
    given input and device). ``ratio = 1`` keeps everything. Built by scattering the :func:`torch.topk` indices,
    so it costs the ``int64`` indices (``8 k`` bytes per row) plus the bool mask (1 byte per entry).

    Raises:
        ValueError: if ``ratio`` is not in ``(0, 1]``.
    """
    if scores.dim() < 1:
        raise ValueError("scores must have at least one dimension")
    k = top_k_count(ratio, scores.shape[-1])
    if k == scores.shape[-1]:
        return torch.ones_like(scores, dtype=torch.bool)
    indices = torch.topk(scores, k, dim=-1, largest=True, sorted=False).indices
    mask = torch.zeros_like(scores, dtype=torch.bool)
    return mask.scatter_(-1, indices, True)


def selective_attention(q: Tensor, k: Tensor, v: Tensor, ratio: float) -> Tensor:
    """Selective Attention (Eq. 9): softmax over the top ``ratio`` fraction of each row of ``q k^T / sqrt(d)``.

    Args:
        q: queries ``[B, heads, Nq, d]``.
        k: keys ``[B, heads, Nk, d]``.
        v: values ``[B, heads, Nk, dv]``.
        ratio: fraction ``mu`` of keys each query may attend to, in ``(0, 1]``; each row keeps
            ``max(1, ceil(ratio * Nk))`` keys (see :func:`top_ratio_mask`).

    Returns:
        ``[B, heads, Nq, dv]``. Scores outside the mask are set to ``-inf`` before the softmax, so their weight (and
        gradient) is exactly zero; every row keeps at least one key, so there are no NaNs. With ``ratio = 1`` this is
        ordinary scaled dot-product attention. See the module docstring for the memory cost.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"expected 4-D q, k, v [B, heads, N, d], got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"incompatible q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    # Scale q (small) rather than the scores; matmul's backward needs only q and k, so the mask can be applied to
    # the score matrix in place and only one float copy of it (the softmax output) is kept for backward.
    scores = torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k.transpose(-2, -1))
    if top_k_count(ratio, k.shape[-2]) < k.shape[-2]:
        with torch.no_grad():
            dropped = top_ratio_mask(scores, ratio).logical_not_()
        scores.masked_fill_(dropped, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, v)


class SelectiveAttention(nn.Module):
    """Multi-head cross-attention with Selective Attention (Eq. 8-9).

    ``q = W_q(queries)``, ``k = W_k(keys)``, ``v = W_v(keys)`` are split into ``heads`` heads of ``head_dim``
    (``d_k = 64`` in the paper; 8 heads for its 512-channel features), combined by :func:`selective_attention`
    with ``ratio`` (``mu``), and projected back to ``query_channels``.

    Args:
        query_channels: channels ``Cq`` of the query tokens (and of the output).
        key_channels: channels ``Ck`` of the key / value tokens.
        heads: number of heads.
        head_dim: channels per head, the ``d_k`` of the ``1 / sqrt(d_k)`` scaling.
        ratio: fraction of keys kept per query, in ``(0, 1]``.
    """

    def __init__(self, query_channels: int, key_channels: int, heads: int = 8, head_dim: int = 64,
                 ratio: float = 0.5) -> None:
        super().__init__()
        if heads < 1 or head_dim < 1:
            raise ValueError(f"heads and head_dim must be positive, got {heads} and {head_dim}")
        top_k_count(ratio, 1)  # validates ratio
        self.query_channels = query_channels
        self.key_channels = key_channels
        self.heads = heads
        self.head_dim = head_dim
        self.ratio = float(ratio)
        inner = heads * head_dim
        self.to_q = nn.Linear(query_channels, inner)
        self.to_k = nn.Linear(key_channels, inner)
        self.to_v = nn.Linear(key_channels, inner)
        self.to_out = nn.Linear(inner, query_channels)

    def _split(self, x: Tensor) -> Tensor:
        batch, tokens, _ = x.shape
        return x.view(batch, tokens, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, queries: Tensor, keys: Tensor) -> Tensor:
        """``queries [B, Nq, Cq]`` attend to ``keys [B, Nk, Ck]`` (also the values); returns ``[B, Nq, Cq]``."""
        if queries.dim() != 3 or queries.shape[-1] != self.query_channels:
            raise ValueError(f"queries must be [B, Nq, {self.query_channels}], got {tuple(queries.shape)}")
        if keys.dim() != 3 or keys.shape[-1] != self.key_channels or keys.shape[0] != queries.shape[0]:
            raise ValueError(f"keys must be [{queries.shape[0]}, Nk, {self.key_channels}], got {tuple(keys.shape)}")
        q, k, v = self._split(self.to_q(queries)), self._split(self.to_k(keys)), self._split(self.to_v(keys))
        out = selective_attention(q, k, v, self.ratio)  # [B, heads, Nq, head_dim]
        out = out.transpose(1, 2).reshape(queries.shape[0], queries.shape[1], self.heads * self.head_dim)
        return self.to_out(out)

    def extra_repr(self) -> str:
        return (f"query_channels={self.query_channels}, key_channels={self.key_channels}, heads={self.heads}, "
                f"head_dim={self.head_dim}, ratio={self.ratio}")


class AlignerLayer(nn.Module):
    """Pre-norm cross-attention block of the :class:`Aligner`.

    ``x = x + SelectiveAttention(LN(x), LN(memory))``, then ``x = x + MLP(LN(x))`` with a GELU MLP of hidden width
    ``mlp_ratio * width``. ``x`` are the query tokens (edited features), ``memory`` the key / value tokens
    (residual features); both are ``width`` wide.
    """

    def __init__(self, width: int, heads: int = 8, head_dim: int = 64, ratio: float = 0.5,
                 mlp_ratio: float = 2.0) -> None:
        super().__init__()
        hidden = max(1, int(round(width * mlp_ratio)))
        self.norm_query = nn.LayerNorm(width)
        self.norm_memory = nn.LayerNorm(width)
        self.attention = SelectiveAttention(width, width, heads=heads, head_dim=head_dim, ratio=ratio)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: Tensor, memory: Tensor) -> Tensor:
        """``x [B, Nq, width]``, ``memory [B, Nk, width]`` -> ``[B, Nq, width]``."""
        x = x + self.attention(self.norm_query(x), self.norm_memory(memory))
        return x + self.mlp(self.norm_mlp(x))


class Aligner(nn.Module):
    """GradStyle's Aligner ``E_ab`` (Eq. 7): re-aligns residual features to the layout of the edited features.

    Both ``[B, C, H, W]`` maps are flattened into ``H * W`` tokens (row-major) and projected to ``width``; the same
    fixed 2-D sinusoidal position embedding (:func:`sinusoidal_position_embedding_2d`, ``width`` channels) is added to
    both. The edited tokens become the queries, the residual tokens the keys and values of ``layers``
    :class:`AlignerLayer` blocks (Selective Attention with ``heads`` heads of ``head_dim`` and keep-ratio ``ratio``).
    A linear projection (ordinary initialisation, not zero, so the block can learn to copy the residual) maps the
    result back to ``C`` channels and ``[B, C, H, W]``.

    The embedding is added after the input projections (the paper adds it before ``W_q`` / ``W_k``; for
    ``width = C`` the two differ only by a learnable linear map of the embedding). This keeps the embedding
    ``width`` wide: for narrow maps a ``C``-channel embedding hardly tells positions apart, and the per-layer
    LayerNorm of ``C``-wide tokens discards much of their content. For StyleGAN's 512-channel features the default
    ``width = channels`` is fine; for narrow maps choose ``width`` several times ``C``.

    Trained self-supervised (Eq. 10): ``L1(Aligner(random_perspective(F), f_edi), F)`` with ``f_edi`` generated from
    the unedited codes, see :func:`stylegan_lightning.gradstyle.augment.random_perspective`.

    Args:
        channels: ``C`` of both feature maps.
        heads: attention heads.
        head_dim: channels per head (``d_k``; 64 in the paper).
        layers: number of :class:`AlignerLayer` blocks.
        ratio: Selective Attention keep ratio ``mu`` in ``(0, 1]`` (the paper does not give it; GradStyle uses 0.5).
        width: token width inside the blocks, a multiple of 4 (for the position embedding); ``channels`` by default.
    """

    def __init__(self, channels: int, heads: int = 8, head_dim: int = 64, layers: int = 2, ratio: float = 0.5,
                 width: int | None = None) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        width = channels if width is None else int(width)
        if width < 1 or width % 4:
            raise ValueError(f"width must be a positive multiple of 4 (position embedding), got {width}")
        self.channels = channels
        self.width = width
        self.ratio = float(ratio)
        self.query_in = nn.Linear(channels, width)
        self.memory_in = nn.Linear(channels, width)
        self.blocks = nn.ModuleList(
            AlignerLayer(width, heads=heads, head_dim=head_dim, ratio=ratio) for _ in range(layers))
        self.out = nn.Linear(width, channels)

    def position_embedding(self, height: int, width: int, device: torch.device | str | None = None,
                           dtype: torch.dtype | None = None) -> Tensor:
        """The ``[height * width, self.width]`` sinusoidal embedding added to both token sets."""
        return sinusoidal_position_embedding_2d(height, width, self.width, device=device, dtype=dtype)

    def forward(self, residual: Tensor, edited: Tensor) -> Tensor:
        """Re-align ``residual [B, C, H, W]`` to the layout of ``edited [B, C, H, W]``; returns ``[B, C, H, W]``.

        Raises:
            ValueError: if the maps are not 4-D, differ in shape, or do not have ``channels`` channels.
        """
        if residual.dim() != 4 or edited.dim() != 4 or residual.shape != edited.shape \
                or residual.shape[1] != self.channels:
            raise ValueError(f"residual and edited must both be [B, {self.channels}, H, W] of the same shape, got "
                             f"residual {tuple(residual.shape)} and edited {tuple(edited.shape)}")
        batch, channels, height, width = residual.shape
        pos = self.position_embedding(height, width, device=residual.device, dtype=residual.dtype)
        memory = self.memory_in(residual.flatten(2).transpose(1, 2)) + pos  # [B, HW, width]
        x = self.query_in(edited.flatten(2).transpose(1, 2)) + pos
        for block in self.blocks:
            x = block(x, memory)
        out = self.out(x)  # [B, HW, C]
        return out.transpose(1, 2).reshape(batch, channels, height, width)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, width={self.width}, ratio={self.ratio}"
