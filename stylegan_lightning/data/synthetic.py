""":class:`SyntheticFaceDataset`: images sampled from a frozen generator together with their true latents.

Inversion methods can be checked against the latent that made the image: with ``noise="const"`` (the default)
``generator(item["w"][None])`` reproduces ``item["image"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..stylegan2 import FrozenGenerator, Generator


def item_seed(seed: int, index: int, stream: int = 0) -> int:
    """A 63-bit seed derived from ``(seed, stream, index)`` (numpy ``SeedSequence``: no collisions between nearby
    tuples, the same value on every machine)."""
    if seed < 0 or index < 0 or stream < 0:
        raise ValueError(f"seed, stream and index must be non-negative, got {seed}, {stream}, {index}")
    state = np.random.SeedSequence([seed, stream, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class SyntheticFaceDataset(Dataset):
    """``length`` generated faces; item ``i`` depends only on ``(seed, stream, i)`` (its own ``torch.Generator``).

    Items: ``{"image": float32 [3, S, S] in [-1, 1] (clamped), "z": [D], "w": [D] or "w_plus": [n_latent, D],
    "index": int}``; with ``w_plus=True`` also ``"z_mix": [D]`` and ``"crossover": int`` (the first W+ row taken
    from ``z_mix``'s w; ``n_latent`` when the item is not mixed).

    Args:
        generator: a :class:`FrozenGenerator` (or a :class:`Generator`, which is wrapped).
        length: number of items.
        truncation: psi of the truncation towards the generator's ``latent_avg``.
        seed, stream: the sample stream (the DataModule uses streams 0/1/2 for train/val/test).
        w_plus: return W+ latents (``"w_plus"``) instead of w.
        mixing_prob: with ``w_plus``, probability of style mixing with a second latent at a random crossover.
        noise: ``"const"`` (stored noise maps; the image is a function of the latent), ``"zero"``, or
            ``"random"`` (fresh maps drawn from the item's own generator, so still deterministic per item).
        resolution: resize generated images to this size (antialiased bicubic), default: the generator's size.
        device: where to run the generator (it is moved there); items are returned on the CPU. Use
            ``num_workers=0`` with a CUDA device.
    """

    def __init__(
        self,
        generator: FrozenGenerator | Generator,
        length: int,
        truncation: float = 1.0,
        seed: int = 0,
        w_plus: bool = False,
        mixing_prob: float = 0.0,
        noise: str = "const",
        resolution: int | None = None,
        device: str | torch.device | None = None,
        stream: int = 0,
    ):
        if length < 1:
            raise ValueError(f"length must be positive, got {length}")
        if noise not in ("const", "zero", "random"):
            raise ValueError(f"noise must be 'const', 'zero' or 'random', got {noise!r}")
        if not 0.0 <= mixing_prob <= 1.0:
            raise ValueError(f"mixing_prob must be in [0, 1], got {mixing_prob}")
        if mixing_prob > 0 and not w_plus:
            raise ValueError("style mixing (mixing_prob > 0) needs w_plus=True")
        if seed < 0 or stream < 0:
            raise ValueError("seed and stream must be non-negative")
        frozen = generator if isinstance(generator, FrozenGenerator) else FrozenGenerator(generator)
        if device is not None:
            frozen = frozen.to(device)
        self.generator = frozen
        self.length = length
        self.truncation = truncation
        self.seed = seed
        self.stream = stream
        self.w_plus = w_plus
        self.mixing_prob = mixing_prob
        self.noise = noise
        self.resolution = resolution or frozen.size

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed(item_seed(self.seed, index, self.stream))

    @torch.no_grad()
    def latents(self, index: int) -> dict[str, Any]:
        """The latents of item ``index`` (CPU tensors), without synthesising the image."""
        return self._latents(index, self._rng(index))

    def _latents(self, index: int, rng: torch.Generator) -> dict[str, Any]:
        frozen, dim = self.generator, self.generator.style_dim
        z = torch.randn(2 if self.w_plus else 1, dim, generator=rng)
        w = frozen.truncate(frozen.mapping(z.to(frozen.device)), self.truncation).cpu()
        if not self.w_plus:
            return {"z": z[0], "w": w[0]}
        crossover = frozen.n_latent
        if self.mixing_prob > 0 and float(torch.rand((), generator=rng)) < self.mixing_prob:
            crossover = int(torch.randint(1, frozen.n_latent, (), generator=rng))
        rows = torch.arange(frozen.n_latent).unsqueeze(1)
        w_plus = torch.where(rows < crossover, w[0], w[1])
        return {"z": z[0], "z_mix": z[1], "w_plus": w_plus, "crossover": crossover}

    def _noise(self, rng: torch.Generator) -> str | list[torch.Tensor]:
        if self.noise != "random":
            return self.noise
        stored = self.generator.noise("const")
        return [torch.randn(n.shape, generator=rng).to(n) for n in stored]

    @torch.no_grad()
    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = self._rng(index)
        item = self._latents(index, rng)
        latent = item["w_plus"] if self.w_plus else item["w"]
        image = self.generator(latent[None].to(self.generator.device), noise=self._noise(rng))
        if image.shape[-1] != self.resolution:
            image = F.interpolate(image, size=(self.resolution, self.resolution), mode="bicubic",
                                  align_corners=False, antialias=True)
        item["image"] = image[0].clamp(-1, 1).cpu()
        item["index"] = index
        return item
