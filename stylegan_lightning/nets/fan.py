"""FAN: the stacked-hourglass Face Alignment Network (Bulat & Tzimiropoulos, ICCV 2017), 2D-FAN-4 layout.

Parameter names and shapes are those of ``1adrianb/face-alignment`` (``face_alignment/models.py``), so its
state dicts load with strict checking: ``conv1``/``bn1`` stem, ``conv2``-``conv4`` residual ConvBlocks, then per
stack ``i``: hourglass ``m{i}`` (``b1_{L}``, ``b2_{L}``, ``b3_{L}`` for levels 4..1 and ``b2_plus_1``),
``top_m_{i}``, ``conv_last{i}``, ``bn_end{i}``, heatmap head ``l{i}`` and, between stacks, ``bl{i}`` / ``al{i}``.

Input: RGB in [0, 1], 256 x 256 (any multiple of 64 works); output: one [B, 68, H/4, W/4] heatmap stack per
hourglass (the last is the most accurate).

Weights. Only plain state dicts are read (``torch.load(weights_only=True)``): the legacy ``2DFAN-4.pth.tar``
(a dict with ``'state_dict'`` and ``module.``-prefixed keys) and the v1.0 ``2DFAN4-11f355bf06.pth.tar`` (raw).
Current face-alignment releases ship TorchScript archives (``2DFAN4-cd938726ad.zip``); those run code stored in
the file and are refused -- export their weights once with ``torch.jit.load(FILE).state_dict()`` (see
:func:`load_fan_state_dict`).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..serialization import CheckpointError, UnsafeCheckpointError, require_file, safe_torch_load
from ._state import load_state_strict

FAN_INPUT_SIZE = 256
POOLINGS = ("avg", "max")


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)


class ConvBlock(nn.Module):
    """Hierarchical, parallel multi-scale residual block: three pre-activated 3x3 convs giving C/2, C/4, C/4
    channels, concatenated and added to the (1x1-projected when the width changes) input."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        half, quarter = out_channels // 2, out_channels // 4
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = _conv3x3(in_channels, half)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv2 = _conv3x3(half, quarter)
        self.bn3 = nn.BatchNorm2d(quarter)
        self.conv3 = _conv3x3(quarter, quarter)
        self.downsample = None
        if in_channels != out_channels:
            self.downsample = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(),
                                            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(F.relu(self.bn1(x)))
        out2 = self.conv2(F.relu(self.bn2(out1)))
        out3 = self.conv3(F.relu(self.bn3(out2)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.cat((out1, out2, out3), 1) + residual


class HourGlass(nn.Module):
    """Recursive hourglass of ``depth`` levels: at each level an upper ConvBlock (``b1_L``) at full resolution and
    a lower branch (pool 2x, ``b2_L``, the next level or ``b2_plus_1``, ``b3_L``, nearest 2x upsampling)."""

    def __init__(self, depth: int = 4, features: int = 256, pooling: str = "avg"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.depth, self.pooling = depth, pooling
        self._build(depth, features)

    def _build(self, level: int, features: int) -> None:
        self.add_module(f"b1_{level}", ConvBlock(features, features))
        self.add_module(f"b2_{level}", ConvBlock(features, features))
        if level > 1:
            self._build(level - 1, features)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(features, features))
        self.add_module(f"b3_{level}", ConvBlock(features, features))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        upper = self._modules[f"b1_{level}"](x)
        pool = F.avg_pool2d if self.pooling == "avg" else F.max_pool2d
        lower = self._modules[f"b2_{level}"](pool(x, 2, stride=2))
        lower = self._level(level - 1, lower) if level > 1 else self._modules[f"b2_plus_{level}"](lower)
        lower = self._modules[f"b3_{level}"](lower)
        return upper + F.interpolate(lower, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class FAN(nn.Module):
    """Face Alignment Network with ``num_modules`` stacked hourglasses (2D-FAN-4: ``num_modules=4``).

    ``pooling`` is the downsampling inside the stem and the hourglasses: ``"avg"`` in face-alignment since its
    2018 releases (and in its TorchScript models), ``"max"`` in its very first PyTorch code. Use the one the
    weights were trained with.
    """

    def __init__(self, num_modules: int = 4, num_landmarks: int = 68, pooling: str = "avg"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.num_modules, self.num_landmarks, self.pooling = num_modules, num_landmarks, pooling
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, 256)
        for i in range(num_modules):
            self.add_module(f"m{i}", HourGlass(4, 256, pooling))
            self.add_module(f"top_m_{i}", ConvBlock(256, 256))
            self.add_module(f"conv_last{i}", nn.Conv2d(256, 256, kernel_size=1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(256))
            self.add_module(f"l{i}", nn.Conv2d(256, num_landmarks, kernel_size=1))
            if i < num_modules - 1:
                self.add_module(f"bl{i}", nn.Conv2d(256, 256, kernel_size=1))
                self.add_module(f"al{i}", nn.Conv2d(num_landmarks, 256, kernel_size=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Heatmaps [B, num_landmarks, H/4, W/4] of every stack, for RGB input in [0, 1]."""
        pool = F.avg_pool2d if self.pooling == "avg" else F.max_pool2d
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.conv4(self.conv3(pool(self.conv2(x), 2, stride=2)))
        previous, outputs = x, []
        for i in range(self.num_modules):
            features = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](previous))
            features = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](features)))
            heatmaps = self._modules[f"l{i}"](features)
            outputs.append(heatmaps)
            if i < self.num_modules - 1:
                previous = previous + self._modules[f"bl{i}"](features) + self._modules[f"al{i}"](heatmaps)
        return outputs


TORCHSCRIPT_HELP = (
    "TorchScript archives (current face-alignment releases ship 2DFAN4-*.zip this way) contain code that runs "
    "when loaded, so they are never opened here. If the file comes from a source you trust, export its weights "
    "once yourself:\n    python -c \"import torch; torch.save(torch.jit.load('{path}', map_location='cpu')"
    ".state_dict(), '2DFAN-4.pth.tar')\"\nand pass the new file (or put it in the weights folder)."
)


def is_torchscript_archive(path: str | Path) -> bool:
    """True for a ``torch.jit.save`` archive (a zip holding ``code/`` and ``constants.pkl``); plain
    ``torch.save`` zips hold only ``data.pkl`` and tensor data. The file is listed, never unpickled."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.endswith("/constants.pkl") or "/code/" in name for name in names)


def fan_state_dict(checkpoint: Any, purpose: str = "FAN landmark weights") -> dict[str, torch.Tensor]:
    """The FAN tensors of a loaded checkpoint: a raw state dict or one under ``'state_dict'``, with the
    ``module.`` prefix of ``nn.DataParallel`` removed."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{purpose}: expected a state dict, got {type(checkpoint).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def infer_fan_config(state: Mapping[str, torch.Tensor], purpose: str = "FAN landmark weights") -> dict[str, int]:
    """``num_modules`` (hourglasses ``m0..``) and ``num_landmarks`` (rows of ``l0.weight``) of a FAN state."""
    stacks = {int(match.group(1)) for key in state if (match := re.match(r"m(\d+)\.", key))}
    if not stacks or "l0.weight" not in state:
        raise CheckpointError(f"{purpose}: not a FAN state dict (no hourglass 'm0.*' or heatmap head 'l0.weight'"
                              f"; first keys: {', '.join(list(state)[:5])})")
    return {"num_modules": max(stacks) + 1, "num_landmarks": int(state["l0.weight"].shape[0])}


def load_fan_state_dict(path: str | Path, purpose: str = "FAN landmark weights") -> dict[str, torch.Tensor]:
    """Read a FAN state dict from ``path`` safely; TorchScript archives are refused with export instructions."""
    path = require_file(path, purpose)
    if is_torchscript_archive(path):
        raise UnsafeCheckpointError(f"{purpose}: '{path}' is a TorchScript archive, not a state dict. "
                                    + TORCHSCRIPT_HELP.format(path=path))
    return fan_state_dict(safe_torch_load(path, purpose), purpose)


def load_fan(path: str | Path, pooling: str = "avg", purpose: str = "FAN landmark weights") -> FAN:
    """A FAN built from the shapes in ``path`` with its weights loaded strictly (eval mode)."""
    state = load_fan_state_dict(path, purpose)
    fan = FAN(**infer_fan_config(state, purpose), pooling=pooling)
    return load_state_strict(fan, state, f"{purpose} ('{path}')").eval()
