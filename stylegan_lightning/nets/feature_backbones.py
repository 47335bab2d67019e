"""The ``features`` part of torchvision's AlexNet and VGG16, with torchvision's layer indices, loaded from the
user's torchvision ImageNet state dicts (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``).

The layers are declared here (same modules, same indices as ``torchvision.models.alexnet().features`` /
``vgg16().features``), so no classifier is built and torchvision is not needed at run time. Only the
``features.*`` tensors of a file are used; its ``classifier.*`` tensors (the ImageNet head) are ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..serialization import CheckpointError, safe_torch_load
from ..weights import REGISTRY, resolve_weight
from ._state import load_state_strict

VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG16_POOLS = (4, 9, 16, 23, 30)  # indices of the max-pooling layers in vgg16().features


def alexnet_features() -> nn.Sequential:
    """torchvision ``alexnet().features`` (13 layers; ReLUs at 1, 4, 7, 9, 11)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
    )


def vgg16_features(pool: Callable[[int], nn.Module] | None = None) -> nn.Sequential:
    """torchvision ``vgg16().features`` (31 layers; ReLUs after every 3x3 conv). ``pool(channels)`` replaces the
    2x2 max-pooling layers (DISTS uses L2 pooling)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2) if pool is None else pool(channels))
        else:
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
            channels = item
    return nn.Sequential(*layers)


def load_torchvision_features(features: nn.Sequential, key: str, path: str | Path | None = None) -> nn.Sequential:
    """Load the ``features.*`` tensors of the torchvision state dict for registry ``key`` (``alexnet_imagenet``
    or ``vgg16_imagenet``) into ``features``, strictly. A missing file raises ``MissingWeightError`` naming it."""
    file = resolve_weight(key, path)
    purpose = f"{REGISTRY[key].purpose} ('{file}')"
    state = safe_torch_load(file, purpose)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{purpose}: expected a torchvision state dict, got {type(state).__name__}")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    other = sorted(k for k in state if not k.startswith(("features.", "classifier.")))
    if other:
        raise CheckpointError(f"{purpose}: not a torchvision {REGISTRY[key].filename} state dict (unexpected keys: "
                              f"{', '.join(other[:12])})")
    selected = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return load_state_strict(features, selected, purpose)


def random_torchvision_features(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-layout ``features.*`` state dict with random (default-initialised) weights, for tests and
    for checking a pipeline without ImageNet weights."""
    torch.manual_seed(seed)
    features = {"alexnet": alexnet_features, "vgg16": vgg16_features}[arch]()
    return {f"features.{k}": v for k, v in features.state_dict().items()}
