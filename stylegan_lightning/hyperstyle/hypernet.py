"""HyperStyle's hypernetwork: (image ⊕ reconstruction) -> per-slot offsets for the generator's conv kernels.

Architecture (module names follow the official ``SharedWeightsHyperNetResNet`` so ``hypernet.*`` weights of an
official checkpoint load strictly):

- stem: ``conv1`` (7×7, stride 2, ``input_nc`` -> 64, no bias), ``bn1``, ``relu`` (PReLU(64)); no max-pool.
- ``body``: the 16 BasicBlocks of a ResNet-34 (torchvision ``layer1..layer4`` flattened into one Sequential,
  ``body.0`` .. ``body.15``): 512 channels at 1/16 of the input size (16×16 for 256² inputs).
- ``refinement_blocks``: one entry per generator weight slot (``None`` for slots that are not tuned):
  :class:`HyperRefinementBlock` for the "shared" slots (square 3×3 convs at the widest channel count, the
  official 0,2,3,5,6,8,9,11,12), all of which feed their 512-d code through one :class:`SharedWeightsHypernet`
  (``shared_weight_hypernet``) that emits a full [out, in, 3, 3] offset; :class:`RefinementBlock` otherwise:
  per-(out, in) offsets repeated over the kernel window for 3×3 convs, a 1×1 offset for toRGB convs.

Slot numbering is the generator's (:attr:`Generator.weight_slot_shapes`): 0 ``conv1``, 1 ``to_rgb1``, then
(up-conv, conv, toRGB) per resolution from 8². The hypernetwork itself is independent of the generator
size apart from the slot shapes, and works for any input size ``16 · 2^k`` (features ``2^k`` × ``2^k``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet34

from ..serialization import CheckpointError, safe_torch_load
from ..stylegan2.generator import channel_layout
from ..stylegan2.layers import EqualLinear

TO_RGB_LAYERS = [1, 4, 7, 10, 13, 16, 19, 22, 25]  # the official table (1024 px; a prefix of it for smaller sizes)
OFFICIAL_LAYERS_TO_TUNE = [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24]  # released command (1024)
OFFICIAL_SHARED_LAYERS = [0, 2, 3, 5, 6, 8, 9, 11, 12]
FEATURE_CHANNELS = 512  # ResNet-34 layer4 width = the code width of every refinement head
BODY_REDUCTION = 16  # stride-2 stem + layer2..layer4


def to_rgb_slots(n_slots: int) -> list[int]:
    """toRGB slot indices among ``n_slots`` (1, 4, 7, ...)."""
    return [s for s in range(n_slots) if s == 1 or (s >= 4 and (s - 4) % 3 == 0)]


def slot_resolution(slot: int) -> int:
    """Feature-map resolution a slot's conv produces (4 for slots 0 and 1, then 8, 8, 8, 16, ...)."""
    return 4 if slot < 2 else 2 ** (3 + (slot - 2) // 3)


def default_layers_to_tune(n_slots: int) -> list[int]:
    """Every non-toRGB slot (the official released configuration; = :data:`OFFICIAL_LAYERS_TO_TUNE` at 1024)."""
    rgb = set(to_rgb_slots(n_slots))
    return [s for s in range(n_slots) if s not in rgb]


DEFAULT_LAYERS_TO_TUNE = default_layers_to_tune


def medium_fine_layers_to_tune(n_slots: int) -> list[int]:
    """The paper's medium + fine selection: non-toRGB slots at 16² and above (coarse 4²–8² left untouched)."""
    return [s for s in default_layers_to_tune(n_slots) if slot_resolution(s) >= 16]


def parse_layers_to_tune(value: str | Sequence[int] | None, n_slots: int) -> list[int]:
    """Normalise ``layers_to_tune``: ``None`` -> default; ``"medium_fine"`` -> paper selection; ``"all"`` or
    ``""`` (the official empty string) -> every slot; a comma string (official opts) or a list of ints."""
    if value is None:
        return default_layers_to_tune(n_slots)
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "all"):
            return list(range(n_slots))
        if text in ("medium_fine", "paper"):
            return medium_fine_layers_to_tune(n_slots)
        if text == "default":
            return default_layers_to_tune(n_slots)
        try:
            value = [int(part) for part in text.split(",") if part.strip()]
        except ValueError as error:
            raise ValueError(f"layers_to_tune {value!r} is not a comma-separated list of slot indices") from error
    layers = sorted({int(v) for v in value})
    bad = [v for v in layers if not 0 <= v < n_slots]
    if bad:
        raise ValueError(f"layers_to_tune {bad} out of range: the generator has {n_slots} weight slots")
    if not layers:
        raise ValueError("layers_to_tune is empty")
    return layers


def generator_slot_shapes(size: int, channel_multiplier: int = 2, channel_max: int | None = None,
                          channels: dict[int, int] | None = None) -> list[tuple[int, int, int, int]]:
    """(out, in, k, k) of every weight slot of a rosinality generator of ``size`` (no generator is built; the
    layout arguments are :func:`~stylegan_lightning.stylegan2.channel_layout`'s)."""
    layout = channel_layout(size, channel_multiplier, channel_max, channels)
    shapes = [(layout[4], layout[4], 3, 3), (3, layout[4], 1, 1)]
    previous = layout[4]
    for res in sorted(layout)[1:]:
        channels = layout[res]
        shapes += [(channels, previous, 3, 3), (channels, channels, 3, 3), (3, channels, 1, 1)]
        previous = channels
    return shapes


def _log2(value: int) -> int:
    return value.bit_length() - 1


def _down(in_c: int, out_c: int, stride: int = 2) -> list[nn.Module]:
    return [nn.Conv2d(in_c, out_c, kernel_size=3, stride=stride, padding=1), nn.LeakyReLU()]


class SharedWeightsHypernet(nn.Module):
    """Two-stage linear hypernetwork shared by the square 3×3 slots: a code z [B, z_dim] becomes
    ``h = z·w2 + b2`` viewed as [B, in, z_dim], then ``h·w1 + b1`` viewed as [B, out, in, f, f] (a plain reshape of
    the [B, in, out·f·f] product, as in the official layout). Initialised with ``fmod(N(0,1) / 40, 2)``."""

    def __init__(self, f_size: int = 3, z_dim: int = 512, out_size: int = 512, in_size: int = 512):
        super().__init__()
        self.f_size, self.z_dim, self.out_size, self.in_size = f_size, z_dim, out_size, in_size

        def init(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.fmod(torch.randn(*shape) / 40, 2))

        self.w1 = init(z_dim, out_size * f_size * f_size)
        self.b1 = init(out_size * f_size * f_size)
        self.w2 = init(z_dim, in_size * z_dim)
        self.b2 = init(in_size * z_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = z.shape[0]
        hidden = (z @ self.w2 + self.b2).view(batch, self.in_size, self.z_dim)
        kernel = hidden @ self.w1 + self.b1
        return kernel.view(batch, self.out_size, self.in_size, self.f_size, self.f_size)

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, in={self.in_size}, out={self.out_size}, f={self.f_size}"


class RefinementBlock(nn.Module):
    """Unshared head for one slot of shape (out, in, k, k): stride-2 convs (512 -> ``inner_c`` -> ... -> 512) on the
    ``spatial`` × ``spatial`` features, then a 1×1 conv to out·in values. 3×3 slots: down to 2×2, averaged, and
    each (out, in) value repeated over the 3×3 window; 1×1 (toRGB) slots: down to 1×1, giving [B, out, in, 1, 1]."""

    def __init__(self, shape: Sequence[int], n_channels: int = FEATURE_CHANNELS, inner_c: int = 256,
                 spatial: int = 16):
        super().__init__()
        self.out_channels, self.in_channels, self.kernel_size = int(shape[0]), int(shape[1]), int(shape[2])
        self.out_c = FEATURE_CHANNELS
        self.per_kernel = self.kernel_size == 1  # toRGB: a full (1×1) kernel offset, no pooling
        n_pools = _log2(spatial) - 1 - (0 if self.per_kernel else 1)
        layers = _down(n_channels, inner_c)
        for _ in range(n_pools - 1):
            layers += _down(inner_c, inner_c)
        layers += _down(inner_c, self.out_c)
        self.convs = nn.Sequential(*layers)
        values = self.in_channels * self.out_channels
        if self.per_kernel:
            self.output = nn.Sequential(nn.Conv2d(self.out_c, values, kernel_size=1))
        else:
            self.output = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Conv2d(self.out_c, values, kernel_size=1))

    @property
    def output_conv(self) -> nn.Conv2d:
        return self.output[-1]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        values = self.output(self.convs(features))
        k = self.kernel_size
        if self.per_kernel:
            return values.view(-1, self.out_channels, self.in_channels, k, k)
        values = values.view(-1, self.out_channels, self.in_channels, 1, 1)
        return values.expand(-1, -1, -1, k, k)


class HyperRefinementBlock(nn.Module):
    """Head of a shared slot: conv (stride 1) to ``inner_c``, stride-2 convs down to 1×1 × 512, ``EqualLinear``,
    then the shared :class:`SharedWeightsHypernet` (held by reference, so its weights appear once per head in the
    state dict, as in the official files)."""

    def __init__(self, hypernet: SharedWeightsHypernet, n_channels: int = FEATURE_CHANNELS, inner_c: int = 128,
                 spatial: int = 16):
        super().__init__()
        self.out_c = FEATURE_CHANNELS
        layers = _down(n_channels, inner_c, stride=1)
        for _ in range(_log2(spatial) - 1):
            layers += _down(inner_c, inner_c)
        layers += _down(inner_c, self.out_c)
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(self.out_c, self.out_c, lr_mul=1)
        self.hypernet = hypernet

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        code = self.linear(self.convs(features).view(-1, self.out_c))
        return self.hypernet(code)


class HyperNetwork(nn.Module):
    """x ⊕ ŷ [B, input_nc, input_size, input_size] -> one offset per generator slot (``None`` where not tuned,
    else [B, out, in, k, k]).

    Args:
        slot_shapes: the generator's :meth:`~stylegan_lightning.stylegan2.Generator.weight_slot_shapes`.
        layers_to_tune: slot indices (or a string, see :func:`parse_layers_to_tune`); default every non-toRGB slot.
        input_nc: input channels (6 = image ⊕ reconstruction).
        input_size: input resolution, ``16 · 2^k`` (256 officially -> 16×16 features; 64 -> 4×4 for CPU work).
        shared_layers: slots served by the shared hypernetwork; default every square 3×3 slot at the widest
            channel count (the official 0,2,3,5,6,8,9,11,12 for config-f generators).
        zero_init: zero the last layer of every head, so all offsets start at exactly 0 (the official code
            uses PyTorch's default initialisation).
    """

    def __init__(self, slot_shapes: Sequence[Sequence[int]], layers_to_tune: str | Sequence[int] | None = None,
                 input_nc: int = 6, input_size: int = 256, shared_layers: Sequence[int] | None = None,
                 zero_init: bool = False):
        super().__init__()
        self.slot_shapes = [tuple(int(v) for v in shape) for shape in slot_shapes]
        self.n_outputs = len(self.slot_shapes)
        if input_size < BODY_REDUCTION or input_size % BODY_REDUCTION or \
                (input_size // BODY_REDUCTION) & (input_size // BODY_REDUCTION - 1):
            raise ValueError(f"input_size must be 16 · 2^k (16, 32, 64, ..., 256), got {input_size}")
        self.input_nc, self.input_size = int(input_nc), int(input_size)
        self.spatial = input_size // BODY_REDUCTION
        self.layers_to_tune = parse_layers_to_tune(layers_to_tune, self.n_outputs)
        width = max(shape[1] for shape in self.slot_shapes)
        if shared_layers is None:
            shared_layers = [s for s, shape in enumerate(self.slot_shapes) if shape == (width, width, 3, 3)]
        self.shared_layers = sorted(int(s) for s in shared_layers)
        for s in self.shared_layers:
            if s >= self.n_outputs or self.slot_shapes[s] != (width, width, 3, 3):
                raise ValueError(f"shared slot {s} must have shape {(width, width, 3, 3)}")

        self.conv1 = nn.Conv2d(self.input_nc, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.PReLU(64)
        resnet = resnet34(weights=None)
        self.body = nn.Sequential(*(block for stage in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)
                                    for block in stage))
        del resnet
        self.shared_weight_hypernet = SharedWeightsHypernet(f_size=3, z_dim=FEATURE_CHANNELS, out_size=width,
                                                            in_size=width)
        self.refinement_blocks = nn.ModuleList()
        for slot, shape in enumerate(self.slot_shapes):
            if slot not in self.layers_to_tune:
                block = None
            elif slot in self.shared_layers:
                block = HyperRefinementBlock(self.shared_weight_hypernet, FEATURE_CHANNELS, 128, self.spatial)
            else:
                block = RefinementBlock(shape, FEATURE_CHANNELS, 256, self.spatial)
            self.refinement_blocks.append(block)
        if zero_init:
            self.zero_outputs()

    @torch.no_grad()
    def zero_outputs(self) -> None:
        """Zero the last layer of every head (all offsets become exactly 0; gradients still flow)."""
        for block in self.refinement_blocks:
            if isinstance(block, RefinementBlock):
                block.output_conv.weight.zero_()
                block.output_conv.bias.zero_()
        self.shared_weight_hypernet.w1.zero_()
        self.shared_weight_hypernet.b1.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Body output [B, 512, input_size / 16, input_size / 16]."""
        expected = (self.input_nc, self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"HyperNetwork expects [B, {expected[0]}, {expected[1]}, {expected[2]}] inputs, "
                             f"got {tuple(x.shape)}")
        return self.body(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        features = self.features(x)
        return [None if block is None else block(features) for block in self.refinement_blocks]

    def extra_repr(self) -> str:
        return (f"n_outputs={self.n_outputs}, layers_to_tune={self.layers_to_tune}, "
                f"shared_layers={self.shared_layers}, input_size={self.input_size}")


def init_from_resnet34(hypernet: HyperNetwork, weights: str | Path | Mapping[str, torch.Tensor],
                       stem: bool = False) -> HyperNetwork:
    """Copy a user-supplied torchvision ResNet-34 (ImageNet) state dict into the body: ``layerI.J.*`` ->
    ``body.N.*``. The official model does only that (its 6-channel ``conv1``, ``bn1`` and PReLU are new layers);
    with ``stem=True`` also ``bn1.*`` and ``conv1`` into the first 3 input channels (the others keep their random
    values). Nothing is downloaded; ``fc.*`` is ignored. The file is e.g. torchvision's
    ``resnet34-b627a593.pth`` (or ``resnet34-333f7ec4.pth``)."""
    state = safe_torch_load(weights, "ResNet-34 weights for the HyperStyle hypernetwork") \
        if isinstance(weights, (str, Path)) else weights
    offsets, index, seen_conv1 = {}, 0, False
    for stage, count in enumerate((3, 4, 6, 3), start=1):
        for j in range(count):
            offsets[f"layer{stage}.{j}."] = f"body.{index}."
            index += 1
    mapped = {}
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        prefix = next((p for p in offsets if key.startswith(p)), None)
        if prefix is not None:
            mapped[offsets[prefix] + key[len(prefix):]] = value
        elif key.startswith("bn1."):
            if stem:
                mapped[key] = value
        elif key == "conv1.weight":
            seen_conv1 = True
            if stem:
                weight = hypernet.conv1.weight.detach().clone()
                if value.ndim != 4 or value.shape[0] != weight.shape[0] or value.shape[2:] != weight.shape[2:]:
                    raise CheckpointError(f"not a torchvision ResNet-34 state dict (conv1.weight is "
                                          f"{tuple(value.shape)})")
                n = min(value.shape[1], weight.shape[1])
                weight[:, :n] = value[:, :n]
                mapped[key] = weight
    own = hypernet.state_dict()
    problems = [k for k in mapped if k not in own or own[k].shape != mapped[k].shape]
    wanted = ("body.", "bn1.") if stem else ("body.",)
    absent = [k for k in own if k.startswith(wanted) and k not in mapped and not k.endswith("num_batches_tracked")]
    if problems or absent or not seen_conv1:
        raise CheckpointError(f"not a torchvision ResNet-34 state dict (mismatched: {problems[:6]}, "
                              f"missing: {absent[:6]})")
    hypernet.load_state_dict(mapped, strict=False)
    return hypernet


__all__ = ["DEFAULT_LAYERS_TO_TUNE", "FEATURE_CHANNELS", "HyperNetwork", "HyperRefinementBlock",
           "OFFICIAL_LAYERS_TO_TUNE", "OFFICIAL_SHARED_LAYERS", "RefinementBlock", "SharedWeightsHypernet",
           "TO_RGB_LAYERS", "default_layers_to_tune", "generator_slot_shapes", "init_from_resnet34",
           "medium_fine_layers_to_tune", "parse_layers_to_tune", "slot_resolution", "to_rgb_slots"]
