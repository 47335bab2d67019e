"""GradStyle (arXiv 2402.14398): dual-stream inversion and editing with gradual residuals.

A frozen e4e encoder gives W+ and its hierarchical features T (coarse to fine: c3, p2, p1 of the feature
pyramid). The frozen generator's synthesis is split into M coarse-to-fine stages by *refinement layers* (styled
convs; the paper refines after the 3rd, 6th and 8th, i.e. layers 2, 5 and 7 here, at 8, 32 and 64 px). After
refinement layer m:

- reconstruction stream: the Gradual Residual Module ``F_m = E_res(W_T T_m, W_f f_m^rec)`` (Eq. 2) and the
  Gate&Fusion ``g_m = sigmoid(W_g [f_m^rec, F_m])``, ``f~_m = f_m^rec + g_m * F_m`` (Eq. 3-4); synthesis goes on
  from ``f~_m``;
- editing stream (codes ``W+ + alpha * dW+``): the Global Alignment Module re-aligns ``F_m`` to the edited
  features with the selective-attention :class:`~.attention.Aligner`, then fuses it with the same Gate&Fusion
  (weights shared with the reconstruction stream). An image whose codes were not moved needs no alignment: its
  editing stream is its reconstruction stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..encoders.inverter import LatentEncoder
from ..stylegan2.frozen import FrozenGenerator
from ..utils.images import check_images
from .attention import Aligner
from .augment import random_perspective

PAPER_REFINE_LAYERS = (2, 5, 7)  # the 3rd, 6th and 8th styled convs (1-based in the paper)


def layer_resolution(layer: int) -> int:
    """Feature resolution after styled conv ``layer`` (0: the 4x4 conv, then two convs per resolution)."""
    return 4 * 2 ** ((layer + 1) // 2)


def default_refine_layers(num_layers: int) -> list[int]:
    """The paper's refinement layers that a generator with ``num_layers`` styled convs has (all three from 64 px
    up; fewer below)."""
    layers = [layer for layer in PAPER_REFINE_LAYERS if layer < num_layers]
    if not layers:
        raise ValueError(f"a generator with {num_layers} styled convs is too small for GradStyle (needs > 2)")
    return layers


def check_refine_layers(layers: Sequence[int], num_layers: int) -> list[int]:
    """``layers`` as a sorted list of valid, distinct styled-conv indices (ValueError otherwise)."""
    layers = [int(layer) for layer in layers]
    if not layers or sorted(set(layers)) != layers or layers[0] < 0 or layers[-1] >= num_layers:
        raise ValueError(f"refine_layers must be increasing, distinct styled-conv indices in 0..{num_layers - 1}, "
                         f"got {layers}")
    return layers


class GateFusion(nn.Module):
    """``g = sigmoid(W_g [f, F])``, ``f~ = f + g * F`` (Eq. 3-4); returns ``(f~, g)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.gate = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, features: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate = torch.sigmoid(self.gate(torch.cat([features, residual], dim=1)))
        return features + gate * residual, gate


class GradualResidualModule(nn.Module):
    """``F_m = E_res(W_T T_m, W_f f_m)`` (Eq. 2): encoder features (resized to the generator's) and generator
    features mapped to one space by 1x1 convs, then a small residual encoder."""

    def __init__(self, encoder_channels: int, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels
        self.project_encoder = nn.Conv2d(encoder_channels, hidden, 1)
        self.project_generator = nn.Conv2d(channels, hidden, 1)
        self.residual_encoder = nn.Sequential(
            nn.Conv2d(2 * hidden, hidden, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, channels, 3, padding=1))

    def forward(self, encoder_features: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        if encoder_features.shape[-2:] != features.shape[-2:]:
            encoder_features = F.interpolate(encoder_features, size=features.shape[-2:], mode="bilinear",
                                             align_corners=False)
        joint = torch.cat([self.project_encoder(encoder_features), self.project_generator(features)], dim=1)
        return self.residual_encoder(joint)


@dataclass
class StreamOutput:
    """One synthesis stream: the image, and per stage the residual fused (``F_m`` or the aligned ``F'_m``) and
    its gate ``g_m``."""

    image: torch.Tensor
    residuals: list[torch.Tensor] = field(default_factory=list)
    gates: list[torch.Tensor] = field(default_factory=list)


class GradStyle(nn.Module):
    """GradStyle over a frozen e4e ``encoder`` and a frozen ``generator`` (see the module docstring).

    Args:
        encoder: a :class:`LatentEncoder` wrapping an e4e (or pSp) pyramid encoder; kept frozen.
        generator: the :class:`FrozenGenerator`.
        refine_layers: styled-conv indices after which features are refined (default: the paper's 2, 5, 7 that
            exist); stage m takes the m-th pyramid level (c3, p2, p1; the finest again for further stages).
        hidden: width of the residual encoders (default: the generator's channels at that layer).
        aligner_layers, aligner_heads, aligner_head_dim, top_ratio: the Aligner (paper: d_k = 64, top-mu
            selective attention).
        perspective: corner displacement of the random perspective augmentation used in training (paper: 0.15).
    """

    def __init__(self, encoder: LatentEncoder, generator: FrozenGenerator, refine_layers: Sequence[int] | None = None,
                 hidden: int | None = None, aligner_layers: int = 2, aligner_heads: int = 4,
                 aligner_head_dim: int = 64, top_ratio: float = 0.5, perspective: float = 0.15):
        super().__init__()
        if not hasattr(encoder.encoder, "features"):
            raise TypeError(f"GradStyle needs a pyramid encoder (e4e / pSp), got {type(encoder.encoder).__name__}")
        self.encoder = encoder.requires_grad_(False).eval()
        self.generator = generator
        num_layers = generator.num_layers
        self.refine_layers = check_refine_layers(refine_layers if refine_layers is not None
                                                 else default_refine_layers(num_layers), num_layers)
        self.perspective = float(perspective)
        levels = self._pyramid_channels()
        gen_channels = generator.generator.channels
        self.grms, self.fusions, self.aligners = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for stage, layer in enumerate(self.refine_layers):
            channels = gen_channels[layer_resolution(layer)]
            self.grms.append(GradualResidualModule(levels[min(stage, len(levels) - 1)], channels, hidden))
            self.fusions.append(GateFusion(channels))
            self.aligners.append(Aligner(channels, heads=aligner_heads, head_dim=aligner_head_dim,
                                         layers=aligner_layers, ratio=top_ratio))

    def train(self, mode: bool = True) -> "GradStyle":
        super().train(mode)
        self.encoder.eval()  # frozen: batch-norm statistics never move
        return self

    def _pyramid_channels(self) -> list[int]:
        size = self.encoder.input_size
        probe = torch.zeros(1, self.encoder.input_nc, size, size, device=self.encoder.latent_avg.device)
        with torch.no_grad():
            pyramid = self.encoder.encoder.features(probe)
        return [pyramid.c3.shape[1], pyramid.p2.shape[1], pyramid.p1.shape[1]]

    @property
    def n_stages(self) -> int:
        return len(self.refine_layers)

    @property
    def decoder(self) -> FrozenGenerator:
        """The generator (the inversion tools' name for it)."""
        return self.generator

    # ------------------------------------------------------------------ encoding
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Images in [-1, 1] -> (W+, the hierarchical features T_m of every stage), both from the frozen e4e."""
        w_plus, pyramid = self.encoder(images, return_features=True)
        levels = [pyramid.c3, pyramid.p2, pyramid.p1]
        return w_plus, [levels[min(stage, 2)] for stage in range(self.n_stages)]

    # ------------------------------------------------------------------ streams
    def _stream(self, codes: torch.Tensor,
                residual_at: Callable[[int, torch.Tensor], torch.Tensor]) -> StreamOutput:
        """Synthesis from ``codes`` where, after each refinement layer, ``residual_at(stage, features)`` is fused
        into the features by the stage's Gate&Fusion."""
        output = StreamOutput(image=torch.empty(0))
        stage_of = {layer: stage for stage, layer in enumerate(self.refine_layers)}

        def refine(layer: int, features: torch.Tensor) -> torch.Tensor | None:
            if layer not in stage_of:
                return None
            stage = stage_of[layer]
            residual = residual_at(stage, features)
            fused, gate = self.fusions[stage](features, residual)
            output.residuals.append(residual)
            output.gates.append(gate)
            return fused

        output.image = self.generator(codes, space="w", noise="const", layer_hook=refine)
        return output

    def reconstruct(self, w_plus: torch.Tensor, encoder_features: Sequence[torch.Tensor]) -> StreamOutput:
        """Reconstruction stream: gradual residuals from the encoder features, gated into the synthesis."""
        return self._stream(w_plus, lambda stage, features: self.grms[stage](encoder_features[stage], features))

    def edit_stream(self, w_edit: torch.Tensor, w_plus: torch.Tensor, residuals: Sequence[torch.Tensor],
                    augment: bool = False, generator: torch.Generator | None = None) -> StreamOutput:
        """Editing stream for codes ``w_edit`` of images inverted to ``w_plus`` with reconstruction residuals
        ``residuals``: each residual is re-aligned to the edited features (Global Alignment Module) and fused with
        the shared Gate&Fusion. ``augment`` warps the residuals with random perspective transforms first (the
        self-supervised training of the aligner); images whose codes did not move skip the aligner unless
        ``augment`` is set."""
        moved = (w_edit != w_plus).flatten(1).any(1) | augment

        def align(stage: int, features: torch.Tensor) -> torch.Tensor:
            residual = residuals[stage]
            if augment:
                residual = random_perspective(residual, self.perspective, generator)
            aligned = self.aligners[stage](residual, features) if bool(moved.any()) else residual
            return torch.where(moved[:, None, None, None], aligned, residuals[stage])

        return self._stream(w_edit, align)

    # ------------------------------------------------------------------ tools API
    def invert(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_plus, reconstruction)`` (the inversion tools' interface; the generator's stored noise)."""
        w_plus, encoder_features = self.encode(check_images(images, "GradStyle.invert"))
        return w_plus, self.reconstruct(w_plus, encoder_features).image

    def edit(self, images: torch.Tensor, w_plus: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Edited images of one source image (``images`` [1, 3, H, W], its ``w_plus`` [1, n, D]) for each of the
        codes [S, n, D] (the ``edit`` tool's interface)."""
        _, encoder_features = self.encode(images)
        return self._edit_one(w_plus, self.reconstruct(w_plus, encoder_features).residuals, codes)

    def prepare_edits(self, images: torch.Tensor
                      ) -> tuple[torch.Tensor, Callable[[int, torch.Tensor], torch.Tensor]]:
        """Invert a batch once for editing: ``(w_plus, render)``, where ``render(i, codes)`` gives the images of
        codes [S, n, D] with image ``i``'s reconstruction residuals (what :meth:`edit` does, without a second
        inversion).

        Each image is inverted on its own (batch size 1, as :meth:`edit` does), so an image's edits do not depend
        on the batch it came in: ``render(i, codes)`` equals ``edit(images[i:i+1], w_plus[i:i+1], codes)`` bit for
        bit. Batching the encoder would change its output in the last float bits (another kernel blocking), and
        the aligner's top-``mu`` key selection is discontinuous: such a difference can swap a kept key and move
        pixels by ~1e-4, so ``--batch-size`` would change the edit tool's output."""
        images = check_images(images, "GradStyle.prepare_edits")
        states = []  # per image: (w_plus [1, n, D], its residuals)
        for index in range(images.shape[0]):
            w_plus, encoder_features = self.encode(images[index: index + 1])
            states.append((w_plus, self.reconstruct(w_plus, encoder_features).residuals))

        def render(index: int, codes: torch.Tensor) -> torch.Tensor:
            return self._edit_one(*states[index], codes)

        return torch.cat([w_plus for w_plus, _ in states]), render

    def _edit_one(self, w_plus: torch.Tensor, residuals: Sequence[torch.Tensor], codes: torch.Tensor) -> torch.Tensor:
        """The editing stream for the codes [S, n, D] of one image (``w_plus`` [1, n, D], its residuals)."""
        count = codes.shape[0]
        expanded = [r.expand(count, -1, -1, -1) for r in residuals]
        return self.edit_stream(codes, w_plus.expand(count, -1, -1), expanded).image
