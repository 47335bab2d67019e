"""How the generator's style vectors are grouped into the codec's scalable layers.

A StyleGAN2 generator of size S takes ``n_latent = 2 log2(S) - 2`` style vectors; vector ``j`` drives the
synthesis layers at resolution ``2 ** (j // 2 + 2)`` (two per resolution). The codec sends them as contiguous
layers in order: layer 1 (basic: pose, expression, shape), layer 2 (middle: identity, attributes), layer 3
(enhanced: low-level detail). A decoder holding layers 1..k fills the vectors of the missing layers with the
average style vector.

Splits (``layer_split``):

- ``"resolution"`` (default): coarse 4²-8², middle 16²-32², fine 64² and up (vectors 0-3 / 4-7 / 8-17 at 1024).
  Generators too small to have every band (below 64 px) fall back to ``"even"``.
- ``"psp"``: pSp's map2style grouping, vectors 0-2 / 3-6 / 7- (needs ``n_latent >= 8``).
- ``"even"``: three contiguous groups of (almost) equal size.
- a list of cut indices, e.g. ``[4, 8]`` (layers [0, 4), [4, 8), [8, n)); any number of layers.
"""

from __future__ import annotations

from typing import Sequence

LAYER_NAMES = ("basic", "middle", "enhanced")
SPLITS = ("resolution", "psp", "even")


def style_resolution(index: int) -> int:
    """The synthesis resolution driven by style vector ``index``."""
    return 2 ** (index // 2 + 2)


def _cuts_to_groups(cuts: Sequence[int], n_latent: int) -> list[list[int]]:
    bounds = [0, *[int(c) for c in cuts], n_latent]
    if any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise ValueError(f"layer cuts {list(cuts)} must be strictly increasing inside (0, {n_latent}) so that "
                         f"every layer holds at least one of the {n_latent} style vectors")
    return [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]


def even_cuts(n_latent: int, n_layers: int = 3) -> list[int]:
    """Cuts that split ``n_latent`` vectors into ``n_layers`` contiguous groups of (almost) equal size."""
    if n_latent < n_layers:
        raise ValueError(f"cannot split {n_latent} style vectors into {n_layers} layers")
    return [round(n_latent * k / n_layers) for k in range(1, n_layers)]


def layer_groups(n_latent: int, split: str | Sequence[int] = "resolution") -> list[list[int]]:
    """Style-vector indices of each scalable layer, in transmission order (see the module docstring)."""
    if n_latent < 1:
        raise ValueError(f"n_latent must be positive, got {n_latent}")
    if isinstance(split, str):
        if split == "resolution":
            cuts = [next((j for j in range(n_latent) if style_resolution(j) > limit), n_latent)
                    for limit in (8, 32)]
            if not 0 < cuts[0] < cuts[1] < n_latent:
                cuts = even_cuts(n_latent)
        elif split == "psp":
            if n_latent < 8:
                raise ValueError(f"the pSp split (0-2 / 3-6 / 7-) needs at least 8 style vectors, got {n_latent}")
            cuts = [3, 7]
        elif split == "even":
            cuts = even_cuts(n_latent)
        else:
            raise ValueError(f"layer_split must be one of {SPLITS} or a list of cut indices, got {split!r}")
        return _cuts_to_groups(cuts, n_latent)
    return _cuts_to_groups(list(split), n_latent)


def layer_name(layer: int) -> str:
    """``"basic"``, ``"middle"``, ``"enhanced"`` for layers 1-3, ``"layer<k>"`` beyond."""
    return LAYER_NAMES[layer - 1] if 1 <= layer <= len(LAYER_NAMES) else f"layer{layer}"
