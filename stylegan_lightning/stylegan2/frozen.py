"""The frozen StyleGAN2 prior every method builds on."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from .generator import FeatureHook, Generator, LayerHook

NOISE_MODES = ("const", "random", "zero")


class FrozenGenerator(nn.Module):
    """A :class:`Generator` that is always in eval mode and never trained; gradients still reach its inputs.

    - ``latent_avg`` (mean w, shape [style_dim]) comes from the checkpoint or, when the file has none, from
      ``n_mean_latent`` mapped samples with a fixed seed; it is a persistent buffer, saved with the methods.
    - Inputs: z (``space="z"``), w [B, style_dim] or W+ [B, n_latent, style_dim] (``space="w"``).
    - Noise: ``"const"`` (the generator's stored noise maps: deterministic, what inversion and coding use, and the
      default), ``"random"``, ``"zero"`` or an explicit list.
    - It has no trainable parameters, so DDP does not treat it as a model to synchronise and optimisers built from
      ``p.requires_grad`` parameters never see it.
    """

    def __init__(self, generator: Generator, latent_avg: torch.Tensor | None = None, n_mean_latent: int = 10000,
                 seed: int = 0):
        super().__init__()
        self.generator = generator
        if latent_avg is None:
            latent_avg = generator.latent_avg
        if latent_avg is None:
            latent_avg = generator.mean_latent(n_mean_latent, torch.Generator().manual_seed(seed))
        latent_avg = latent_avg.detach().float().reshape(-1, generator.style_dim).mean(0)
        self.register_buffer("latent_avg", latent_avg.to(generator.input.input.device))
        self.generator.latent_avg = self.latent_avg
        self.generator.requires_grad_(False)
        super().train(False)

    @classmethod
    def from_file(cls, path: str | Path, **config: Any) -> "FrozenGenerator":
        """Load any supported generator file (see :func:`~stylegan_lightning.stylegan2.load_generator`)."""
        from .checkpoints import load_generator

        return cls(load_generator(path, **config))

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], prefix: str = "") -> "FrozenGenerator":
        """The frozen generator stored under ``prefix`` in a method's state dict (``{prefix}generator.*`` in the
        rosinality layout and ``{prefix}latent_avg``), e.g. ``"decoder."`` in a HyperStyle model's state."""
        from .checkpoints import build_generator, strip_prefix

        weights = strip_prefix(state, prefix + "generator.")
        return cls(build_generator(weights, state.get(prefix + "latent_avg")))

    def train(self, mode: bool = True) -> "FrozenGenerator":
        """Stays in eval mode whatever is asked (Lightning calls ``train()`` on the whole model)."""
        return super().train(False)

    # ------------------------------------------------------------------ metadata
    @property
    def size(self) -> int:
        return self.generator.size

    @property
    def style_dim(self) -> int:
        return self.generator.style_dim

    @property
    def n_latent(self) -> int:
        """Number of style vectors in W+ (18 at 1024, 16 at 512, 14 at 256)."""
        return self.generator.n_latent

    @property
    def num_layers(self) -> int:
        """Number of noise maps."""
        return self.generator.num_layers

    @property
    def n_blocks(self) -> int:
        return self.generator.n_blocks

    @property
    def block_resolutions(self) -> list[int]:
        return self.generator.block_resolutions

    @property
    def n_weight_slots(self) -> int:
        return self.generator.n_weight_slots

    def weight_slot_shapes(self) -> list[tuple[int, int, int, int]]:
        return self.generator.weight_slot_shapes()

    @property
    def device(self) -> torch.device:
        return self.latent_avg.device

    # ------------------------------------------------------------------ latents
    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, style_dim] -> w [B, style_dim]."""
        return self.generator.style(z)

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        """``latent_avg + psi * (w - latent_avg)``."""
        return self.latent_avg + psi * (w - self.latent_avg) if psi != 1 else w

    def to_w_plus(self, w: torch.Tensor) -> torch.Tensor:
        """w [B, D] -> W+ [B, n_latent, D]; a W+ tensor is returned unchanged (after a shape check)."""
        if w.ndim == 2 and w.shape[1] == self.style_dim:
            return w.unsqueeze(1).expand(-1, self.n_latent, -1)
        if w.ndim == 3 and w.shape[1:] == (self.n_latent, self.style_dim):
            return w
        raise ValueError(
            f"expected w [B, {self.style_dim}] or W+ [B, {self.n_latent}, {self.style_dim}], got {tuple(w.shape)}"
        )

    def sample_w(self, n: int, truncation: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` random w = mapping(z), z ~ N(0, I), truncated towards ``latent_avg``."""
        z = torch.randn(n, self.style_dim, generator=generator).to(self.latent_avg)
        return self.truncate(self.mapping(z), truncation)

    def noise(self, mode: str | Sequence[torch.Tensor | None] = "const") -> list[torch.Tensor | None]:
        """The per-layer noise list for ``mode`` (``const``, ``random``, ``zero``) or a given list."""
        if not isinstance(mode, str):
            return list(mode)
        if mode == "const":
            return self.generator.stored_noise()
        if mode == "random":
            return [None] * self.num_layers
        if mode == "zero":
            return [torch.zeros_like(n) for n in self.generator.stored_noise()]
        raise ValueError(f"unknown noise mode {mode!r}; expected one of {NOISE_MODES} or a list of tensors")

    # ------------------------------------------------------------------ synthesis
    def forward(
        self,
        latent: torch.Tensor,
        space: str = "w",
        noise: str | Sequence[torch.Tensor | None] = "const",
        truncation: float = 1.0,
        weight_deltas: Sequence[torch.Tensor | None] | None = None,
        feature_hook: FeatureHook | None = None,
        return_features: bool = False,
        layer_hook: LayerHook | None = None,
    ):
        """Synthesise images in [-1, 1] from z (``space="z"``), w or W+ (``space="w"``).

        ``weight_deltas``, ``feature_hook``, ``return_features`` and ``layer_hook`` are passed to
        :meth:`Generator.synthesize`.
        """
        if space not in ("z", "w"):
            raise ValueError(f"space must be 'z' or 'w', got {space!r}")
        if not torch.isfinite(latent).all():
            raise ValueError("latent contains NaN or Inf")
        w = self.mapping(latent) if space == "z" else latent
        w_plus = self.to_w_plus(self.truncate(w, truncation))
        return self.generator.synthesize(w_plus, self.noise(noise), weight_deltas, feature_hook, return_features,
                                         layer_hook)

    def synthesis_block(self, index, latent, features=None, skip=None, noise="const", weight_deltas=None):
        """One synthesis block on W+ ``latent`` (see :meth:`Generator.synthesis_block`)."""
        return self.generator.synthesis_block(index, latent, features, skip, self.noise(noise), weight_deltas)
