"""Building encoders by kind, and the names the official repositories use for them."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .backbone import OFFICIAL_BLOCKS, OFFICIAL_CHANNELS, BackboneConfig
from .e4e import Encoder4Editing
from .pretrained import init_from_irse50, resolve_irse_path
from .psp import GradualStyleEncoder
from .w_encoder import WEncoder

ENCODER_CLASSES: dict[str, type[nn.Module]] = {"psp": GradualStyleEncoder, "e4e": Encoder4Editing, "w": WEncoder}

# ``opts.encoder_type`` values of the official checkpoints -> kind. pSp's BackboneEncoderUsingLastLayerIntoW and
# HyperStyle's WEncoder have the same parameters (pSp returns one w, HyperStyle repeats it; the W+ is the same).
ENCODER_TYPES: dict[str, str] = {
    "GradualStyleEncoder": "psp",
    "Encoder4Editing": "e4e",
    "WEncoder": "w",
    "BackboneEncoderUsingLastLayerIntoW": "w",
}


def normalize_kind(kind: str) -> str:
    """``"psp"``, ``"e4e"`` or ``"w"`` from a kind or an official class name (case-insensitive kinds)."""
    if isinstance(kind, str):
        if kind in ENCODER_TYPES:
            return ENCODER_TYPES[kind]
        if kind.lower() in ENCODER_CLASSES:
            return kind.lower()
    raise ValueError(f"unknown encoder kind {kind!r}; expected one of {sorted(ENCODER_CLASSES)} or an official "
                     f"encoder_type {sorted(ENCODER_TYPES)}")


def build_encoder(
    kind: str,
    n_styles: int,
    style_dim: int = 512,
    input_size: int = 256,
    blocks: tuple[int, ...] = OFFICIAL_BLOCKS,
    channels: tuple[int, ...] = OFFICIAL_CHANNELS,
    input_nc: int = 3,
    irse_path: str | Path | None = None,
    mode: str = "ir_se",
) -> nn.Module:
    """A pSp (``"psp"``), e4e (``"e4e"``) or W (``"w"``) encoder.

    ``n_styles`` is the generator's ``n_latent`` (2 log2(size) - 2) and ``style_dim`` its w size. With
    ``irse_path`` (a ``model_ir_se50.pth`` path, or the registry key ``"arcface_ir_se50"`` to look in the weights
    folder) ``input_layer`` and ``body`` start from the ArcFace weights as in pSp; this needs the official
    backbone (the default ``blocks`` / ``channels`` / ``mode``). Without it every weight is random.
    """
    cls = ENCODER_CLASSES[normalize_kind(kind)]
    irse_file = None
    if irse_path is not None:  # fail before building a large network for nothing
        if not BackboneConfig(tuple(blocks), tuple(channels), mode, input_nc).is_official():
            raise ValueError("irse_path initialisation needs the official IR-SE50 backbone (blocks (3, 4, 14, 3), "
                             f"channels (64, 128, 256, 512), mode 'ir_se'); got blocks {tuple(blocks)}, channels "
                             f"{tuple(channels)}, mode {mode!r}")
        irse_file = resolve_irse_path(irse_path)
    encoder = cls(n_styles=n_styles, style_dim=style_dim, input_size=input_size, blocks=tuple(blocks),
                  channels=tuple(channels), mode=mode, input_nc=input_nc)
    if irse_file is not None:
        init_from_irse50(encoder, irse_file)
    return encoder


__all__ = ["ENCODER_CLASSES", "ENCODER_TYPES", "build_encoder", "normalize_kind"]
