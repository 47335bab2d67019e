"""Tensors in [-1, 1] to image files (Pillow; torchvision's image I/O is not relied on)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def check_images(images: torch.Tensor, what: str = "images", channels: int | None = 3) -> torch.Tensor:
    """``images`` if they are a batch [B, C, H, W] (C = ``channels``, any when ``None``) of finite values;
    otherwise a ValueError saying what is wrong (NaN / Inf would otherwise flow silently through every network)."""
    if (not isinstance(images, torch.Tensor) or images.ndim != 4
            or (channels is not None and images.shape[1] != channels)):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{what}: expected images [B, {channels or 'C'}, H, W] in [-1, 1], got {shape}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{what}: the images contain NaN or infinite values")
    return images


def resize_images(images: torch.Tensor, size: int | tuple[int, int] | None) -> torch.Tensor:
    """``images`` resized to ``size`` x ``size`` (or to ``(height, width)``): unchanged at that size (or when
    ``size`` is ``None``), area averaging when shrinking, bilinear interpolation (``align_corners=False``) when
    enlarging. Differentiable."""
    if size is None:
        return images
    target = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    height, width = images.shape[-2:]
    if (height, width) == target:
        return images
    mode = "area" if height >= target[0] and width >= target[1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(images, size=target, mode=mode, **kwargs)


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Integer label maps [B, H, W] resized to ``size`` with nearest neighbour (returned as int64)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels.long()
    return F.interpolate(labels[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


def image_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile [B, C, H, W] images into one [C, H', W'] image, ``nrow`` images per row (default: about square)."""
    if images.ndim != 4:
        raise ValueError(f"expected [B, C, H, W] images, got {tuple(images.shape)}")
    batch, channels, height, width = images.shape
    nrow = nrow or math.ceil(math.sqrt(batch))
    rows = math.ceil(batch / nrow)
    grid = images.new_full((channels, rows * (height + padding) + padding, nrow * (width + padding) + padding),
                           pad_value)
    for index in range(batch):
        row, col = divmod(index, nrow)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        grid[:, top: top + height, left: left + width] = images[index]
    return grid


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """A [C, H, W] (or [1, C, H, W]) tensor in [-1, 1] as an 8-bit RGB (or L) Pillow image."""
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a [1|3, H, W] image, got {tuple(image.shape)}")
    array = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = array.permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0] if array.shape[2] == 1 else np.ascontiguousarray(array))


def save_image(image: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Save one image [C, H, W] or a batch [B, C, H, W] (as a grid) in [-1, 1] to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 4 and image.shape[0] > 1:
        image = image_grid(image, nrow=nrow)
    tensor_to_pil(image).save(path)
    return path
