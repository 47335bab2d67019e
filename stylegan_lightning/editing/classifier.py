"""A small ResNet-style face-attribute classifier, and its exported file.

:class:`AttributeClassifier` takes images in [-1, 1] at ``resolution`` (a power of two >= 8) and returns one raw
output per attribute: a logit for ``"binary"`` outputs (trained with BCE) or a normalised value for
``"regression"`` outputs (trained with MSE on ``(value - offset) / scale``, e.g. UTKFace age with offset 40,
scale 20). :meth:`AttributeClassifier.predict` resizes any image size to the classifier's and returns
probabilities (binary) and values in the original units (regression).

Layout: a 3x3 stem at full resolution, then one stage per halving down to 4x4 (each ``blocks_per_stage``
residual blocks, the first with stride 2; widths ``width * 2, width * 4, ...`` capped at ``max_width``),
global average pooling, dropout, one linear layer.

Files: :func:`export_classifier` writes ``{"format", "version", "state_dict", "config", "attribute_names"}``
(plain tensors and values); :func:`load_attribute_classifier` reads that or a Lightning checkpoint of
:class:`~stylegan_lightning.editing.AttributeClassifierModule`, both with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..serialization import CheckpointError, cpu_state, load_state_strict, safe_torch_load
from ..stylegan2.checkpoints import strip_prefix

OUTPUT_KINDS = ("binary", "regression")
CLASSIFIER_FORMAT = "stylegan-lightning/attribute-classifier"
CLASSIFIER_VERSION = 1


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images [B, C, H, W] resized to ``size`` x ``size`` (bilinear with antialiasing; unchanged if equal)."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class ResidualBlock(nn.Module):
    """conv3x3 (stride) - BN - ReLU - conv3x3 - BN, plus a 1x1 projection shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _per_output(values: Sequence[float] | None, count: int, default: float, name: str) -> list[float]:
    if values is None:
        return [default] * count
    values = [float(v) for v in values]
    if len(values) != count:
        raise ValueError(f"{name} needs one value per output ({count}), got {len(values)}")
    return values


class AttributeClassifier(nn.Module):
    """Face-attribute classifier (see the module docs).

    Args:
        num_outputs: number of attributes A.
        resolution: input size (power of two >= 8); :meth:`predict` resizes other sizes.
        width, max_width, blocks_per_stage: network size (stem width, channel cap, residual blocks per stage).
        output_kinds: ``"binary"`` or ``"regression"`` per output (default: all binary).
        attribute_names: names of the outputs (default: ``attr0, attr1, ...``).
        target_offsets, target_scales: regression normalisation per output (ignored for binary outputs).
        dropout: dropout before the linear head.
    """

    def __init__(
        self,
        num_outputs: int,
        resolution: int = 64,
        width: int = 32,
        max_width: int = 256,
        blocks_per_stage: int = 1,
        output_kinds: Sequence[str] | None = None,
        attribute_names: Sequence[str] | None = None,
        target_offsets: Sequence[float] | None = None,
        target_scales: Sequence[float] | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        if num_outputs < 1:
            raise ValueError(f"num_outputs must be positive, got {num_outputs}")
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
        if width < 1 or max_width < width or blocks_per_stage < 1:
            raise ValueError(f"invalid size: width={width}, max_width={max_width}, blocks_per_stage={blocks_per_stage}")
        kinds = list(output_kinds) if output_kinds is not None else ["binary"] * num_outputs
        if len(kinds) != num_outputs or any(k not in OUTPUT_KINDS for k in kinds):
            raise ValueError(f"output_kinds must list {num_outputs} values from {OUTPUT_KINDS}, got {kinds}")
        names = list(attribute_names) if attribute_names is not None else [f"attr{i}" for i in range(num_outputs)]
        if len(names) != num_outputs or len(set(names)) != num_outputs:
            raise ValueError(f"attribute_names must be {num_outputs} distinct names, got {names}")
        offsets = _per_output(target_offsets, num_outputs, 0.0, "target_offsets")
        scales = _per_output(target_scales, num_outputs, 1.0, "target_scales")
        if any(s == 0 for s in scales):
            raise ValueError("target_scales must be non-zero")
        self.config: dict[str, Any] = dict(
            num_outputs=num_outputs, resolution=resolution, width=width, max_width=max_width,
            blocks_per_stage=blocks_per_stage, output_kinds=kinds, attribute_names=names, target_offsets=offsets,
            target_scales=scales, dropout=float(dropout))
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages, channels = [], width
        for stage in range(int(math.log2(resolution)) - 2):
            out_channels = min(width * 2 ** (stage + 1), max_width)
            blocks = [ResidualBlock(channels, out_channels, 2)]
            blocks += [ResidualBlock(out_channels, out_channels) for _ in range(blocks_per_stage - 1)]
            stages.append(nn.Sequential(*blocks))
            channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels, num_outputs)
        self.register_buffer("binary", torch.tensor([k == "binary" for k in kinds]), persistent=False)
        self.register_buffer("target_offset", torch.tensor(offsets), persistent=False)
        self.register_buffer("target_scale", torch.tensor(scales), persistent=False)

    @property
    def resolution(self) -> int:
        return self.config["resolution"]

    @property
    def attribute_names(self) -> list[str]:
        return list(self.config["attribute_names"])

    @property
    def output_kinds(self) -> list[str]:
        return list(self.config["output_kinds"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Raw outputs [B, A] (logits / normalised values) of images [B, 3, R, R] in [-1, 1]."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[-2:] != (self.resolution, self.resolution):
            raise ValueError(f"expected images [B, 3, {self.resolution}, {self.resolution}], got {tuple(images.shape)} "
                             "(predict() resizes)")
        features = self.stages(self.stem(images))
        return self.head(self.dropout(features.mean(dim=(2, 3))))

    def postprocess(self, outputs: torch.Tensor) -> torch.Tensor:
        """Raw outputs -> probabilities (binary) and values in the original units (regression)."""
        values = outputs * self.target_scale + self.target_offset
        return torch.where(self.binary, torch.sigmoid(outputs), values)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities / values [B, A] of images [B, 3, H, W] in [-1, 1] of any size (resized first)."""
        return self.postprocess(self(resize_images(images, self.resolution)))


def export_classifier(model: nn.Module, path: str | Path) -> Path:
    """Write an :class:`AttributeClassifier` (or the one inside an ``AttributeClassifierModule``) as
    ``{"format", "version", "state_dict", "config", "attribute_names"}``."""
    classifier = getattr(model, "classifier", model)
    if not isinstance(classifier, AttributeClassifier):
        raise TypeError(f"expected an AttributeClassifier or AttributeClassifierModule, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = cpu_state(classifier)
    torch.save({"format": CLASSIFIER_FORMAT, "version": CLASSIFIER_VERSION, "state_dict": state,
                "config": dict(classifier.config), "attribute_names": classifier.attribute_names}, path)
    return path


def classifier_config_from_hparams(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`AttributeClassifier` arguments of ``AttributeClassifierModule`` hyperparameters."""
    names = list(hparams["attribute_names"])
    return dict(num_outputs=len(names), attribute_names=names,
                **{k: hparams[k] for k in ("resolution", "width", "max_width", "blocks_per_stage", "output_kinds",
                                           "target_offsets", "target_scales", "dropout") if k in hparams})


def load_attribute_classifier(path: str | Path) -> AttributeClassifier:
    """Read an exported classifier or a Lightning checkpoint of ``AttributeClassifierModule`` (safe loading,
    strict key / shape check); returns the classifier in eval mode on the CPU."""
    purpose = "attribute classifier"
    data = safe_torch_load(path, purpose)
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), Mapping):
        raise CheckpointError(f"{purpose}: '{path}' has no state_dict (expected an exported classifier or a "
                              "Lightning checkpoint of AttributeClassifierModule)")
    if isinstance(data.get("config"), Mapping):
        version = data.get("version", CLASSIFIER_VERSION)
        if not isinstance(version, int) or version > CLASSIFIER_VERSION:
            raise CheckpointError(f"{purpose}: '{path}' has version {version!r}; this release reads up to "
                                  f"{CLASSIFIER_VERSION}")
        config, state = dict(data["config"]), dict(data["state_dict"])
        if data.get("attribute_names") is not None:
            config["attribute_names"] = list(data["attribute_names"])
    elif isinstance(data.get("hyper_parameters"), Mapping) and "attribute_names" in data["hyper_parameters"]:
        config = classifier_config_from_hparams(data["hyper_parameters"])
        prefix = "classifier."
        state = strip_prefix(data["state_dict"], prefix)
    else:
        raise CheckpointError(f"{purpose}: '{path}' has neither an exported 'config' nor the hyper_parameters of "
                              "an AttributeClassifierModule checkpoint")
    try:
        classifier = AttributeClassifier(**config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{purpose}: '{path}' has an invalid configuration ({error})") from error
    return load_state_strict(classifier, state, f"{purpose} '{path}'").eval()
