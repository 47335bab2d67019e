"""Pixel fidelity: L2, PSNR, SSIM, MS-SSIM (images in [-1, 1])."""

from __future__ import annotations


import torch
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)

from ..utils.warn import warn_caller
from .base import MeanOverImages

DATA_RANGE = 2.0  # images live in [-1, 1]
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


class MeanSquaredError(MeanOverImages):
    """Per-image mean squared error in [-1, 1] units (pSp's "L2"), averaged over images."""

    higher_is_better = False

    def per_image(self, preds, target):
        return (preds.double() - target.double()).pow(2).flatten(1).mean(1)


def psnr(preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB [B] of images [B, ...] in [-1, 1] (peak-to-peak 2), in float64; the mean squared
    error is floored at 1e-12 so equal images give a finite 130 dB."""
    mse = (preds.double() - target.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(DATA_RANGE**2 / mse.clamp_min(1e-12))


class PSNR(MeanOverImages):
    """Per-image peak signal-to-noise ratio in dB (peak = the [-1, 1] range; :func:`psnr` of the images clamped
    to it), averaged over images."""

    higher_is_better = True

    def per_image(self, preds, target):
        return psnr(preds.clamp(-1, 1), target.clamp(-1, 1))


class SSIM(MeanOverImages):
    """Per-image SSIM (Gaussian window 11, sigma 1.5), averaged over images."""

    higher_is_better = True

    def per_image(self, preds, target):
        return structural_similarity_index_measure(preds.float().clamp(-1, 1), target.float().clamp(-1, 1),
                                                   data_range=DATA_RANGE, reduction="none")


class MSSSIM(MeanOverImages):
    """Per-image multi-scale SSIM, averaged over images.

    The standard 5 scales need images larger than (kernel_size - 1) * 2**4 = 160 px. For smaller images the
    coarsest scales are dropped (betas renormalised) and the kernel shrinks if needed, with one warning saying
    so -- the number is then not comparable to full MS-SSIM and is reported under the same name only by
    choice of the caller.
    """

    higher_is_better = True

    def __init__(self, kernel_size: int = 11, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self._warned = False

    def scales_for(self, size: int) -> tuple[int, tuple[float, ...]]:
        """(kernel size, betas) usable at ``size`` px."""
        kernel = self.kernel_size
        for scales in range(len(MS_SSIM_BETAS), 0, -1):
            if size > (kernel - 1) * 2 ** (scales - 1):
                break
        else:
            scales, kernel = 1, max(3, (size - 1) // 2 * 2 - 1)
        if scales == len(MS_SSIM_BETAS):
            return kernel, MS_SSIM_BETAS
        betas = MS_SSIM_BETAS[:scales]
        return kernel, tuple(b / sum(betas) for b in betas)

    def per_image(self, preds, target):
        size = min(preds.shape[-2:])
        kernel, betas = self.scales_for(size)
        if (kernel, len(betas)) != (self.kernel_size, len(MS_SSIM_BETAS)) and not self._warned:
            warn_caller(f"MS-SSIM on {size}px images uses {len(betas)} of {len(MS_SSIM_BETAS)} scales "
                        f"(kernel {kernel}); not comparable to full-size MS-SSIM", RuntimeWarning)
            self._warned = True
        preds, target = preds.float().clamp(-1, 1), target.float().clamp(-1, 1)
        if len(betas) == 1:  # a single scale is plain SSIM
            return structural_similarity_index_measure(preds, target, data_range=DATA_RANGE, kernel_size=kernel,
                                                       reduction="none")
        return multiscale_structural_similarity_index_measure(
            preds, target, data_range=DATA_RANGE, kernel_size=kernel, betas=betas, reduction="none")
