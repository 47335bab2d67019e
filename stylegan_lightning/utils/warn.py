"""Warnings attributed to the caller's code rather than to a line inside the toolkit or the frameworks it runs in."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parents[1])
_FRAMEWORKS = ("torch", "torchmetrics", "lightning", "pytorch_lightning", "lightning_fabric", "jsonargparse")


def _internal_prefixes() -> tuple[str, ...]:
    """Folders of the toolkit and of the imported frameworks whose frames a warning skips."""
    prefixes = [_PACKAGE]
    for name in _FRAMEWORKS:
        module = sys.modules.get(name)
        location = getattr(module, "__file__", None)
        if location:
            prefixes.append(str(Path(location).resolve().parent))
    return tuple(prefixes)


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` with the stack level of the first frame outside the
    ``stylegan_lightning`` package and outside torch / torchmetrics / Lightning / jsonargparse: the warning names the
    line of the user's script, however deep inside the toolkit (or inside a metric's ``update`` wrapper) it was
    raised."""
    prefixes = _internal_prefixes()
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(prefixes):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


__all__ = ["warn_caller"]
