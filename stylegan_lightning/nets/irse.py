"""ArcFace IR-SE50: the identity network of pSp / e4e / HyperStyle (TreB1eN InsightFace_Pytorch layout).

The module and parameter names are those of ``model_irse.py`` / ``helpers.py`` in pixel2style2pixel and
encoder4editing, so ``model_ir_se50.pth`` (a raw state dict) loads with ``strict=True``::

    input_layer.{0: Conv2d(3, 64, 3), 1: BatchNorm2d, 2: PReLU}
    body.N.shortcut_layer            MaxPool2d(1, stride) or {0: Conv2d 1x1, 1: BatchNorm2d}
    body.N.res_layer.{0: BN, 1: Conv 3x3, 2: PReLU, 3: Conv 3x3 (stride), 4: BN, 5: SEModule(fc1, fc2)}
    output_layer.{0: BatchNorm2d(512), 1: Dropout, 2: Flatten, 3: Linear(512*7*7, 512), 4: BatchNorm1d(512)}

The body is an ``nn.Sequential`` of bottleneck units (3 / 4 / 14 / 3 for 50 layers): the pSp encoders take their
feature pyramid from ``body[6]``, ``body[20]`` and ``body[23]``. Input: RGB in [-1, 1], 112x112 (or 224x224).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .common import load_pretrained


class BlockSpec(NamedTuple):
    """One bottleneck unit: input channels, output channels (depth), stride of its second conv."""

    in_channel: int
    depth: int
    stride: int


def get_block(in_channel: int, depth: int, num_units: int, stride: int = 2) -> list[BlockSpec]:
    """A stage: one unit with ``stride`` changing the channels, then ``num_units - 1`` stride-1 units."""
    return [BlockSpec(in_channel, depth, stride)] + [BlockSpec(depth, depth, 1) for _ in range(num_units - 1)]


_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}


def get_blocks(num_layers: int) -> list[list[BlockSpec]]:
    """The four stages (64, 128, 256, 512 channels, each starting with stride 2) of IR-50 / 100 / 152."""
    if num_layers not in _UNITS:
        raise ValueError(f"num_layers must be one of {sorted(_UNITS)}, got {num_layers}")
    depths = (64, 128, 256, 512)
    ins = (64, 64, 128, 256)
    return [get_block(i, d, n) for i, d, n in zip(ins, depths, _UNITS[num_layers])]


class SEModule(nn.Module):
    """Squeeze-and-excitation: global average, 1x1 conv ``fc1`` (reduce), ReLU, 1x1 conv ``fc2``, sigmoid gate."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


def _shortcut(in_channel: int, depth: int, stride: int) -> nn.Module:
    if in_channel == depth:
        return nn.MaxPool2d(1, stride)  # identity, subsampled by the stride
    return nn.Sequential(nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth))


class BottleneckIR(nn.Module):
    """Improved residual unit (``bottleneck_IR``): BN, conv3x3, PReLU, conv3x3 (stride), BN; plus shortcut.
    With ``se=True`` a squeeze-and-excitation gate (reduction 16) ends the residual branch (``res_layer.5``)."""

    def __init__(self, in_channel: int, depth: int, stride: int, se: bool = False):
        super().__init__()
        self.shortcut_layer = _shortcut(in_channel, depth, stride)
        layers = [nn.BatchNorm2d(in_channel),
                  nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
                  nn.PReLU(depth),
                  nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
                  nn.BatchNorm2d(depth)]
        if se:
            layers.append(SEModule(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class BottleneckIRSE(BottleneckIR):
    """IR unit with the squeeze-and-excitation gate (``bottleneck_IR_SE``), the unit of IR-SE50 and pSp."""

    def __init__(self, in_channel: int, depth: int, stride: int):
        super().__init__(in_channel, depth, stride, se=True)


# names used by pSp / e4e code
bottleneck_IR = BottleneckIR
bottleneck_IR_SE = BottleneckIRSE


def make_body(num_layers: int = 50, mode: str = "ir_se") -> nn.Sequential:
    """The residual body (an ``nn.Sequential`` of bottleneck units) shared by the ArcFace net and pSp encoders."""
    if mode not in ("ir", "ir_se"):
        raise ValueError(f"mode must be 'ir' or 'ir_se', got {mode!r}")
    unit = BottleneckIRSE if mode == "ir_se" else BottleneckIR
    return nn.Sequential(*[unit(*spec) for stage in get_blocks(num_layers) for spec in stage])


def l2_norm(x: torch.Tensor, axis: int = 1) -> torch.Tensor:
    """``x`` divided by its L2 norm along ``axis``."""
    return x / torch.norm(x, 2, axis, True)


class Backbone(nn.Module):
    """ArcFace IR / IR-SE backbone (``model_irse.Backbone``): ``forward`` returns L2-normalised 512-d embeddings
    of RGB faces in [-1, 1] of size ``input_size`` (112 or 224)."""

    def __init__(self, input_size: int = 112, num_layers: int = 50, mode: str = "ir_se", drop_ratio: float = 0.4,
                 affine: bool = True):
        super().__init__()
        if input_size not in (112, 224):
            raise ValueError(f"input_size must be 112 or 224, got {input_size}")
        self.input_size = input_size
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, (3, 3), 1, 1, bias=False), nn.BatchNorm2d(64),
                                         nn.PReLU(64))
        self.body = make_body(num_layers, mode)
        spatial = input_size // 16
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(drop_ratio), nn.Flatten(),
                                          nn.Linear(512 * spatial * spatial, 512),
                                          nn.BatchNorm1d(512, affine=affine))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The un-normalised 512-d output (before the final L2 normalisation)."""
        return self.output_layer(self.body(self.input_layer(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2_norm(self.features(x))


def ir_se50(input_size: int = 112) -> Backbone:
    """An untrained IR-SE50 with the layout of ``model_ir_se50.pth`` (pSp's ``Backbone(112, 50, 'ir_se')``)."""
    return Backbone(input_size, num_layers=50, mode="ir_se", drop_ratio=0.6, affine=True)


def ir101(input_size: int = 112, affine: bool = True) -> Backbone:
    """An untrained IR-101 (plain IR units, 3 / 13 / 30 / 3): the backbone of CurricularFace's released model
    (``Backbone(112, 100, 'ir')`` in the face.evoLVe / TreB1eN layout above)."""
    return Backbone(input_size, num_layers=100, mode="ir", drop_ratio=0.4, affine=affine)


def load_curricularface(path: str | Path | None = None) -> Backbone:
    """CurricularFace IR-101 (registry key ``curricularface``: ``CurricularFace_Backbone.pth``, a state dict in the
    layout above, optionally under ``state_dict`` or with a ``module.`` prefix), loaded strictly, in eval mode.
    Releases differ in whether the last BatchNorm1d has an affine transform; the file decides. A missing file
    raises :class:`~stylegan_lightning.weights.MissingWeightError`."""
    from ..serialization import safe_torch_load
    from ..weights import resolve_weight
    from .common import load_state_strict, unwrap_state_dict

    purpose = "CurricularFace IR-101 weights"
    file = resolve_weight("curricularface", path)
    state = unwrap_state_dict(safe_torch_load(file, purpose), f"{purpose} ('{file}')")
    net = ir101(affine="output_layer.4.weight" in state)
    load_state_strict(net, state, f"{purpose} '{file}'")
    return net.eval()


def load_ir_se50(path: str | Path | None = None) -> Backbone:
    """IR-SE50 with the ArcFace weights ``model_ir_se50.pth`` (registry key ``arcface_ir_se50``), loaded strictly,
    in eval mode. A missing file raises :class:`~stylegan_lightning.weights.MissingWeightError`."""
    net = ir_se50()
    load_pretrained(net, "arcface_ir_se50", path, "ArcFace IR-SE50 weights")
    return net.eval()


__all__ = ["Backbone", "BlockSpec", "BottleneckIR", "BottleneckIRSE", "SEModule", "bottleneck_IR",
           "bottleneck_IR_SE", "get_block", "get_blocks", "ir101", "ir_se50", "l2_norm", "load_curricularface",
           "load_ir_se50", "make_body"]
