"""HyperStyle (Alaluf et al., CVPR 2022): a frozen W-encoder gives the code, a hypernetwork refines the frozen
generator's conv kernels for that one image.

Per image x: ``w = E_w(x)`` (fixed), ``ŷ_0 = G(w)``; then for t = 1..n

    Δ_t = Δ_{t-1} + H(resize(x) ⊕ resize(ŷ_{t-1})),   ŷ_t = G(w; W ↦ W·(1 + Δ_t))

with Δ_0 = 0 (the first step takes H's output as is) and untuned slots left ``None``. Offsets act inside the
modulated convolutions before demodulation (:class:`~stylegan_lightning.stylegan2.layers.ModulatedConv2d`). The
generator's stored noise maps are used throughout (official ``randomize_noise=False``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..encoders.inverter import LatentEncoder
from ..stylegan2.frozen import FrozenGenerator
from ..stylegan2.generator import Generator
from ..utils.images import check_images, resize_images
from .hypernet import HyperNetwork



@dataclass
class HyperStyleOutput:
    """``reconstructions[0]`` is the W-encoder's (no offsets), ``reconstructions[t]`` after t refinement steps;
    ``deltas`` are the accumulated offsets after the last step (``None`` for untuned slots)."""

    w_plus: torch.Tensor
    reconstructions: list[torch.Tensor]
    deltas: list[torch.Tensor | None]

    @property
    def reconstruction(self) -> torch.Tensor:
        return self.reconstructions[-1]


def accumulate(previous: Sequence[torch.Tensor | None] | None,
               update: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
    """Δ_{t-1} + H(...): ``update`` as is when there is no previous offset; ``None`` stays ``None``."""
    if previous is None:
        return list(update)
    if len(previous) != len(update):
        raise ValueError(f"{len(previous)} previous offsets for {len(update)} slots")
    return [None if u is None else (u if p is None else p + u) for p, u in zip(previous, update)]


class HyperStyle(nn.Module):
    """Frozen W-encoder + trainable :class:`~.hypernet.HyperNetwork` + frozen generator.

    Attributes: ``hypernet``, ``decoder`` (:class:`FrozenGenerator`), ``w_encoder`` (:class:`LatentEncoder`, frozen,
    always in eval mode, run without gradient; ``None`` for a hypernetwork loaded without its W-encoder),
    ``n_iters`` (refinement steps, 5 by default), ``input_size`` (the hypernetwork's input resolution; images and
    reconstructions are resized to it), ``opts`` (official options loaded with or to be saved with the model).

    Without a W-encoder the model can still be inspected, saved, converted and fine-tuned, and :meth:`run` works
    from given codes (``w_plus=...``); an inversion from images raises a :class:`CheckpointError` naming
    ``missing_w_encoder`` (the file that was expected) until :meth:`attach_w_encoder` gives it one. ``latent_avg``
    is kept for saving (the official file stores it beside the hypernetwork).
    """

    def __init__(self, hypernet: HyperNetwork, decoder: FrozenGenerator | Generator, w_encoder: LatentEncoder | None,
                 n_iters: int = 5, opts: dict | None = None, latent_avg: torch.Tensor | None = None,
                 missing_w_encoder: str | None = None):
        super().__init__()
        if isinstance(decoder, Generator):
            decoder = FrozenGenerator(decoder)
        if hypernet.slot_shapes != [tuple(s) for s in decoder.weight_slot_shapes()]:
            raise ValueError("the hypernetwork's slot shapes do not match the generator's weight_slot_shapes()")
        if n_iters < 1:
            raise ValueError(f"n_iters must be ≥ 1, got {n_iters}")
        self.hypernet = hypernet
        self.decoder = decoder
        self.w_encoder: LatentEncoder | None = None
        self.n_iters = int(n_iters)
        self.opts = dict(opts or {})
        self.missing_w_encoder = missing_w_encoder or "no W-encoder was given"
        self._latent_avg = None if latent_avg is None else latent_avg.detach().clone()
        if w_encoder is not None:
            self.attach_w_encoder(w_encoder)

    def attach_w_encoder(self, w_encoder: LatentEncoder) -> "HyperStyle":
        """Give the model its frozen W-encoder (checked against the generator and the hypernetwork)."""
        decoder, hypernet = self.decoder, self.hypernet
        if (w_encoder.n_styles, w_encoder.style_dim) != (decoder.n_latent, decoder.style_dim):
            raise ValueError(f"the W-encoder predicts [{w_encoder.n_styles}, {w_encoder.style_dim}] codes but the "
                             f"generator takes [{decoder.n_latent}, {decoder.style_dim}]")
        if hypernet.input_nc != 2 * w_encoder.input_nc:
            raise ValueError(f"hypernet input_nc={hypernet.input_nc} != 2 × image channels ({w_encoder.input_nc})")
        w_encoder.requires_grad_(False)
        w_encoder.eval()
        self.w_encoder = w_encoder
        return self

    @property
    def latent_avg(self) -> torch.Tensor | None:
        """The average code stored with the model (the W-encoder's when it has one)."""
        if self.w_encoder is not None and self.w_encoder.latent_avg is not None:
            return self.w_encoder.latent_avg
        return self._latent_avg

    def require_w_encoder(self) -> LatentEncoder:
        """The W-encoder, or one :class:`CheckpointError` line naming the missing file and what it is for."""
        if self.w_encoder is None:
            from ..serialization import CheckpointError

            raise CheckpointError(f"HyperStyle needs its W-encoder to invert images (the frozen encoder that gives "
                                  f"the initial W code the hypernetwork refines): {self.missing_w_encoder}; "
                                  "give it with --w-encoder FILE / load_hyperstyle(w_encoder=...)")
        return self.w_encoder

    @property
    def input_size(self) -> int:
        return self.hypernet.input_size

    @property
    def layers_to_tune(self) -> list[int]:
        return list(self.hypernet.layers_to_tune)

    def train(self, mode: bool = True) -> "HyperStyle":
        super().train(mode)
        if self.w_encoder is not None:
            self.w_encoder.eval()  # frozen: BatchNorm statistics never move
        return self

    # ------------------------------------------------------------------ steps
    def synthesize(self, w_plus: torch.Tensor, deltas: Sequence[torch.Tensor | None] | None = None) -> torch.Tensor:
        """G(w_plus) with the generator's stored noise and the given per-slot offsets."""
        return self.decoder(w_plus, noise="const", weight_deltas=deltas)

    def initial(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_plus, reconstruction)`` from the frozen W-encoder and the plain generator (no gradient)."""
        w_encoder = self.require_w_encoder()
        with torch.no_grad():
            w_encoder.eval()
            w_plus = w_encoder(images)
            return w_plus, self.synthesize(w_plus)

    def hypernet_input(self, images: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """x ⊕ ŷ at the hypernetwork's resolution."""
        return torch.cat([resize_images(images, self.input_size), resize_images(reconstruction, self.input_size)], 1)

    def refine_step(self, images: torch.Tensor, reconstruction: torch.Tensor, w_plus: torch.Tensor,
                    deltas: Sequence[torch.Tensor | None] | None) -> tuple[list[torch.Tensor | None], torch.Tensor]:
        """One step: ``Δ_t = Δ_{t-1} + H(x ⊕ ŷ_{t-1})`` (``deltas=None`` for the first) and ``ŷ_t = G(w; Δ_t)``."""
        new = accumulate(deltas, self.hypernet(self.hypernet_input(images, reconstruction)))
        return new, self.synthesize(w_plus, new)

    def run(self, images: torch.Tensor, n_iters: int | None = None, w_plus: torch.Tensor | None = None,
            detach_between: bool = False) -> HyperStyleOutput:
        """The full iterative inversion: ``n_iters`` (default :attr:`n_iters`) steps from the W-encoder's code
        (or the given ``w_plus``). ``detach_between`` cuts the graph between steps (the official training does,
        with a backward pass per step)."""
        n_iters = self.n_iters if n_iters is None else int(n_iters)
        if n_iters < 0:
            raise ValueError(f"n_iters must be ≥ 0, got {n_iters}")
        if w_plus is None:
            w_plus, reconstruction = self.initial(images)
        else:
            with torch.no_grad():
                reconstruction = self.synthesize(w_plus)
        reconstructions, deltas = [reconstruction], None
        for _ in range(n_iters):
            if detach_between and deltas is not None:
                deltas = [None if d is None else d.detach() for d in deltas]
                reconstruction = reconstruction.detach()
            deltas, reconstruction = self.refine_step(images, reconstruction, w_plus, deltas)
            reconstructions.append(reconstruction)
        if deltas is None:
            deltas = [None] * self.decoder.n_weight_slots
        return HyperStyleOutput(w_plus, reconstructions, deltas)

    def forward(self, images: torch.Tensor, n_iters: int | None = None) -> HyperStyleOutput:
        return self.run(images, n_iters)

    # ------------------------------------------------------------------ tools' interface
    def invert(self, images: torch.Tensor, n_iters: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_plus, reconstruction)`` after the refinement steps (the inversion tools' interface)."""
        output = self.run(check_images(images, "HyperStyle.invert"), n_iters)
        return output.w_plus, output.reconstruction

    def edit(self, images: torch.Tensor, w_plus: torch.Tensor, codes: torch.Tensor,
             n_iters: int | None = None) -> torch.Tensor:
        """Edited images of one source image (``images`` [1, 3, H, W], its ``w_plus`` [1, n, D]): the offsets are
        predicted for the source once and reused for every code of ``codes`` [S, n, D] -> [S, 3, H, W]."""
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if w_plus.ndim == 2:
            w_plus = w_plus.unsqueeze(0)
        if codes.ndim == 2:
            codes = codes.unsqueeze(0)
        if images.shape[0] != 1 or w_plus.shape[0] != 1:
            raise ValueError(f"edit takes one source image, got images {tuple(images.shape)}, "
                             f"w_plus {tuple(w_plus.shape)}")
        deltas = self.run(images, n_iters, w_plus=w_plus).deltas
        return self.synthesize(codes, deltas)  # batch-1 offsets broadcast over the codes

    def prepare_edits(self, images: torch.Tensor, n_iters: int | None = None
                      ) -> tuple[torch.Tensor, Callable[[int, torch.Tensor], torch.Tensor]]:
        """Invert a batch once for editing: ``(w_plus, render)``, where ``render(i, codes)`` gives the images of
        codes [S, n, D] with image ``i``'s predicted offsets (what :meth:`edit` does, without a second
        inversion)."""
        output = self.run(check_images(images, "HyperStyle.prepare_edits"), n_iters)

        def render(index: int, codes: torch.Tensor) -> torch.Tensor:
            return self.synthesize(codes, [None if d is None else d[index: index + 1] for d in output.deltas])

        return output.w_plus, render


def build_hyperstyle(w_encoder: LatentEncoder, generator: FrozenGenerator | Generator,
                     layers_to_tune: str | Sequence[int] | None = None, n_iters: int = 5, input_size: int = 256,
                     zero_init: bool = False, shared_layers: Sequence[int] | None = None,
                     resnet34_weights=None, resnet34_stem: bool = False) -> HyperStyle:
    """A new HyperStyle over a (trained) W-encoder and a generator: hypernetwork with random weights (or the
    user-supplied torchvision ResNet-34 ``resnet34_weights`` in its body, the official initialisation, and with
    ``resnet34_stem`` in its stem too)."""
    if isinstance(generator, Generator):
        generator = FrozenGenerator(generator)
    hypernet = HyperNetwork(generator.weight_slot_shapes(), layers_to_tune, input_nc=2 * w_encoder.input_nc,
                            input_size=input_size, shared_layers=shared_layers, zero_init=zero_init)
    if resnet34_weights is not None:
        from .hypernet import init_from_resnet34

        init_from_resnet34(hypernet, resnet34_weights, stem=resnet34_stem)
    return HyperStyle(hypernet, generator, w_encoder, n_iters)


__all__ = ["HyperStyle", "HyperStyleOutput", "accumulate", "build_hyperstyle"]
