"""Run :mod:`._torchvision_compat` just before torchvision is first imported, in any import order.

Importing the package only registers a finder on ``sys.meta_path`` (no torch import, so ``--help`` stays fast).
When anything first imports ``torchvision`` -- directly or through lightning, torchmetrics, lpips, timm,
compressai -- the finder removes itself, installs the compatibility shim and lets the normal import go on.
``make env`` adds a ``.pth`` file that imports this package at interpreter start, so a script that begins with
``import lightning`` works in the project's environment too.
"""

from __future__ import annotations

import importlib.abc
import sys


class _TorchvisionFirstImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            remove_torchvision_hook()
            from . import _torchvision_compat

            _torchvision_compat.install()
        return None  # the regular finders import the module


_HOOK = _TorchvisionFirstImport()


def install_torchvision_hook() -> None:
    """Arm the hook (idempotent); when torchvision is already imported there is nothing left to repair."""
    if "torchvision" in sys.modules or _HOOK in sys.meta_path:
        return
    sys.meta_path.insert(0, _HOOK)


def remove_torchvision_hook() -> None:
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)
