"""StyleAE: an autoencoder over StyleGAN's W space whose first code coordinates are named attributes.

``z = E(w) = (c, s)``: the first k coordinates ``c`` are trained to equal the (normalised) attributes of the image
``G(w)``, the remaining ``D - k`` coordinates ``s`` are free; ``D(E(w)) ≈ w``. An edit sets or shifts one
coordinate of ``c`` and decodes.

Architecture (the reference model): the encoder is ``n_layers`` linear layers ``D → H → ... → H → D`` with a
PReLU (initial slope 0.9) after every layer but the last; the decoder mirrors it (``D → H → ... → D``, PReLU with
initial slope 1/0.9) and starts from the transposes of the encoder's weights, so that at initialisation each
decoder PReLU undoes its encoder PReLU. Weights are Xavier-normal; biases keep PyTorch's ``nn.Linear`` default,
uniform in ``±1/sqrt(fan_in)`` and drawn apart for the encoder and the decoder (``bias_init="uniform"``, what the
reference leaves them at), or start at 0 (``bias_init="zeros"``, which makes the initial decoder the exact inverse of
the encoder wherever the PReLUs are). The reference uses 4 layers of 512; the paper's text describes 3
(``n_layers=3``).

Attribute units: the code coordinate of attribute ``a`` is ``2 · (value − low) / (high − low) − 1`` with the
attribute's ``(low, high)`` range, so labels live in [−1, 1] as in the reference (min–max scaling). The reference
takes ``(low, high)`` as the minimum and maximum over the data; :func:`fit_label_ranges` computes them that way
(for every attribute, or only for those whose labels leave [0, 1], such as an age in years or a head yaw in
degrees), and :meth:`StyleAE.set_label_ranges` stores them in the model.
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


LABEL_SCALINGS = ("auto", "data", "ranges")
BIAS_INITS = ("uniform", "zeros")


def fit_label_ranges(labels: torch.Tensor, scaling: str = "auto",
                     ranges: Sequence[Sequence[float]] | None = None,
                     names: Sequence[str] | None = None) -> list[list[float]]:
    """The ``(low, high)`` of every label column of ``labels`` [N, k] (NaN = missing, left out).

    - ``"data"``: the minimum and maximum of each column over the data (the reference's min–max scaling, applied
      to every attribute; a 0/1 column gets ``(0, 1)``, a probability column its observed span);
    - ``"ranges"``: ``ranges`` as given (default ``(0, 1)`` each);
    - ``"auto"``: ``ranges`` when given; otherwise ``(0, 1)`` for the columns whose labels all lie in [0, 1]
      (probabilities and 0/1 labels keep 0.5 as the middle of their range) and the data's minimum and maximum for
      the others (continuous attributes such as an age in years or a yaw / pitch in degrees).

    A column scaled over the data must have two distinct known values.
    """
    if scaling not in LABEL_SCALINGS:
        raise ValueError(f"label scaling must be one of {LABEL_SCALINGS}, got {scaling!r}")
    labels = torch.as_tensor(labels, dtype=torch.float64)
    if labels.ndim != 2:
        raise ValueError(f"labels must be [N, k], got {tuple(labels.shape)}")
    count = labels.shape[1]
    names = list(names) if names is not None else [str(i) for i in range(count)]
    if scaling == "ranges" or (scaling == "auto" and ranges is not None):
        return _check_ranges(ranges, count)
    if scaling == "data" and ranges is not None:
        raise ValueError("label scaling 'data' takes the ranges from the data; give no label_ranges with it")
    fitted = []
    for j in range(count):
        known = labels[:, j][torch.isfinite(labels[:, j])]
        if scaling == "auto" and (len(known) == 0 or bool(((known >= 0) & (known <= 1)).all())):
            fitted.append([0.0, 1.0])
            continue
        if len(known) == 0 or float(known.max()) <= float(known.min()):
            raise ValueError(f"attribute {names[j]!r}: min-max scaling over the data needs two distinct label "
                             f"values, got {known.unique().tolist()[:3]}")
        fitted.append([float(known.min()), float(known.max())])
    return fitted


class StyleAE(nn.Module):
    """The StyleAE autoencoder (see the module docs).

    Args:
        latent_dim: D, the size of w (and of the code z).
        attribute_names: the k named attributes, in code order (the first k coordinates).
        hidden_dim: H, the width of the hidden layers (default D).
        n_layers: linear layers in the encoder (and in the decoder); at least 1.
        label_ranges: ``(low, high)`` of each attribute's values (default ``(0, 1)``: probabilities / 0-1 labels).
        prelu_init: initial PReLU slope of the encoder (the decoder's is its inverse).
        bias_init: ``"uniform"`` (the reference: ``nn.Linear``'s default ``U(±1/sqrt(fan_in))``, encoder and
            decoder drawn apart) or ``"zeros"``.
    """

    def __init__(self, latent_dim: int, attribute_names: Sequence[str], hidden_dim: int | None = None,
                 n_layers: int = 4, label_ranges: Sequence[Sequence[float]] | None = None, prelu_init: float = 0.9,
                 bias_init: str = "uniform"):
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
        if bias_init not in BIAS_INITS:
            raise ValueError(f"bias_init must be one of {BIAS_INITS}, got {bias_init!r}")
        ranges = _check_ranges(label_ranges, len(names))
        self.config: dict[str, Any] = dict(latent_dim=int(latent_dim), attribute_names=names, hidden_dim=hidden_dim,
                                           n_layers=int(n_layers), label_ranges=ranges, prelu_init=float(prelu_init),
                                           bias_init=bias_init)
        sizes = [latent_dim] + [hidden_dim] * (n_layers - 1) + [latent_dim]
        # nn.Linear draws its bias uniformly in ±1/sqrt(fan_in) (the reference keeps that); only weights are re-set
        encoder_linears = [nn.Linear(sizes[i], sizes[i + 1]) for i in range(n_layers)]
        decoder_linears = [nn.Linear(sizes[i + 1], sizes[i]) for i in reversed(range(n_layers))]
        for linear in encoder_linears:
            nn.init.xavier_normal_(linear.weight)
        with torch.no_grad():
            for linear, mirror in zip(decoder_linears, reversed(encoder_linears)):
                linear.weight.copy_(mirror.weight.t())
        if bias_init == "zeros":
            for linear in encoder_linears + decoder_linears:
                nn.init.zeros_(linear.bias)
        self.encoder = self._stack(encoder_linears, prelu_init)
        self.decoder = self._stack(decoder_linears, 1.0 / prelu_init)
        self.register_buffer("label_low", torch.tensor([r[0] for r in ranges]))
        self.register_buffer("label_high", torch.tensor([r[1] for r in ranges]))
        # the ranges live in the buffers (checkpoints); keep the config (written to StyleAE files) in step
        self.register_load_state_dict_post_hook(lambda module, _keys: module._ranges_from_buffers())

    def set_label_ranges(self, ranges: Sequence[Sequence[float]]) -> None:
        """Replace the attributes' ``(low, high)`` ranges (e.g. with :func:`fit_label_ranges` over the data)."""
        ranges = _check_ranges(ranges, self.n_attributes)
        with torch.no_grad():
            self.label_low.copy_(torch.tensor([r[0] for r in ranges]))
            self.label_high.copy_(torch.tensor([r[1] for r in ranges]))
        self.config["label_ranges"] = ranges

    def _ranges_from_buffers(self) -> None:
        self.config["label_ranges"] = [[float(low), float(high)]
                                       for low, high in zip(self.label_low.tolist(), self.label_high.tolist())]

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


__all__ = ["BIAS_INITS", "LABEL_SCALINGS", "StyleAE", "fit_label_ranges"]
