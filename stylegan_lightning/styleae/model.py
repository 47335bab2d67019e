"""StyleAE: an autoencoder over StyleGAN's W space whose first code coordinates are named attributes.

``z = E(w) = (c, s)``: the first k coordinates ``c`` are trained to equal the (normalised) attributes of the image
``G(w)``, the remaining ``D - k`` coordinates ``s`` are free; ``D(E(w)) ≈ w``. An edit sets or shifts one
coordinate of ``c`` and decodes.

Architecture (the reference model): the encoder is ``n_layers`` linear layers ``D → H → ... → H → D`` with a
PReLU (initial slope 0.9) after every layer but the last; the decoder mirrors it (``D → H → ... → D``, PReLU with
initial slope 1/0.9) and starts from the transposes of the encoder's weights, so that at initialisation each
decoder PReLU undoes its encoder PReLU. Weights are Xavier-normal, biases 0. The reference uses 4 layers of 512;
the paper's text describes 3 (``n_layers=3``).

Attribute units: the code coordinate of attribute ``a`` is ``2 · (value − low) / (high − low) − 1`` with the
attribute's ``(low, high)`` range (``(0, 1)`` for probabilities and 0/1 labels, e.g. ``(0, 100)`` for an age), so
labels live in [−1, 1] as in the reference (min–max scaling).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn


def _check_ranges(ranges: Sequence[Sequence[float]] | None, count: int) -> list[list[float]]:
    if ranges is None:
        return [[0.0, 1.0] for _ in range(count)]
    ranges = [[float(low), float(high)] for low, high in ranges]
    if len(ranges) != count:
        raise ValueError(f"label_ranges must give one (low, high) per attribute ({count}), got {len(ranges)}")
    if any(high <= low for low, high in ranges):
        raise ValueError(f"every label range needs low < high, got {ranges}")
    return ranges


class StyleAE(nn.Module):
    """The StyleAE autoencoder (see the module docs).

    Args:
        latent_dim: D, the size of w (and of the code z).
        attribute_names: the k named attributes, in code order (the first k coordinates).
        hidden_dim: H, the width of the hidden layers (default D).
        n_layers: linear layers in the encoder (and in the decoder); at least 1.
        label_ranges: ``(low, high)`` of each attribute's values (default ``(0, 1)``: probabilities / 0-1 labels).
        prelu_init: initial PReLU slope of the encoder (the decoder's is its inverse).
    """

    def __init__(self, latent_dim: int, attribute_names: Sequence[str], hidden_dim: int | None = None,
                 n_layers: int = 4, label_ranges: Sequence[Sequence[float]] | None = None, prelu_init: float = 0.9):
        super().__init__()
        names = [str(name) for name in attribute_names]
        hidden_dim = int(hidden_dim or latent_dim)
        if latent_dim < 1 or hidden_dim < 1 or n_layers < 1:
            raise ValueError(f"need positive sizes, got latent_dim={latent_dim}, hidden_dim={hidden_dim}, "
                             f"n_layers={n_layers}")
        if not names or len(set(names)) != len(names) or len(names) > latent_dim:
            raise ValueError(f"attribute_names must be 1..{latent_dim} distinct names, got {names}")
        if not prelu_init > 0:
            raise ValueError(f"prelu_init must be positive (the decoder uses its inverse), got {prelu_init}")
        ranges = _check_ranges(label_ranges, len(names))
        self.config: dict[str, Any] = dict(latent_dim=int(latent_dim), attribute_names=names, hidden_dim=hidden_dim,
                                           n_layers=int(n_layers), label_ranges=ranges, prelu_init=float(prelu_init))
        sizes = [latent_dim] + [hidden_dim] * (n_layers - 1) + [latent_dim]
        encoder_linears = [nn.Linear(sizes[i], sizes[i + 1]) for i in range(n_layers)]
        decoder_linears = [nn.Linear(sizes[i + 1], sizes[i]) for i in reversed(range(n_layers))]
        for linear in encoder_linears:
            nn.init.xavier_normal_(linear.weight)
            nn.init.zeros_(linear.bias)
        with torch.no_grad():
            for linear, mirror in zip(decoder_linears, reversed(encoder_linears)):
                linear.weight.copy_(mirror.weight.t())
                nn.init.zeros_(linear.bias)
        self.encoder = self._stack(encoder_linears, prelu_init)
        self.decoder = self._stack(decoder_linears, 1.0 / prelu_init)
        self.register_buffer("label_low", torch.tensor([r[0] for r in ranges]))
        self.register_buffer("label_high", torch.tensor([r[1] for r in ranges]))

    @staticmethod
    def _stack(linears: list[nn.Linear], slope: float) -> nn.Sequential:
        layers: list[nn.Module] = []
        for index, linear in enumerate(linears):
            layers.append(linear)
            if index < len(linears) - 1:
                layers.append(nn.PReLU(init=slope))
        return nn.Sequential(*layers)

    # ------------------------------------------------------------------ properties
    @property
    def latent_dim(self) -> int:
        return self.config["latent_dim"]

    @property
    def attribute_names(self) -> list[str]:
        return list(self.config["attribute_names"])

    @property
    def n_attributes(self) -> int:
        return len(self.config["attribute_names"])

    def attribute_index(self, attribute: str | int) -> int:
        """The code coordinate of ``attribute`` (a name or an index)."""
        names = self.attribute_names
        if isinstance(attribute, int) and not isinstance(attribute, bool):
            if not 0 <= attribute < len(names):
                raise ValueError(f"attribute index {attribute} out of range: the model has {len(names)} attributes")
            return attribute
        if attribute not in names:
            raise ValueError(f"unknown attribute {attribute!r}; this StyleAE has {names}")
        return names.index(attribute)

    # ------------------------------------------------------------------ units
    def to_coordinates(self, values: torch.Tensor) -> torch.Tensor:
        """Attribute values [..., k] (their own units) → code coordinates in [−1, 1] over the label ranges."""
        return 2 * (values - self.label_low) / (self.label_high - self.label_low) - 1

    def to_values(self, coordinates: torch.Tensor) -> torch.Tensor:
        """Code coordinates [..., k] → attribute values in their own units (inverse of :meth:`to_coordinates`)."""
        return (coordinates + 1) / 2 * (self.label_high - self.label_low) + self.label_low

    def coordinate_of(self, attribute: str | int, value: float | torch.Tensor) -> torch.Tensor:
        """The coordinate of ``attribute`` that stands for ``value`` (in the attribute's units)."""
        index = self.attribute_index(attribute)
        low, high = self.label_low[index], self.label_high[index]
        return 2 * (torch.as_tensor(value, dtype=low.dtype, device=low.device) - low) / (high - low) - 1

    # ------------------------------------------------------------------ maps
    def _check(self, w: torch.Tensor) -> None:
        if w.ndim < 2 or w.shape[-1] != self.latent_dim:
            raise ValueError(f"expected codes [..., {self.latent_dim}], got {tuple(w.shape)}")
        if not torch.isfinite(w).all():
            raise ValueError("codes contain NaN or Inf")

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        """z = E(w) over the last dimension (W [N, D] or W+ [N, L, D], row by row)."""
        self._check(w)
        return self.encoder(w)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """w = D(z) over the last dimension."""
        self._check(z)
        return self.decoder(z)

    def forward(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, D(z))`` with ``z = E(w)``."""
        z = self.encode(w)
        return z, self.decoder(z)

    def attributes(self, w: torch.Tensor) -> torch.Tensor:
        """The attribute coordinates c [..., k] of codes ``w``."""
        return self.encode(w)[..., : self.n_attributes]

    def edit(self, w: torch.Tensor, attribute: str | int, coordinate: float | torch.Tensor | None = None,
             shift: float | torch.Tensor | None = None, keep_residual: bool = False) -> torch.Tensor:
        """Edited codes: encode, set the attribute's coordinate to ``coordinate`` (or add ``shift`` to it), decode.

        ``coordinate`` / ``shift`` are scalars or per-code tensors [N] (broadcast over W+ rows). With
        ``keep_residual`` the autoencoder's reconstruction error ``w − D(E(w))`` is added back, so an edit that
        changes nothing returns ``w`` exactly (useful for inverted real images, whose codes the autoencoder
        reconstructs less well than sampled ones); the reference decodes without it.
        """
        if (coordinate is None) == (shift is None):
            raise ValueError("give exactly one of coordinate or shift")
        index = self.attribute_index(attribute)
        code = self.encode(w)
        value = coordinate if coordinate is not None else shift
        value = torch.as_tensor(value, dtype=code.dtype, device=code.device)
        if value.ndim == 1:  # one value per code
            value = value.view(-1, *([1] * (code.ndim - 2)))
        column = code[..., index]
        edited_code = code.clone()
        edited_code[..., index] = (value if coordinate is not None else column + value).expand_as(column)
        edited = self.decoder(edited_code)
        if keep_residual:
            edited = edited + (w - self.decoder(code))
        return edited


__all__ = ["StyleAE"]
