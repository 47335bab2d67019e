"""Progress bars of the tools that work through folders (tqdm on stderr, shown only on a terminal)."""

from __future__ import annotations

import sys


def progress(total: int, unit: str = "img"):
    """A progress bar with rate and ETA counting ``unit`` up to ``total`` (``bar.update(n)``); silent when stderr
    is not a terminal (logs, pipes, tests), so output stays machine-readable there."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True, file=sys.stderr)


__all__ = ["progress"]
