"""torchmetrics metrics (DDP-safe: every state is reduced across processes) and per-task collections."""

from .base import MeanOverImages
from .collections import build_metric_networks, codec_metrics, editing_metrics, fidelity_metrics, inversion_metrics
from .fidelity import MSSSIM, PSNR, SSIM, MeanSquaredError
from .landmarks import LandmarkNME
from .machine import AttributeAccuracy, IdentityVerificationAccuracy, ParsingPixelAccuracy
from .networks import DISTS, LPIPS, IdentitySimilarity
from .parsing import ParsingMIoU
from .rate import BitsPerPixel, LikelihoodBitsPerPixel

__all__ = [
    "AttributeAccuracy",
    "IdentityVerificationAccuracy",
    "ParsingPixelAccuracy",
    "BitsPerPixel",
    "DISTS",
    "IdentitySimilarity",
    "LPIPS",
    "LandmarkNME",
    "LikelihoodBitsPerPixel",
    "MSSSIM",
    "MeanOverImages",
    "MeanSquaredError",
    "PSNR",
    "ParsingMIoU",
    "SSIM",
    "build_metric_networks",
    "codec_metrics",
    "editing_metrics",
    "fidelity_metrics",
    "inversion_metrics",
]
