"""The IR / IR-SE backbone shared by the pSp, e4e and W encoders, in the official module layout.

The encoders keep the backbone's modules as their own top-level attributes, exactly as pixel2style2pixel,
encoder4editing, ReStyle and HyperStyle do, so their checkpoints load with ``strict=True``::

    input_layer.{0: Conv2d(input_nc, channels[0], 3, bias=False), 1: BatchNorm2d, 2: PReLU}
    body.N   bottleneck units from :mod:`stylegan_lightning.nets.irse` (``bottleneck_IR`` / ``bottleneck_IR_SE``)

The body is a sequence of stages; stage ``i`` has ``blocks[i]`` units of ``channels[i]`` channels and starts with
a stride-2 unit. The official configuration is IR-SE50: blocks (3, 4, 14, 3), channels (64, 128, 256, 512),
which is also the body of the ArcFace ``model_ir_se50.pth`` the official encoders start from. The feature taps
c1 / c2 / c3 are the outputs of the last three stages (official: ``body[6]``, ``body[20]``, ``body[23]``; 64x64,
32x32 and 16x16 for a 256x256 input). :data:`SMALL_BLOCKS` / :data:`SMALL_CHANNELS` give a CPU-sized variant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.irse import BottleneckIR, BottleneckIRSE, get_block

OFFICIAL_BLOCKS = (3, 4, 14, 3)
OFFICIAL_CHANNELS = (64, 128, 256, 512)
SMALL_BLOCKS = (1, 1, 1, 1)
SMALL_CHANNELS = (16, 32, 64, 128)
MODES = ("ir", "ir_se")
SE_REDUCTION = 16  # squeeze-and-excitation reduction of nets.irse.SEModule


@dataclass(frozen=True)
class BackboneConfig:
    """Shape of an IR / IR-SE backbone.

    Args:
        blocks: bottleneck units per stage (at least 3 stages: the encoders tap the last three).
        channels: output channels per stage; ``channels[0]`` is also the width of the input layer.
        mode: ``"ir_se"`` (units with a squeeze-and-excitation gate, the official choice) or ``"ir"``.
        input_nc: input channels (3 for RGB; 6 for ReStyle-style image + reconstruction inputs).
    """

    blocks: tuple[int, ...] = OFFICIAL_BLOCKS
    channels: tuple[int, ...] = OFFICIAL_CHANNELS
    mode: str = "ir_se"
    input_nc: int = 3

    def __post_init__(self):
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.blocks) != len(self.channels) or len(self.blocks) < 3:
            raise ValueError(f"blocks and channels need the same length >= 3 (the encoders tap the last three "
                             f"stages), got blocks={self.blocks}, channels={self.channels}")
        if min(self.blocks) < 1:
            raise ValueError(f"every stage needs at least one unit, got blocks={self.blocks}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        smallest = SE_REDUCTION if self.mode == "ir_se" else 1
        if min(self.channels) < smallest:
            raise ValueError(f"channels must be >= {smallest} in mode {self.mode!r} (squeeze-and-excitation "
                             f"reduction {SE_REDUCTION}), got {self.channels}")
        if self.input_nc < 1:
            raise ValueError(f"input_nc must be positive, got {self.input_nc}")

    @property
    def stage_ends(self) -> tuple[int, ...]:
        """Index in ``body`` of the last unit of every stage (official: 2, 6, 20, 23)."""
        ends, total = [], 0
        for units in self.blocks:
            total += units
            ends.append(total - 1)
        return tuple(ends)

    @property
    def taps(self) -> tuple[int, int, int]:
        """``body`` indices of the c1 / c2 / c3 feature taps (official: 6, 20, 23)."""
        return self.stage_ends[-3:]  # type: ignore[return-value]

    @property
    def reduction(self) -> int:
        """Input size / c3 size (every stage halves the resolution: 16 for four stages)."""
        return 2 ** len(self.blocks)

    @property
    def width(self) -> int:
        """Channels of c3, the feature pyramid's width (512 officially)."""
        return self.channels[-1]

    def is_official(self) -> bool:
        """Whether the body is IR-SE50 (the layout of the ArcFace weights), whatever ``input_nc`` is."""
        return self.blocks == OFFICIAL_BLOCKS and self.channels == OFFICIAL_CHANNELS and self.mode == "ir_se"

    def as_dict(self) -> dict:
        return {"blocks": list(self.blocks), "channels": list(self.channels), "mode": self.mode,
                "input_nc": self.input_nc}


def make_stages(config: BackboneConfig) -> nn.Sequential:
    """The residual body: ``nets.irse`` bottleneck units, stage by stage (stride 2 at each stage start)."""
    unit = BottleneckIRSE if config.mode == "ir_se" else BottleneckIR
    units = []
    in_channel = config.channels[0]
    for depth, count in zip(config.channels, config.blocks):
        units += [unit(spec.in_channel, spec.depth, spec.stride) for spec in get_block(in_channel, depth, count)]
        in_channel = depth
    return nn.Sequential(*units)


def upsample_add(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """FPN merge: ``top`` bilinearly resized to ``lateral``'s size (``align_corners=True``, as pSp) plus it."""
    return F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral


class IRSEBackbone(nn.Module):
    """Base class of the encoders: owns ``input_layer`` and ``body`` under their official names.

    Subclasses add their heads; :meth:`backbone_features` returns the c1 / c2 / c3 taps and
    :meth:`backbone_output` the last feature map.
    """

    def __init__(self, config: BackboneConfig):
        super().__init__()
        self.config = config
        first = config.channels[0]
        self.input_layer = nn.Sequential(nn.Conv2d(config.input_nc, first, (3, 3), 1, 1, bias=False),
                                         nn.BatchNorm2d(first), nn.PReLU(first))
        self.body = make_stages(config)

    @property
    def input_nc(self) -> int:
        return self.config.input_nc

    def check_input(self, x: torch.Tensor, size: int | None) -> None:
        """Require ``[B, input_nc, size, size]`` (any spatial size when ``size`` is ``None``)."""
        ok = isinstance(x, torch.Tensor) and x.ndim == 4 and x.shape[1] == self.input_nc
        if ok and size is not None:
            ok = tuple(x.shape[-2:]) == (size, size)
        if not ok:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            spatial = f"{size}, {size}" if size is not None else "H, W"
            raise ValueError(f"{type(self).__name__} expects input of shape [B, {self.input_nc}, {spatial}], "
                             f"got {shape} (LatentEncoder resizes images to the encoder's input size)")

    def backbone_output(self, x: torch.Tensor) -> torch.Tensor:
        """The output of the last body unit."""
        return self.body(self.input_layer(x))

    def backbone_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(c1, c2, c3)``: the outputs of the last three stages (``body[6]``, ``body[20]``, ``body[23]``)."""
        taps = self.config.taps
        found = []
        x = self.input_layer(x)
        for index, unit in enumerate(self.body):
            x = unit(x)
            if index in taps:
                found.append(x)
        return found[0], found[1], found[2]


# ------------------------------------------------------------------------------------- reading a state dict
_UNIT_CONV = re.compile(r"body\.(\d+)\.res_layer\.1\.weight")


def infer_backbone_config(state: Mapping[str, torch.Tensor]) -> BackboneConfig:
    """The :class:`BackboneConfig` a state dict was written with (stages from the unit widths, SE gates from
    ``res_layer.5``, ``input_nc`` from ``input_layer.0.weight``). Whatever cannot be seen falls back to the
    official value, so that strict loading afterwards names what is missing rather than failing here."""
    depths: dict[int, int] = {}
    for key, value in state.items():
        match = _UNIT_CONV.fullmatch(key)
        if match and isinstance(value, torch.Tensor) and value.ndim == 4:
            depths[int(match.group(1))] = int(value.shape[0])
    input_weight = state.get("input_layer.0.weight")
    input_nc = int(input_weight.shape[1]) if isinstance(input_weight, torch.Tensor) and input_weight.ndim == 4 else 3
    se = any(key.startswith("body.") and ".res_layer.5." in key for key in state)
    mode = "ir_se" if se or not depths else "ir"
    if not depths:
        return BackboneConfig(OFFICIAL_BLOCKS, OFFICIAL_CHANNELS, mode, input_nc)
    blocks: list[int] = []
    channels: list[int] = []
    previous = None
    for index in range(max(depths) + 1):
        depth = depths.get(index, previous)  # a unit missing from the file stays in its neighbour's stage
        if depth is None:
            depth = depths[min(depths)]
        if depth != previous:
            blocks.append(0)
            channels.append(depth)
        blocks[-1] += 1
        previous = depth
    try:
        return BackboneConfig(tuple(blocks), tuple(channels), mode, input_nc)
    except ValueError:  # not a layout we can build: let strict loading report the differences
        return BackboneConfig(OFFICIAL_BLOCKS, OFFICIAL_CHANNELS, mode, input_nc)


__all__ = ["MODES", "OFFICIAL_BLOCKS", "OFFICIAL_CHANNELS", "SMALL_BLOCKS", "SMALL_CHANNELS", "BackboneConfig",
           "IRSEBackbone", "infer_backbone_config", "make_stages", "upsample_add"]
