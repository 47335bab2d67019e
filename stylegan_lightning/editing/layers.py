"""Which W+ layers an edit touches: parsing and resolving layer selections.

A selection (``LayerSpec``) is one of

- ``None`` or ``"all"``: every layer;
- an ``int`` (one layer), a ``range``, a list/tuple of ints;
- a ``slice`` (Python semantics, e.g. ``slice(0, 8)`` = layers 0..7);
- a string of comma-separated parts: ``"5"``, ``"0-7"`` (inclusive, the StyleGAN / GANSpace convention:
  layers 0..7), ``"8-"`` (layer 8 to the last), ``"0:8"`` / ``":8"`` / ``"8:"`` (half-open, Python slicing).

Selections are stored in a saveable form (:func:`normalize_layers`: ``None``, a string or a list of ints) and
turned into sorted layer indices once the number of W+ layers is known (:func:`resolve_layers`).
"""

from __future__ import annotations

from typing import Sequence, Union

LayerSpec = Union[None, str, int, slice, range, Sequence[int]]


def _check_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"layer indices must be integers, got {value!r}")
    return value


def normalize_layers(spec: LayerSpec) -> None | str | list[int]:
    """``spec`` in a plain-data form that can be saved: ``None`` (all layers), a string, or a list of ints.

    Strings are checked for syntax here (their range is checked by :func:`resolve_layers`); slices become
    ``"start:stop[:step]"`` strings.
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        text = spec.replace(" ", "")
        if text.lower() in ("", "all"):
            return None
        _parse_string(text, None)  # syntax check
        return text
    if isinstance(spec, slice):
        parts = ["" if v is None else str(_check_int(v)) for v in (spec.start, spec.stop)]
        if spec.step is not None:
            parts.append(str(_check_int(spec.step)))
        return ":".join(parts)
    if isinstance(spec, range):
        return list(spec)
    if isinstance(spec, int) and not isinstance(spec, bool):
        return [spec]
    if isinstance(spec, Sequence):
        return [_check_int(v) for v in spec]
    raise TypeError(f"unsupported layer selection {spec!r}: use None, an int, a list, a range, a slice or a "
                    "string such as '0-7'")


def _parse_string(text: str, n_latent: int | None) -> list[int]:
    """Indices of a layer string; with ``n_latent=None`` only the syntax is checked (open ends allowed)."""
    indices: list[int] = []
    for part in text.split(","):
        if not part:
            raise ValueError(f"empty part in layer selection {text!r}")
        try:
            if ":" in part:
                fields = part.split(":")
                if len(fields) > 3:
                    raise ValueError
                values = [int(f) if f else None for f in fields]
                if n_latent is not None:
                    indices += list(range(n_latent)[slice(*values)])
            elif "-" in part[1:]:
                first, last = part.split("-", 1)
                start = int(first)
                stop = int(last) if last else None
                if start < 0 or (stop is not None and stop < start):
                    raise ValueError
                if n_latent is not None:
                    indices += list(range(start, (n_latent - 1 if stop is None else stop) + 1))
            else:
                indices.append(int(part))
        except ValueError:
            raise ValueError(f"cannot read layer selection {text!r} (part {part!r}); expected e.g. '4', '0-7', "
                             "'8-', '0:8' or a comma-separated list of those") from None
    return indices


def resolve_layers(spec: LayerSpec, n_latent: int) -> list[int] | None:
    """Sorted, distinct layer indices of ``spec`` for a W+ code with ``n_latent`` layers (``None`` = all).

    Negative ints count from the end (as in Python); every index must lie in ``[-n_latent, n_latent)``.
    """
    spec = normalize_layers(spec)
    if spec is None:
        return None
    raw = _parse_string(spec, n_latent) if isinstance(spec, str) else list(spec)
    bad = [i for i in raw if not -n_latent <= i < n_latent]
    if bad:
        raise ValueError(f"layer selection {spec!r} names layers {bad} outside the {n_latent} W+ layers "
                         f"(0..{n_latent - 1})")
    indices = sorted({i % n_latent for i in raw})
    if not indices:
        raise ValueError(f"layer selection {spec!r} selects no layer of the {n_latent} W+ layers")
    return indices
