"""Fixed, differentiable face crops for aligned face images of any resolution.

The toolkit's images are already aligned (FFHQ / StyleGAN alignment), so no landmark detector runs: each identity
backend gets the *fixed* warp that maps the average aligned face onto the template it was trained with.

Coordinates: a template of an input alignment is given as fractions of the image width / height (x right, y down,
the image edges at 0 and 1, so pixel ``i`` has its centre at ``(i + 0.5) / size``); backend templates are in the
backends' pixel coordinates (OpenCV convention: pixel ``i`` has its centre at ``i``). Point order everywhere:
image-left eye centre (the subject's right eye), image-right eye centre, nose tip, image-left mouth corner,
image-right mouth corner.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Points = Sequence[Sequence[float]]

# Average 5 landmarks of FFHQ-aligned faces (fractions of the image size). Measured for this toolkit with dlib's
# 68-point predictor (shape_predictor_68_face_landmarks.dat after the frontal HOG detector, one upsampling) on the
# 66 FFHQ-style aligned 256-px faces of the shared data (FFHQ 00000-00009 and 56 CelebA-HQ) and on their mirror
# images (132 faces): eye centre = mean of points 36-41 / 42-47, nose tip = point 30, mouth corners = points 48 / 54;
# averaged, then made left-right symmetric (differences were <= 0.002). Spread across faces (std): eyes 0.006,
# nose 0.03 (x, head yaw) / 0.026 (y), mouth corners 0.02.
FFHQ_FIVE_POINTS: tuple[tuple[float, float], ...] = (
    (0.3780, 0.4819), (0.6220, 0.4819), (0.5000, 0.6249), (0.3900, 0.7363), (0.6100, 0.7363))

# The same measurement on the shared CelebA 64x64 set (celeba-64.zip: img_align_celeba, centre square crop),
# images upsampled x4 (bicubic) for dlib: 1146 of the first 1200 images with one detected face, symmetrised.
CELEBA64_FIVE_POINTS: tuple[tuple[float, float], ...] = (
    (0.3918, 0.5224), (0.6082, 0.5224), (0.5000, 0.6465), (0.4020, 0.7494), (0.5980, 0.7494))

#: input alignments known by name
FACE_TEMPLATES: dict[str, tuple[tuple[float, float], ...]] = {"ffhq": FFHQ_FIVE_POINTS,
                                                               "celeba-64": CELEBA64_FIVE_POINTS}

# SphereFace / MobileFaceNet 96x112 (width x height) template, pixel coordinates
SPHEREFACE_96x112: tuple[tuple[float, float], ...] = (
    (30.2946, 51.6963), (65.5318, 51.5014), (48.0252, 71.7366), (33.5493, 92.3655), (62.7299, 92.2041))
# insightface ArcFace 112x112 template (``arcface_dst``), pixel coordinates
ARCFACE_112x112: tuple[tuple[float, float], ...] = (
    (38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041))

# pSp / e4e identity-loss crop: rows 35:223, cols 32:220 of the 256-px image, as fractions (top, bottom, left, right)
PSP_ID_BOX: tuple[float, float, float, float] = (35 / 256, 223 / 256, 32 / 256, 220 / 256)


def face_template(alignment: str | Points) -> np.ndarray:
    """A ``[5, 2]`` array of fractional landmark positions: a name from :data:`FACE_TEMPLATES` or the points."""
    if isinstance(alignment, str):
        try:
            alignment = FACE_TEMPLATES[alignment]
        except KeyError:
            raise ValueError(f"unknown face alignment {alignment!r}; known: {sorted(FACE_TEMPLATES)}") from None
    points = np.asarray(alignment, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"a face template is 5 (x, y) points, got shape {points.shape}")
    return points


def similarity_transform(source: Points, target: Points) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping ``source`` points
    onto ``target`` points (Umeyama 1991). Returns the ``[2, 3]`` matrix ``M`` with ``target ~ M @ [x, y, 1]``."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / (src_c**2).sum(1).mean())
    translation = dst_mean - scale * rotation @ src_mean
    return np.concatenate([scale * rotation, translation[:, None]], axis=1)


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def sampling_theta(pixel_map: np.ndarray, input_size: tuple[int, int], output_size: tuple[int, int]) -> np.ndarray:
    """``affine_grid`` parameters (``align_corners=False``) for a ``[2, 3]`` map from *output* to *input*
    continuous pixel coordinates (image spans ``[0, W] x [0, H]``)."""
    (h_in, w_in), (h_out, w_out) = input_size, output_size
    from_output = np.array([[w_out / 2, 0, w_out / 2], [0, h_out / 2, h_out / 2], [0, 0, 1]])
    to_input = np.array([[2 / w_in, 0, -1], [0, 2 / h_in, -1], [0, 0, 1]])
    return (to_input @ _homogeneous(pixel_map) @ from_output)[:2]


def resample(images: torch.Tensor, theta: torch.Tensor, output_size: tuple[int, int],
             input_pixels_per_output: float) -> torch.Tensor:
    """Differentiable affine resampling with anti-aliasing: bilinear ``grid_sample`` on a grid ``k`` times finer
    than the output (``k = ceil(input pixels per output pixel)``), then ``k x k`` average pooling."""
    k = max(1, math.ceil(input_pixels_per_output - 1e-3))
    b, c = images.shape[:2]
    grid = F.affine_grid(theta.to(images).expand(b, 2, 3), [b, c, output_size[0] * k, output_size[1] * k],
                         align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return F.avg_pool2d(out, k) if k > 1 else out


class SimilarityCrop(nn.Module):
    """Warp aligned faces so that the ``source`` template (fractions of the input) lands on the ``target`` template
    (pixels of the ``output_size = (height, width)`` crop): a fixed similarity, ``affine_grid`` + bilinear
    ``grid_sample`` (anti-aliased), differentiable with respect to the images. Works at any input resolution."""

    def __init__(self, source: str | Points, target: Points, output_size: tuple[int, int]):
        super().__init__()
        self.source = face_template(source)
        self.target = np.asarray(target, dtype=np.float64)
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self._cache: dict[tuple[int, int], tuple[torch.Tensor, float]] = {}

    def _theta(self, input_size: tuple[int, int]) -> tuple[torch.Tensor, float]:
        if input_size in self._cache:
            return self._cache[input_size]
        h, w = input_size
        source_pixels = self.source * np.array([w, h])
        target_pixels = self.target + 0.5  # OpenCV pixel centres -> continuous coordinates
        output_to_input = np.linalg.inv(_homogeneous(similarity_transform(source_pixels, target_pixels)))[:2]
        density = math.sqrt(abs(np.linalg.det(output_to_input[:, :2])))
        theta = torch.tensor(sampling_theta(output_to_input, input_size, self.output_size), dtype=torch.float32)
        self._cache[input_size] = (theta, density)
        return theta, density

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` aligned images -> ``[B, C, *output_size]`` crops."""
        theta, density = self._theta(tuple(images.shape[-2:]))
        return resample(images, theta, self.output_size, density)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class BoxCrop(nn.Module):
    """Crop a fixed box given as fractions ``(top, bottom, left, right)`` of the image and resize it to
    ``output_size = (height, width)`` by area averaging.

    When the box falls on whole pixels (e.g. the pSp box at 256, 512 or 1024 px) this is exactly slicing followed by
    ``adaptive_avg_pool2d`` -- what pSp / e4e do (``x[:, :, 35:223, 32:220]`` then ``AdaptiveAvgPool2d(112)``);
    otherwise it is the anti-aliased bilinear resampling of :func:`resample`. Differentiable either way.
    """

    def __init__(self, box: tuple[float, float, float, float], output_size: tuple[int, int]):
        super().__init__()
        top, bottom, left, right = (float(v) for v in box)
        if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
            raise ValueError(f"crop box (top, bottom, left, right) must be fractions with top < bottom, left < right; "
                             f"got {box}")
        self.box = (top, bottom, left, right)
        self.output_size = (int(output_size[0]), int(output_size[1]))

    def pixel_box(self, height: int, width: int) -> tuple[float, float, float, float]:
        """The box in pixels of a ``height x width`` image: (top, bottom, left, right)."""
        top, bottom, left, right = self.box
        return top * height, bottom * height, left * width, right * width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` images -> ``[B, C, *output_size]`` crops."""
        h, w = images.shape[-2:]
        edges = self.pixel_box(h, w)
        rounded = [round(e) for e in edges]
        if all(abs(e - r) < 1e-6 for e, r in zip(edges, rounded)):
            top, bottom, left, right = rounded
            return F.adaptive_avg_pool2d(images[:, :, top:bottom, left:right], self.output_size)
        top, bottom, left, right = edges
        h_out, w_out = self.output_size
        output_to_input = np.array([[(right - left) / w_out, 0, left], [0, (bottom - top) / h_out, top]])
        theta = torch.tensor(sampling_theta(output_to_input, (h, w), self.output_size), dtype=torch.float32)
        density = max((right - left) / w_out, (bottom - top) / h_out)
        return resample(images, theta, self.output_size, density)

    def map_points(self, points: Points) -> np.ndarray:
        """Fractional image points -> pixel coordinates (OpenCV convention) of the crop."""
        top, bottom, left, right = self.box
        h_out, w_out = self.output_size
        p = np.asarray(points, dtype=np.float64)
        x = (p[:, 0] - left) / (right - left) * w_out - 0.5
        y = (p[:, 1] - top) / (bottom - top) * h_out - 0.5
        return np.stack([x, y], axis=1)

    def extra_repr(self) -> str:
        return f"box={tuple(round(v, 5) for v in self.box)}, output_size={self.output_size}"
