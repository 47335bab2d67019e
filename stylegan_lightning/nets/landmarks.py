"""Face landmarks: a differentiable FAN heatmap network for losses, and dlib landmarks for evaluation.

- :class:`LandmarkNet` wraps a frozen :class:`~stylegan_lightning.nets.fan.FAN`: ``heatmaps(images)`` and
  ``forward(images) -> [B, 68, 2]`` landmark coordinates in input pixels (pixel centres at integers) through a
  differentiable soft-argmax (``mode="soft"``) or face-alignment's arg-max + quarter-pixel refinement
  (``mode="hard"``, evaluation only). :func:`build_landmark_net` loads the 2D-FAN-4 weights.
- :class:`DlibLandmarkDetector` (re-exported from :mod:`.dlib_landmarks`) and the heatmap helpers of
  :mod:`.heatmaps` (:func:`soft_argmax`, :func:`hard_argmax`, :func:`heatmap_targets`, the 68-point mirror
  permutation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ..weights import resolve_weight
from ._state import FrozenModule
from .dlib_landmarks import ALIGNED_FACE_BOX, DlibLandmarkDetector
from .fan import FAN, FAN_INPUT_SIZE, load_fan
from .heatmaps import (FAN_TARGET_SIGMA, FLIP_PERMUTATION_68, hard_argmax, heatmap_targets, mirror_landmarks,
                       soft_argmax)

__all__ = [
    "ALIGNED_FACE_BOX", "FAN", "FAN_TARGET_SIGMA", "FFHQ_FAN_CROP", "FLIP_PERMUTATION_68", "DlibLandmarkDetector",
    "LandmarkNet", "build_landmark_net", "fan_crop_from_box", "hard_argmax", "heatmap_targets",
    "mirror_landmarks", "soft_argmax",
]


def fan_crop_from_box(box: Sequence[float]) -> tuple[float, float, float, float]:
    """The square region face-alignment feeds to FAN for a detector ``box`` (left, top, right, bottom): centre
    moved up by 0.12 box heights, side ``200 * (w + h) / 195`` (its ``center`` / ``scale`` with reference scale
    195). Works on pixels or on fractions of a square image."""
    left, top, right, bottom = (float(v) for v in box)
    width, height = right - left, bottom - top
    cx, cy = (left + right) / 2, (top + bottom) / 2 - 0.12 * height
    half = 100.0 * (width + height) / 195.0
    return cx - half, cy - half, cx + half, cy + half


FFHQ_FAN_CROP = fan_crop_from_box(ALIGNED_FACE_BOX)
"""FAN input region for FFHQ / CelebA-HQ aligned faces (fractions; about (-0.125, -0.087, 1.105, 1.144)): the
face-alignment crop of dlib's mean face box on such images. It reaches slightly outside the image, which is
padded with black as face-alignment does."""

MODES = ("soft", "hard")


class LandmarkNet(FrozenModule):
    """Frozen FAN landmark network on aligned face images in [-1, 1] of any size.

    - ``crop``: region given to FAN (left, top, right, bottom as fractions of width / height; may extend outside
      the image, padded with black); ``None`` = the whole image. Default :data:`FFHQ_FAN_CROP`.
    - ``input_size``: side FAN sees (256 for the released weights; the crop is resized with antialiased bilinear
      interpolation); heatmaps are ``input_size / 4`` square.
    - ``temperature`` / ``window``: the soft-argmax settings (see :func:`soft_argmax`).

    ``heatmaps(images)`` returns the last hourglass's [B, 68, s, s] heatmaps; ``forward(images, mode)`` returns
    [B, 68, 2] (x, y) in input pixels, pixel centres at integers. Everything but ``mode="hard"`` is
    differentiable with respect to the images.
    """

    def __init__(self, fan: FAN, crop: Sequence[float] | None = FFHQ_FAN_CROP, input_size: int = FAN_INPUT_SIZE,
                 temperature: float = 0.1, window: int | None = 9):
        super().__init__()
        if input_size % 64:
            raise ValueError(f"input_size must be a multiple of 64, got {input_size}")
        if crop is not None and (len(crop) != 4 or crop[2] <= crop[0] or crop[3] <= crop[1]):
            raise ValueError(f"crop must be (left, top, right, bottom) with right > left, bottom > top; got {crop}")
        self.fan = fan
        self.crop = None if crop is None else tuple(float(v) for v in crop)
        self.input_size, self.temperature, self.window = input_size, temperature, window
        self.freeze()

    @property
    def heatmap_size(self) -> int:
        return self.input_size // 4

    def crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """The crop (left, top, right, bottom) in whole pixels (edges) for an image of this size."""
        if self.crop is None:
            return 0, 0, width, height
        left, top, right, bottom = self.crop
        return round(left * width), round(top * height), round(right * width), round(bottom * height)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """FAN's input: the crop of ``images`` ([B, 3, H, W] in [-1, 1]) resized to ``input_size``, in [0, 1]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
        height, width = images.shape[-2:]
        left, top, right, bottom = self.crop_box(height, width)
        pad = (max(0, -left), max(0, right - width), max(0, -top), max(0, bottom - height))
        if any(pad):
            images = F.pad(images, pad, value=-1.0)
        images = images[:, :, top + pad[2]:bottom + pad[2], left + pad[0]:right + pad[0]]
        if images.shape[-2:] != (self.input_size, self.input_size):
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        return (images + 1) / 2

    def heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """Heatmaps [B, 68, input_size / 4, input_size / 4] of the last hourglass."""
        return self.fan(self.prepare(images))[-1]

    def heatmap_to_image(self, points: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Heatmap pixel coordinates -> input-image pixel coordinates (both with pixel centres at integers);
        ``image_size`` = (H, W)."""
        left, top, right, bottom = self.crop_box(*image_size)
        scale = points.new_tensor([(right - left) / self.heatmap_size, (bottom - top) / self.heatmap_size])
        return points.new_tensor([left, top]) + (points + 0.5) * scale - 0.5

    def image_to_heatmap(self, points: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Inverse of :meth:`heatmap_to_image`."""
        left, top, right, bottom = self.crop_box(*image_size)
        scale = points.new_tensor([(right - left) / self.heatmap_size, (bottom - top) / self.heatmap_size])
        return (points + 0.5 - points.new_tensor([left, top])) / scale - 0.5

    def target_heatmaps(self, landmarks: torch.Tensor, image_size: tuple[int, int],
                        sigma: float = FAN_TARGET_SIGMA) -> torch.Tensor:
        """Gaussian heatmaps (FAN's resolution) for landmarks [B, 68, 2] given in input-image pixels."""
        return heatmap_targets(self.image_to_heatmap(landmarks, image_size), self.heatmap_size, sigma)

    def forward(self, images: torch.Tensor, mode: str = "soft") -> torch.Tensor:
        """Landmarks [B, 68, 2] (x, y) in input pixels: ``"soft"`` (differentiable soft-argmax) or ``"hard"``
        (arg-max + quarter-pixel refinement, as face-alignment evaluates)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        maps = self.heatmaps(images)
        points = soft_argmax(maps, self.temperature, self.window) if mode == "soft" else hard_argmax(maps)
        return self.heatmap_to_image(points, images.shape[-2:])


def build_landmark_net(path: str | Path | None = None, pooling: str = "avg", **options) -> LandmarkNet:
    """:class:`LandmarkNet` with the 2D-FAN-4 weights at ``path`` (default: the weights registry,
    key ``fan_landmarks``; a missing file raises :class:`~stylegan_lightning.weights.MissingWeightError`).
    ``options`` go to :class:`LandmarkNet` (``crop``, ``input_size``, ``temperature``, ``window``)."""
    return LandmarkNet(load_fan(resolve_weight("fan_landmarks", path), pooling=pooling), **options)
