"""GradStyle (arXiv 2402.14398): dual-stream inversion and editing with gradual residuals.

A frozen e4e encoder gives W+ and its hierarchical features T (coarse to fine: c3, p2, p1 of the feature
pyramid). The frozen generator's synthesis is split into M coarse-to-fine stages by *refinement layers* (styled
convs). The paper refines its "3rd, 6th and 8th blocks"; its Table 3 gives their feature scales as 8, 16 and 32 px
(the 10th block is 64 px, the dense "3rd to 8th" is (8, 16, 32) px twice), i.e. the paper counts two blocks per
resolution from 4 px on, and block ``k`` is styled conv ``k - 2`` here (:func:`block_layer`): the default
refinement layers are :data:`DEFAULT_REFINE_LAYERS` ``= (1, 4, 6)``, at 8, 16 and 32 px. (Counting latent codes instead, code 6 drives the 32 px up-conv and code 8 the 64 px one: that reading,
layers ``[2, 5, 7]``, contradicts Table 3 and stays selectable as ``refine_layers``.) After refinement layer m:

- reconstruction stream: the Gradual Residual Module ``F_m = E_res(W_T T_m, W_f f_m^rec)`` (Eq. 2) and the
  Gate&Fusion ``g_m = sigmoid(W_g [f_m^rec, F_m])``, ``f~_m = f_m^rec + g_m * F_m`` (Eq. 3-4); synthesis goes on
  from ``f~_m``;
- editing stream (codes ``W+ + alpha * dW+``): the Global Alignment Module re-aligns ``F_m`` to the edited
  features with the selective-attention :class:`~.attention.Aligner`, then fuses it with the same Gate&Fusion
  (weights shared with the reconstruction stream). An image whose codes were not moved needs no alignment: its
  editing stream is its reconstruction stream.

The networks follow the appendix (Fig. 10-11): ``E_res`` is ResNet-based (conv, PReLU, BatchNorm, residual blocks
that halve the resolution, linear interpolation that doubles it back), ``W_g`` is a stack of stride-1 residual
blocks with leaky ReLUs (:class:`ResBlock`). The figures' exact depths and widths are not in the text: they are the
arguments ``grm_blocks``, ``grm_downsamplings``, ``gate_blocks``, ``hidden`` and ``gate_hidden``.
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
from .augment import perspective_homographies, warp_features

#: Default refinement layers (styled-conv indices): the paper's 3rd, 6th and 8th blocks read with Table 3's
#: feature scales (8, 16 and 32 px), see :func:`block_layer`.
DEFAULT_REFINE_LAYERS = (1, 4, 6)


def block_layer(block: int) -> int:
    """The styled-conv index of the paper's 1-based generator ``block``.

    Table 3 of the paper puts the 3rd block at 8 px, the 6th at 16 px, the 8th at 32 px, the 10th at 64 px and
    blocks 3 to 8 at (8, 16, 32) px twice: two blocks per resolution from 4 px on, the first of them (block 1)
    before any styled conv. So block ``k`` is styled conv ``k - 2`` (block 2 is the 4 px conv, layer 0).

    Raises:
        ValueError: for ``block < 2`` (block 1 has no styled conv to refine).
    """
    if int(block) < 2:
        raise ValueError(f"block {block} has no styled conv (blocks start at 1; block 2 is the 4 px conv)")
    return int(block) - 2


def layer_resolution(layer: int) -> int:
    """Feature resolution after styled conv ``layer`` (0: the 4x4 conv, then two convs per resolution)."""
    return 4 * 2 ** ((layer + 1) // 2)


def default_refine_layers(num_layers: int) -> list[int]:
    """The default refinement layers (:data:`DEFAULT_REFINE_LAYERS`) that a generator with ``num_layers`` styled
    convs has (all three from 32 px up; fewer below)."""
    layers = [layer for layer in DEFAULT_REFINE_LAYERS if layer < num_layers]
    if not layers:
        raise ValueError(f"a generator with {num_layers} styled convs is too small for GradStyle (needs > 1)")
    return layers


def check_refine_layers(layers: Sequence[int], num_layers: int) -> list[int]:
    """``layers`` as a sorted list of valid, distinct styled-conv indices (ValueError otherwise)."""
    layers = [int(layer) for layer in layers]
    if not layers or sorted(set(layers)) != layers or layers[0] < 0 or layers[-1] >= num_layers:
        raise ValueError(f"refine_layers must be increasing, distinct styled-conv indices in 0..{num_layers - 1}, "
                         f"got {layers}")
    return layers


class ResBlock(nn.Module):
    """Residual block of the GRM and Gate&Fusion networks (the paper's ``ResBlock_1`` / ``ResBlock_2``).

    ``y = LReLU(BN(conv3x3(LReLU(BN(conv3x3_s(x))))) + shortcut(x))`` with the first conv of stride ``stride``
    (2: ``ResBlock_2``, halves the resolution; 1: ``ResBlock_1``) and a strided 1x1 conv + BN shortcut when the
    shape changes (identity otherwise). The leaky-ReLU slope is 0.2.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, slope: float = 0.2):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.LeakyReLU(slope),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels))
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels else
                         nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(out_channels)))
        self.activation = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.body(x) + self.shortcut(x))


class GateFusion(nn.Module):
    """``g = sigmoid(W_g [f, F])``, ``f~ = f + g * F`` (Eq. 3-4); returns ``(f~, g)``.

    ``W_g`` (Fig. 11: several ``ResBlock_1`` with leaky ReLUs): a 3x3 conv from ``2 * channels`` to ``hidden``
    and a leaky ReLU, ``blocks`` stride-1 :class:`ResBlock`, a 3x3 conv to ``channels``. ``blocks`` and ``hidden``
    (default ``channels``) are choices: the paper does not give them.
    """

    def __init__(self, channels: int, blocks: int = 2, hidden: int | None = None):
        super().__init__()
        if blocks < 0:
            raise ValueError(f"blocks must be >= 0, got {blocks}")
        hidden = hidden or channels
        self.gate = nn.Sequential(
            nn.Conv2d(2 * channels, hidden, 3, padding=1), nn.LeakyReLU(0.2),
            *[ResBlock(hidden, hidden) for _ in range(blocks)],
            nn.Conv2d(hidden, channels, 3, padding=1))

    def forward(self, features: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate = torch.sigmoid(self.gate(torch.cat([features, residual], dim=1)))
        return features + gate * residual, gate


class GradualResidualModule(nn.Module):
    """``F_m = E_res(W_T T_m, W_f f_m)`` (Eq. 2): encoder features (resized to the generator's) and generator
    features mapped to one ``hidden``-wide space by 1x1 convs, then the ResNet-based residual encoder of Fig. 10.

    ``E_res``: a 3x3 conv, PReLU and BatchNorm (the stem); ``downsamplings`` times a stride-2 :class:`ResBlock`
    (``ResBlock_2``, halving the resolution); ``blocks`` stride-1 :class:`ResBlock`; then per downsampling a
    bilinear interpolation doubling the resolution, added to the features of that resolution on the way down
    (a skip connection: the details of the finest scale are what the module exists for) and a stride-1
    :class:`ResBlock`; a final 3x3 conv to the generator's ``channels``. Depths and ``hidden`` (default
    ``channels``) are choices: the paper's text does not give them. A map smaller than ``2 ** downsamplings``
    pixels is downsampled as far as it goes.
    """

    def __init__(self, encoder_channels: int, channels: int, hidden: int | None = None, blocks: int = 2,
                 downsamplings: int = 1):
        super().__init__()
        if blocks < 0 or downsamplings < 0:
            raise ValueError(f"blocks and downsamplings must be >= 0, got {blocks} and {downsamplings}")
        hidden = hidden or channels
        self.project_encoder = nn.Conv2d(encoder_channels, hidden, 1)
        self.project_generator = nn.Conv2d(channels, hidden, 1)
        self.stem = nn.Sequential(nn.Conv2d(2 * hidden, hidden, 3, padding=1), nn.PReLU(hidden),
                                  nn.BatchNorm2d(hidden))
        self.down = nn.ModuleList(ResBlock(hidden, hidden, stride=2) for _ in range(downsamplings))
        self.middle = nn.Sequential(*[ResBlock(hidden, hidden) for _ in range(blocks)])
        self.up = nn.ModuleList(ResBlock(hidden, hidden) for _ in range(downsamplings))
        self.out = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, encoder_features: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        if encoder_features.shape[-2:] != features.shape[-2:]:
            encoder_features = F.interpolate(encoder_features, size=features.shape[-2:], mode="bilinear",
                                             align_corners=False)
        x = self.stem(torch.cat([self.project_encoder(encoder_features), self.project_generator(features)], dim=1))
        skips = []
        for block in self.down:
            if min(x.shape[-2:]) < 2:
                break
            skips.append(x)
            x = block(x)
        x = self.middle(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = block(F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip)
        return self.out(x)


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
        refine_layers: styled-conv indices after which features are refined (default: those of
            :data:`DEFAULT_REFINE_LAYERS`, 1, 4 and 6 = 8, 16 and 32 px, that exist; ``[2, 5, 7]`` is the
            latent-code reading, at 8, 32 and 64 px); stage m takes the m-th pyramid level (c3, p2, p1; the finest
            again for further stages).
        hidden: width of the residual encoders (default: the generator's channels at that layer).
        grm_blocks, grm_downsamplings: stride-1 residual blocks and halvings of the resolution in each
            :class:`GradualResidualModule` (choices, the paper does not give them: 2 and 1).
        gate_blocks, gate_hidden: stride-1 residual blocks and width of each :class:`GateFusion` gate network
            (choices: 2 and the generator's channels).
        aligner_layers, aligner_heads, aligner_head_dim, top_ratio: the Aligner. The paper gives ``d_k = 64`` and
            multi-head attention over c = 512 channels, i.e. 8 heads of 64; it does not give ``mu`` (``top_ratio``,
            0.5 here, a choice) nor the depth (2 blocks, a choice).
        perspective, perspective_p: distortion scale (paper: 0.15) and per-sample probability (torchvision's
            default 0.5; the paper does not say) of the random perspective warp of the residuals in training
            (:func:`~.augment.perspective_homographies`).
    """

    def __init__(self, encoder: LatentEncoder, generator: FrozenGenerator, refine_layers: Sequence[int] | None = None,
                 hidden: int | None = None, aligner_layers: int = 2, aligner_heads: int = 8,
                 aligner_head_dim: int = 64, top_ratio: float = 0.5, perspective: float = 0.15,
                 grm_blocks: int = 2, grm_downsamplings: int = 1, gate_blocks: int = 2, gate_hidden: int | None = None,
                 perspective_p: float = 0.5):
        super().__init__()
        if not hasattr(encoder.encoder, "features"):
            raise TypeError(f"GradStyle needs a pyramid encoder (e4e / pSp), got {type(encoder.encoder).__name__}")
        self.encoder = encoder.requires_grad_(False).eval()
        self.generator = generator
        num_layers = generator.num_layers
        self.refine_layers = check_refine_layers(refine_layers if refine_layers is not None
                                                 else default_refine_layers(num_layers), num_layers)
        self.perspective = float(perspective)
        if not 0.0 <= perspective_p <= 1.0:
            raise ValueError(f"perspective_p must be in [0, 1], got {perspective_p}")
        self.perspective_p = float(perspective_p)
        levels = self._pyramid_channels()
        gen_channels = generator.generator.channels
        self.grms, self.fusions, self.aligners = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for stage, layer in enumerate(self.refine_layers):
            channels = gen_channels[layer_resolution(layer)]
            self.grms.append(GradualResidualModule(levels[min(stage, len(levels) - 1)], channels, hidden,
                                                   grm_blocks, grm_downsamplings))
            self.fusions.append(GateFusion(channels, gate_blocks, gate_hidden))
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
        self-supervised training of the aligner): one homography per sample, drawn once and applied to the
        residuals of every stage (in normalised coordinates, so every scale sees the same geometric warp, as when
        the layout of the whole image moves). Images whose codes did not move skip the aligner unless ``augment``
        is set."""
        moved = (w_edit != w_plus).flatten(1).any(1) | augment
        homographies = None
        if augment and self.perspective > 0 and residuals:
            homographies = perspective_homographies(residuals[0].shape[0], self.perspective, generator,
                                                    device=residuals[0].device, p=self.perspective_p)

        def align(stage: int, features: torch.Tensor) -> torch.Tensor:
            residual = residuals[stage]
            if homographies is not None:
                residual = warp_features(residual, homographies)
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
