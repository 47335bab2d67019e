"""Moving latent codes along a :class:`~stylegan_lightning.editing.Direction`.

- ``mode="relative"`` (the default; InterFaceGAN on W+, e4e, HyperStyle): ``w' = w + strength * vector`` on the
  selected layers. The strength is in units of the vector's norm (unit for fitted directions and InterFaceGAN
  files; the file's own norm for e4e / HyperStyle files).
- ``mode="absolute"`` (InterFaceGAN's ``linear_interpolate`` on W): each selected w is moved along the unit
  normal until its signed distance to the hyperplane (:meth:`Direction.distance`, which includes the intercept)
  equals ``strength``.

Shapes: W ``[B, D]`` or W+ ``[B, n, D]``. Editing all layers (``layers`` ``None`` / ``"all"``) keeps the input's
shape. Any other layer selection turns a W input into W+ ``[B, n, D]`` (pass ``n_latent``, e.g.
``generator.n_latent``); a W+ input stays W+. In relative mode strength 0 returns the input values unchanged
(expanded to W+ when a W input is edited on a layer selection).
"""

from __future__ import annotations

from typing import Sequence

import torch

from .directions import Direction
from .layers import LayerSpec, normalize_layers, resolve_layers

MODES = ("relative", "absolute")


def _direction(direction: Direction | torch.Tensor) -> Direction:
    return direction if isinstance(direction, Direction) else Direction(direction)


def layer_mask(layers: LayerSpec, n_latent: int, like: torch.Tensor) -> torch.Tensor | None:
    """A [n_latent, 1] 0/1 mask of the selected layers (``None`` when all layers are selected)."""
    indices = resolve_layers(layers, n_latent)
    if indices is None:
        return None
    mask = torch.zeros(n_latent, 1, dtype=like.dtype, device=like.device)
    mask[indices] = 1
    return mask


def _strength(strength: float | torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Strength as a tensor broadcastable over ``w``'s per-code values ([], or [B] -> [B, 1(, 1)])."""
    value = torch.as_tensor(strength, dtype=w.dtype, device=w.device)
    if value.ndim == 0:
        return value
    if value.ndim == 1 and value.shape[0] == w.shape[0]:
        return value.reshape(-1, *([1] * (w.ndim - 1)))
    raise ValueError(f"strength must be a number or one value per code ([{w.shape[0]}]), got {tuple(value.shape)}")


def apply_direction(
    w: torch.Tensor,
    direction: Direction | torch.Tensor,
    strength: float | torch.Tensor = 1.0,
    layers: LayerSpec = None,
    n_latent: int | None = None,
    mode: str = "relative",
) -> torch.Tensor:
    """Edit W ``[B, D]`` or W+ ``[B, n, D]`` codes along ``direction`` (see the module docs).

    Args:
        w: the codes (not modified; gradients flow through).
        direction: a :class:`Direction` or a vector [D] / [1, D].
        strength: a number, or one value per code ([B]).
        layers: W+ layers to edit (default: ``direction.layers``; ``"all"`` forces every layer).
        n_latent: number of W+ layers; needed when a W input is edited on a layer subset.
        mode: ``"relative"`` (``w + strength * vector``) or ``"absolute"`` (set the signed distance).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if w.ndim not in (2, 3):
        raise ValueError(f"expected W [B, D] or W+ [B, n, D] codes, got shape {tuple(w.shape)}")
    direction = _direction(direction)
    if w.shape[-1] != direction.dim:
        raise ValueError(f"direction {direction.name!r} has {direction.dim} dimensions, the codes have {w.shape[-1]}")
    spec = direction.layers if layers is None else layers
    mask = None
    if normalize_layers(spec) is not None:  # a layer selection: W becomes W+
        if w.ndim == 2:
            if n_latent is None:
                raise ValueError("editing a W code on a layer subset turns it into W+: pass n_latent "
                                 "(the generator's n_latent)")
            w = w.unsqueeze(1).expand(-1, n_latent, -1)
        elif n_latent is not None and n_latent != w.shape[1]:
            raise ValueError(f"n_latent={n_latent} but the W+ codes have {w.shape[1]} layers")
        mask = layer_mask(spec, w.shape[1], w)
    vector = direction.vector.to(w)
    value = _strength(strength, w)
    if mode == "relative":
        delta = value * vector
    else:
        distance = direction.distance(w)  # [B] or [B, n]
        target = value if value.ndim == 0 else value.squeeze(-1)
        delta = (target - distance).unsqueeze(-1) * (vector / vector.norm())
    return w + (delta if mask is None else delta * mask)


def apply_strengths(
    w: torch.Tensor,
    direction: Direction | torch.Tensor,
    strengths: Sequence[float] | torch.Tensor,
    layers: LayerSpec = None,
    n_latent: int | None = None,
    mode: str = "relative",
) -> torch.Tensor:
    """Every code edited with every strength: ``[S, B, ...]`` (``out[s] == apply_direction(w, ..., strengths[s])``),
    e.g. for an edit grid with one row per strength."""
    values = torch.as_tensor(strengths, dtype=w.dtype, device=w.device).reshape(-1)
    return torch.stack([apply_direction(w, direction, s, layers, n_latent, mode) for s in values.unbind(0)])
