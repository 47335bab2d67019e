"""Encoders in use: images -> W+ (:class:`LatentEncoder`), and W+ -> images through the frozen prior
(:class:`Inverter`).

As in the official pSp / e4e / HyperStyle wrappers, the encoders predict offsets from the average latent:
with ``start_from_latent_avg`` the W+ code is ``encoder(x) + latent_avg`` (``latent_avg`` repeated over the
styles), and the reconstruction uses the generator's stored noise maps (``randomize_noise=False``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..stylegan2.frozen import FrozenGenerator
from ..stylegan2.generator import Generator
from ..utils.images import check_images, resize_images
from .backbone import OFFICIAL_BLOCKS, OFFICIAL_CHANNELS
from .factory import build_encoder


def expand_latent_avg(latent_avg: torch.Tensor, n_styles: int, style_dim: int) -> torch.Tensor:
    """``latent_avg`` of shape [D], [1, D], [n_styles, D] or [1, n_styles, D] as [n_styles, D] (a single vector
    is repeated over the styles, as the official code does)."""
    if not isinstance(latent_avg, torch.Tensor):
        raise ValueError(f"latent_avg must be a tensor, got {type(latent_avg).__name__}")
    rows = latent_avg.detach().float()
    if rows.ndim == 0 or rows.shape[-1] != style_dim or rows.numel() not in (style_dim, n_styles * style_dim):
        raise ValueError(f"latent_avg has shape {tuple(latent_avg.shape)}; expected [{style_dim}], "
                         f"[1, {style_dim}] or [{n_styles}, {style_dim}]")
    rows = rows.reshape(-1, style_dim)
    return rows.repeat(n_styles, 1) if rows.shape[0] == 1 else rows.clone()


class LatentEncoder(nn.Module):
    """Images in [-1, 1] of any size -> W+ [B, n_styles, style_dim].

    Args:
        encoder: a :class:`~.psp.GradualStyleEncoder`, :class:`~.e4e.Encoder4Editing` or :class:`~.w_encoder.WEncoder`.
        n_styles: the generator's ``n_latent`` (checked against the encoder; ``None`` = the encoder's).
        latent_avg: the average w ([D], [1, D] or [n_styles, D]); required with ``start_from_latent_avg``
            (:attr:`FrozenGenerator.latent_avg` when a checkpoint has none). Kept as the buffer ``latent_avg``
            [n_styles, D].
        start_from_latent_avg: add ``latent_avg`` to the encoder output (official ``--start_from_latent_avg``).
        input_size: images are resized to this square size first (``None`` = the encoder's ``input_size``; the
            pyramid encoders need exactly theirs, the W-encoder takes any).
    """

    def __init__(self, encoder: nn.Module, n_styles: int | None = None, latent_avg: torch.Tensor | None = None,
                 start_from_latent_avg: bool = True, input_size: int | None = None):
        super().__init__()
        self.encoder = encoder
        self.n_styles = int(n_styles if n_styles is not None else encoder.n_styles)
        self.style_dim = int(encoder.style_dim)
        if self.n_styles != encoder.n_styles:
            raise ValueError(f"n_styles={self.n_styles} but the encoder predicts {encoder.n_styles} styles")
        self.input_size = int(input_size if input_size is not None else encoder.input_size)
        if self.input_size != encoder.input_size and not getattr(encoder, "accepts_any_size", False):
            raise ValueError(f"{type(encoder).__name__} needs {encoder.input_size} x {encoder.input_size} inputs, "
                             f"got input_size={self.input_size}")
        self.start_from_latent_avg = bool(start_from_latent_avg)
        if latent_avg is None:
            if self.start_from_latent_avg:
                raise ValueError("start_from_latent_avg=True needs latent_avg (e.g. FrozenGenerator.latent_avg)")
            latent_avg = torch.zeros(self.style_dim)
        self.register_buffer("latent_avg", expand_latent_avg(latent_avg, self.n_styles, self.style_dim))

    @property
    def kind(self) -> str:
        """``"psp"``, ``"e4e"`` or ``"w"``."""
        return self.encoder.kind

    @property
    def input_nc(self) -> int:
        return self.encoder.input_nc

    def set_progressive_stage(self, stage) -> int:
        """e4e only: forwards to :meth:`Encoder4Editing.set_progressive_stage`."""
        if not hasattr(self.encoder, "set_progressive_stage"):
            raise TypeError(f"{type(self.encoder).__name__} has no progressive stages (only e4e does)")
        return self.encoder.set_progressive_stage(stage)

    def forward(self, images: torch.Tensor, return_features: bool = False):
        """W+ [B, n_styles, style_dim]; with ``return_features=True`` (pSp / e4e) also the encoder's
        :class:`~.psp.PyramidFeatures` of the resized images, from the same pass."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != self.input_nc:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"LatentEncoder expects images [B, {self.input_nc}, H, W] in [-1, 1], got {shape}")
        x = resize_images(images, self.input_size)
        if return_features:
            if not hasattr(self.encoder, "features"):
                raise TypeError(f"{type(self.encoder).__name__} has no feature pyramid (pSp and e4e do)")
            codes, features = self.encoder(x, return_features=True)
        else:
            codes, features = self.encoder(x), None
        if self.start_from_latent_avg:
            codes = codes + self.latent_avg
        return (codes, features) if return_features else codes

    def extra_repr(self) -> str:
        return (f"n_styles={self.n_styles}, style_dim={self.style_dim}, input_size={self.input_size}, "
                f"start_from_latent_avg={self.start_from_latent_avg}")


def encoder_spec(encoder: LatentEncoder) -> dict[str, Any]:
    """Plain data from which :func:`build_latent_encoder` rebuilds ``encoder``'s architecture (kind, input size,
    backbone, ``start_from_latent_avg``), e.g. to store beside its weights in a method's checkpoint."""
    inner = encoder.encoder
    backbone = inner.config
    return {"kind": inner.kind, "input_size": int(encoder.input_size), "blocks": list(backbone.blocks),
            "channels": list(backbone.channels), "mode": backbone.mode, "input_nc": int(backbone.input_nc),
            "start_from_latent_avg": bool(encoder.start_from_latent_avg)}


def build_latent_encoder(spec: Mapping[str, Any], generator: FrozenGenerator) -> LatentEncoder:
    """A :class:`LatentEncoder` (random weights) of architecture ``spec`` (:func:`encoder_spec`) for
    ``generator``."""
    network = build_encoder(spec["kind"], generator.n_latent, generator.style_dim, spec["input_size"],
                            tuple(spec["blocks"]), tuple(spec["channels"]), spec.get("input_nc", 3),
                            mode=spec.get("mode", "ir_se"))
    return LatentEncoder(network, generator.n_latent, generator.latent_avg, spec.get("start_from_latent_avg", True))


class Inverter(nn.Module):
    """Encoder + frozen generator (pSp's ``encoder`` / ``decoder`` pair): :meth:`invert` maps images to
    ``(w_plus, reconstruction)``.

    Args:
        encoder: a :class:`LatentEncoder`, or a bare encoder that is wrapped in one with ``latent_avg`` (default:
            the generator's) and ``start_from_latent_avg``.
        decoder: the :class:`FrozenGenerator` (a plain :class:`Generator` is wrapped).
        opts: the options the bundle was trained or loaded with (official ``opts``; written back by
            :func:`~.checkpoints.save_encoder_checkpoint`).
    """

    def __init__(self, encoder: nn.Module, decoder: FrozenGenerator | Generator,
                 latent_avg: torch.Tensor | None = None, start_from_latent_avg: bool = True,
                 opts: Mapping[str, Any] | None = None):
        super().__init__()
        if isinstance(decoder, Generator):
            decoder = FrozenGenerator(decoder)
        if not isinstance(decoder, FrozenGenerator):
            raise TypeError(f"decoder must be a FrozenGenerator or Generator, got {type(decoder).__name__}")
        if (encoder.n_styles, encoder.style_dim) != (decoder.n_latent, decoder.style_dim):
            raise ValueError(f"the encoder predicts [{encoder.n_styles}, {encoder.style_dim}] codes but the "
                             f"generator takes W+ [{decoder.n_latent}, {decoder.style_dim}]")
        if not isinstance(encoder, LatentEncoder):
            encoder = LatentEncoder(encoder, decoder.n_latent,
                                    latent_avg if latent_avg is not None else decoder.latent_avg,
                                    start_from_latent_avg)
        elif latent_avg is not None:
            raise ValueError("latent_avg is given twice: the LatentEncoder already holds one")
        self.encoder = encoder
        self.decoder = decoder
        self.opts = dict(opts or {})

    @property
    def kind(self) -> str:
        return self.encoder.kind

    @property
    def latent_avg(self) -> torch.Tensor:
        """The encoder's average latent [n_styles, style_dim]."""
        return self.encoder.latent_avg

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> W+ [B, n_styles, style_dim]."""
        return self.encoder(images)

    def decode(self, w_plus: torch.Tensor, noise: str = "const") -> torch.Tensor:
        """W+ -> images in [-1, 1] at the generator's resolution (stored noise by default)."""
        return self.decoder(w_plus, noise=noise)

    def invert(self, images: torch.Tensor, noise: str = "const") -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_plus, reconstruction)``; gradients reach the encoder through the frozen generator."""
        w_plus = self.encode(check_images(images, "invert", channels=None))  # pSp may take extra channels
        return w_plus, self.decode(w_plus, noise)

    def prepare_edits(self, images: torch.Tensor
                      ) -> tuple[torch.Tensor, Callable[[int, torch.Tensor], torch.Tensor]]:
        """``(w_plus, render)`` for editing a batch: an encoder inversion keeps no per-image state, so
        ``render(i, codes)`` is the generator on the codes [S, n, D] (the interface GradStyle and HyperStyle share)."""
        w_plus = self.encode(check_images(images, "prepare_edits", channels=None))
        return w_plus, lambda index, codes: self.decode(codes)

    def forward(self, images: torch.Tensor, noise: str = "const") -> tuple[torch.Tensor, torch.Tensor]:
        return self.invert(images, noise)


def build_inverter(
    kind: str,
    generator: FrozenGenerator | Generator,
    input_size: int = 256,
    blocks: tuple[int, ...] = OFFICIAL_BLOCKS,
    channels: tuple[int, ...] = OFFICIAL_CHANNELS,
    input_nc: int = 3,
    irse_path: str | Path | None = None,
    mode: str = "ir_se",
    start_from_latent_avg: bool = True,
) -> Inverter:
    """A new encoder of ``kind`` sized for ``generator`` (``n_styles``, ``style_dim``), starting from the
    generator's ``latent_avg``, bundled with it (see :func:`~.factory.build_encoder` for the other arguments)."""
    if isinstance(generator, Generator):
        generator = FrozenGenerator(generator)
    encoder = build_encoder(kind, generator.n_latent, generator.style_dim, input_size, blocks, channels, input_nc,
                            irse_path, mode)
    return Inverter(encoder, generator, start_from_latent_avg=start_from_latent_avg)


__all__ = ["Inverter", "LatentEncoder", "build_inverter", "build_latent_encoder", "encoder_spec", "expand_latent_avg",
           "resize_images"]
