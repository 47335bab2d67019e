"""Weight-file and input helpers of the identity and parsing nets (strict loading and the frozen base class
live in :mod:`._state`, shared with the landmark and perceptual nets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..serialization import CheckpointError, safe_torch_load
from ..weights import resolve_weight
from ._state import load_state_strict

# containers in which public repositories wrap their state dicts
_WRAPPER_KEYS = ("state_dict", "net_state_dict", "model_state_dict", "model", "net")


def unwrap_state_dict(obj: Any, purpose: str) -> dict[str, torch.Tensor]:
    """The tensor dict inside ``obj``: a raw state dict, or one under a usual wrapper key (``state_dict``,
    ``net_state_dict``, ...). A ``module.`` prefix (``DataParallel``) shared by every key is removed."""
    if isinstance(obj, Mapping) and obj and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = sorted(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{purpose}: expected a state dict (name -> tensor), found {found}")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_pretrained(module: nn.Module, key: str, path: str | Path | None, purpose: str) -> nn.Module:
    """Find the registry file ``key`` (or ``path``), read it with ``torch.load(weights_only=True)`` and load it
    strictly into ``module``. A missing file raises :class:`~stylegan_lightning.weights.MissingWeightError`."""
    file = resolve_weight(key, path)
    state = unwrap_state_dict(safe_torch_load(file, purpose), f"{purpose} ('{file}')")
    return load_state_strict(module, state, f"{purpose} '{file}'")


def check_images(images: torch.Tensor, what: str) -> None:
    """Require a floating ``[B, 3, H, W]`` image batch."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{what} expects images of shape [B, 3, H, W] in [-1, 1], got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"{what} expects floating-point images in [-1, 1], got dtype {images.dtype}")
