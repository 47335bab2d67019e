"""Initialising an encoder backbone from the ArcFace IR-SE50 weights (``model_ir_se50.pth``), as pSp does.

pSp / e4e / HyperStyle start training by loading ``model_ir_se50.pth`` into the encoder with ``strict=False``:
only ``input_layer.*`` and ``body.*`` match (``output_layer.*`` is the face-recognition head and is dropped);
everything else keeps its random initialisation. Here the same two parts are loaded *strictly*: every backbone
tensor must be in the file with the right shape. For ``input_nc != 3`` (ReStyle) the file's RGB filters fill the
first three input channels of ``input_layer.0.weight`` and the others keep the encoder's initialisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..nets.common import unwrap_state_dict
from ..serialization import CheckpointError, load_state_strict, safe_torch_load
from ..weights import resolve_weight
from .backbone import IRSEBackbone

IRSE_KEY = "arcface_ir_se50"
PURPOSE = "ArcFace IR-SE50 weights for the encoder backbone"
BACKBONE_PREFIXES = ("input_layer.", "body.")


def resolve_irse_path(path: str | Path | None) -> Path:
    """The ArcFace file: an explicit path, or (``None`` / the registry key ``"arcface_ir_se50"``) the registry
    lookup in the weights folder. A missing file raises :class:`~stylegan_lightning.weights.MissingWeightError`."""
    if path is None or (str(path) == IRSE_KEY and not Path(path).is_file()):
        return resolve_weight(IRSE_KEY)
    return resolve_weight(IRSE_KEY, path)


def init_from_irse50(encoder: IRSEBackbone, path: str | Path | None = None) -> Path:
    """Copy ``input_layer`` and ``body`` of an ArcFace IR-SE50 state dict into ``encoder`` (strictly for those
    parts) and return the file used. Only the official backbone (IR-SE50) can be initialised this way."""
    if not encoder.config.is_official():
        raise ValueError(
            "initialising from ArcFace IR-SE50 needs the official backbone (blocks (3, 4, 14, 3), channels "
            f"(64, 128, 256, 512), mode 'ir_se'); this encoder has blocks {encoder.config.blocks}, channels "
            f"{encoder.config.channels}, mode {encoder.config.mode!r}"
        )
    file = resolve_irse_path(path)
    state = unwrap_state_dict(safe_torch_load(file, PURPOSE), f"{PURPOSE} ('{file}')")
    backbone = {k: v for k, v in state.items() if k.startswith(BACKBONE_PREFIXES)}
    first = backbone.get("input_layer.0.weight")
    if encoder.input_nc != 3 and isinstance(first, torch.Tensor):
        if first.ndim != 4 or first.shape[1] != 3:
            raise CheckpointError(f"{PURPOSE} '{file}': input_layer.0.weight has shape {tuple(first.shape)}, "
                                  "expected RGB filters [64, 3, 3, 3]")
        widened = encoder.input_layer[0].weight.detach().clone()
        widened[:, :3] = first
        backbone["input_layer.0.weight"] = widened
    holder = nn.Module()  # shares the encoder's modules, so loading into it fills the encoder
    holder.input_layer = encoder.input_layer
    holder.body = encoder.body
    load_state_strict(holder, backbone, f"{PURPOSE} '{file}'")
    return file


__all__ = ["BACKBONE_PREFIXES", "IRSE_KEY", "init_from_irse50", "resolve_irse_path"]
