"""Bounds on sizes that come from outside (files, streams, options), checked before anything is allocated."""

from __future__ import annotations

import numbers
import reprlib
from typing import Any


def check_size(value: Any, what: str, limit: int | None = None, error: type[Exception] = ValueError) -> int:
    """``value`` as an ``int`` in ``1..limit`` (no upper bound when ``limit`` is ``None``); otherwise ``error``
    with one line naming ``what``. Booleans, floats, strings and containers are refused, not converted."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(f"{what} must be a positive integer, got {type(value).__name__} {_short(value)}")
    if value < 1 or (limit is not None and value > limit):
        bound = "positive" if limit is None else f"in 1..{limit}"
        raise error(f"{what} must be {bound}, got {int(value)}")
    return int(value)


def _short(value: Any) -> str:
    """A short one-line ``repr`` of ``value`` (bounded in length and nesting depth, so hostile values are safe)."""
    return " ".join(reprlib.repr(value).split())
