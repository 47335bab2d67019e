"""DiffAugment (Zhao et al., NeurIPS 2020): differentiable augmentation for data-efficient GAN training.

The same random transformation family is applied to real and generated images before the discriminator (in the
discriminator step, the R1 step and the generator step), so the discriminator never sees un-augmented images and
the generator receives gradients through the augmentation. Policy names follow the reference implementation:
``"color"`` (brightness, saturation, contrast), ``"translation"`` (integer shifts up to 1/8 of the size, zero
padded) and ``"cutout"`` (one zeroed square of half the size). Images are [B, C, H, W] in [-1, 1]; every image of
the batch draws its own parameters. An empty policy is the identity.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Generator = torch.Generator | None


def _rand(shape, x: torch.Tensor, generator: Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device if generator else x.device).to(x)


def rand_brightness(x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """Add a per-image offset in [-0.5, 0.5)."""
    return x + (_rand((x.shape[0], 1, 1, 1), x, generator) - 0.5)


def rand_saturation(x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """Scale the deviation from the per-pixel channel mean by a factor in [0, 2)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand((x.shape[0], 1, 1, 1), x, generator) * 2) + mean


def rand_contrast(x: torch.Tensor, generator: Generator = None) -> torch.Tensor:
    """Scale the deviation from the per-image mean by a factor in [0.5, 1.5)."""
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand((x.shape[0], 1, 1, 1), x, generator) + 0.5) + mean


def _randint(low: int, high: int, shape, x: torch.Tensor, generator: Generator) -> torch.Tensor:
    device = generator.device if generator else x.device
    return torch.randint(low, high, shape, generator=generator, device=device).to(x.device)


def rand_translation(x: torch.Tensor, generator: Generator = None, ratio: float = 0.125) -> torch.Tensor:
    """Shift every image by integers in [-ratio * size, ratio * size] per axis; uncovered pixels become 0."""
    batch, _, height, width = x.shape
    shift_x, shift_y = int(height * ratio + 0.5), int(width * ratio + 0.5)
    translation_x = _randint(-shift_x, shift_x + 1, (batch, 1, 1), x, generator)
    translation_y = _randint(-shift_y, shift_y + 1, (batch, 1, 1), x, generator)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(batch, device=x.device), torch.arange(height, device=x.device),
        torch.arange(width, device=x.device), indexing="ij")
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, height + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, width + 1)
    padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return padded.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)


def rand_cutout(x: torch.Tensor, generator: Generator = None, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio * size`` per image at a random position (may overlap the border)."""
    batch, _, height, width = x.shape
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    offset_x = _randint(0, height + (1 - cut_h % 2), (batch, 1, 1), x, generator)
    offset_y = _randint(0, width + (1 - cut_w % 2), (batch, 1, 1), x, generator)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(batch, device=x.device), torch.arange(cut_h, device=x.device),
        torch.arange(cut_w, device=x.device), indexing="ij")
    grid_x = torch.clamp(grid_x + offset_x - cut_h // 2, min=0, max=height - 1)
    grid_y = torch.clamp(grid_y + offset_y - cut_w // 2, min=0, max=width - 1)
    mask = torch.ones(batch, height, width, dtype=x.dtype, device=x.device)
    mask[grid_batch, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


AUGMENT_FNS: dict[str, list[Callable[..., torch.Tensor]]] = {
    "color": [rand_brightness, rand_saturation, rand_contrast],
    "translation": [rand_translation],
    "cutout": [rand_cutout],
}


def parse_policy(policy: str) -> list[str]:
    """``"color,translation,cutout"`` -> names, validated (empty string -> no augmentation)."""
    names = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = [name for name in names if name not in AUGMENT_FNS]
    if unknown:
        raise ValueError(f"unknown DiffAugment ops {unknown}; choose from {sorted(AUGMENT_FNS)}")
    return names


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the DiffAugment ``policy`` to a batch ``x`` [B, C, H, W] (differentiable in ``x``)."""
    for name in parse_policy(policy):
        for fn in AUGMENT_FNS[name]:
            x = fn(x, generator)
    return x


class DiffAugment(nn.Module):
    """:func:`diff_augment` as a module (no parameters); ``policy=""`` is the identity."""

    def __init__(self, policy: str = "color,translation,cutout"):
        super().__init__()
        self.policy = ",".join(parse_policy(policy))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return diff_augment(x, self.policy, generator)

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}"
