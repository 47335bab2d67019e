"""Random perspective warps of feature maps for GradStyle's self-supervised Aligner training (arXiv 2402.14398).

With unedited codes the editing stream produces the same generator features as the reconstruction stream, so the
residual features ``F_m`` are already aligned with ``f_m^edi``. Warping ``F_m`` with a random perspective transform
simulates the layout misalignment an edit (pose, expression, ...) causes between the residual features and the edited
generator features; the :class:`~stylegan_lightning.gradstyle.attention.Aligner` learns to undo it, supervised by
the unwarped ``F_m`` (Eq. 10). The paper uses a distortion scale of 0.15 and cites HFGI's random perspective
transformation: the semantics here are those of torchvision's ``RandomPerspective(distortion_scale, p)`` (each
output corner moves *inward* by up to ``distortion_scale`` times half the size, the whole input lands inside the
moved quadrilateral, the uncovered border is zero, a sample is warped with probability ``p``), with two
differences, both deliberate: the corner offsets are continuous rather than whole pixels (at the 8 px stage
torchvision's integer draw at scale 0.15 never moves a corner), and the homography lives in normalised
coordinates, so one warp drawn per sample moves every stage's features (8, 16, 32 px) the same way.

Coordinates are the normalised ``[-1, 1]`` coordinates of :func:`torch.nn.functional.grid_sample` with
``align_corners=False`` (``x`` to the right, ``y`` down; ``+-1`` are the outer pixel edges).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CANONICAL_CORNERS", "apply_homography", "homography_from_corners", "perspective_homographies",
           "random_perspective", "warp_features"]

#: The four corners of the normalised square, (x, y): top-left, top-right, bottom-right, bottom-left.
CANONICAL_CORNERS = ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))


def homography_from_corners(source: Tensor, target: Tensor) -> Tensor:
    """The homographies ``H [B, 3, 3]`` (``H[2, 2] = 1``) mapping the 4 ``source`` points to the 4 ``target`` points.

    ``source`` and ``target`` are ``[B, 4, 2]`` (x, y). Solves the 8x8 linear system of the 8 unknowns with
    :func:`torch.linalg.solve` (in float64; the result has ``target``'s dtype). The points must be in general
    position (no three collinear).
    """
    if source.shape != target.shape or source.dim() != 3 or source.shape[1:] != (4, 2):
        raise ValueError(f"source and target must both be [B, 4, 2], got {tuple(source.shape)} and "
                         f"{tuple(target.shape)}")
    src, dst = source.to(torch.float64), target.to(torch.float64)
    x, y = src[..., 0], src[..., 1]  # [B, 4]
    u, v = dst[..., 0], dst[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    # u * (h31 x + h32 y + 1) = h11 x + h12 y + h13 ; same for v with h21 h22 h23.
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], dim=-1)  # [B, 4, 8]
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], dim=-1)
    system = torch.cat([rows_u, rows_v], dim=1)  # [B, 8, 8]
    rhs = torch.cat([u, v], dim=1).unsqueeze(-1)  # [B, 8, 1]
    h = torch.linalg.solve(system, rhs).squeeze(-1)  # [B, 8]
    h = torch.cat([h, torch.ones_like(h[:, :1])], dim=1).view(-1, 3, 3)
    return h.to(target.dtype)


def apply_homography(homographies: Tensor, points: Tensor) -> Tensor:
    """Map ``points [B, ..., 2]`` (x, y) through ``homographies [B, 3, 3]`` (with the perspective division)."""
    batch = points.shape[0]
    flat = points.reshape(batch, -1, 2)
    ones = torch.ones_like(flat[..., :1])
    mapped = torch.cat([flat, ones], dim=-1) @ homographies.transpose(1, 2)  # [B, N, 3]
    return (mapped[..., :2] / mapped[..., 2:]).reshape(points.shape)


def perspective_homographies(batch: int, distortion: float, generator: torch.Generator | None = None,
                             device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                             return_corners: bool = False, p: float = 1.0) -> Tensor | tuple[Tensor, Tensor]:
    """Random perspective homographies ``[B, 3, 3]`` mapping output coordinates to input (sampling) coordinates.

    torchvision ``RandomPerspective`` semantics (see the module docstring): each of the 4 corners of the output
    moves inward, in x and in y independently, by ``U(0, distortion)`` times half the size of the map, and ``H``
    maps these moved output corners onto the input's corners (:data:`CANONICAL_CORNERS`), so the input shrinks
    into the moved quadrilateral. Each sample is warped with probability ``p``; the others get the identity. The
    random numbers (offsets, then the coin flips) are drawn on the ``generator``'s device (CPU without one) and
    the result is moved to ``device``.

    Args:
        batch: number of homographies.
        distortion: maximum inward corner displacement as a fraction of the half size, in ``[0, 1)``.
        generator: random generator for reproducible warps.
        device, dtype: of the result (default dtype when ``dtype`` is None).
        return_corners: also return the moved output corners ``[B, 4, 2]`` (the canonical ones where not warped).
        p: probability that a sample is warped, in ``[0, 1]`` (torchvision's default is 0.5).

    Raises:
        ValueError: if ``distortion`` is outside ``[0, 1)``, ``p`` outside ``[0, 1]`` or ``batch < 1``.
    """
    if not 0.0 <= distortion < 1.0:
        raise ValueError(f"distortion must be in [0, 1), got {distortion}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    draw_device = generator.device if generator is not None else torch.device("cpu")
    amounts = torch.rand(batch, 4, 2, generator=generator, device=draw_device, dtype=torch.float64)
    warped = torch.rand(batch, generator=generator, device=draw_device, dtype=torch.float64) < p
    canonical = torch.tensor(CANONICAL_CORNERS, dtype=torch.float64, device=draw_device).expand(batch, 4, 2)
    inward = -canonical.sign()  # towards the centre
    corners = canonical + distortion * amounts * inward * warped[:, None, None]
    homographies = homography_from_corners(corners, canonical).to(device=device, dtype=dtype)
    if return_corners:
        return homographies, corners.to(device=device, dtype=dtype)
    return homographies


def _output_grid(homographies: Tensor, height: int, width: int) -> Tensor:
    """Sampling grid ``[B, H, W, 2]`` of the output pixel centres (``align_corners=False``) mapped through ``H``."""
    device, dtype = homographies.device, homographies.dtype
    ys = (torch.arange(height, device=device, dtype=dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=dtype) * 2 + 1) / width - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx, gy], dim=-1).expand(homographies.shape[0], height, width, 2)
    return apply_homography(homographies, points)


def warp_features(features: Tensor, homographies: Tensor) -> Tensor:
    """``features [B, C, H, W]`` sampled at ``homographies [B, 3, 3]`` (output -> input, normalised coordinates)
    of the output pixel centres: ``F.grid_sample(..., mode="bilinear", padding_mode="zeros",
    align_corners=False)``, so regions mapped from outside the input are zero. Differentiable with respect to
    ``features``; the same homographies warp maps of any resolution alike."""
    if features.dim() != 4:
        raise ValueError(f"features must be [B, C, H, W], got {tuple(features.shape)}")
    if homographies.shape != (features.shape[0], 3, 3):
        raise ValueError(f"homographies must be [{features.shape[0]}, 3, 3], got {tuple(homographies.shape)}")
    grid_dtype = features.dtype if features.dtype in (torch.float32, torch.float64) else torch.float32
    grid = _output_grid(homographies.to(device=features.device, dtype=grid_dtype), *features.shape[-2:])
    return F.grid_sample(features, grid.to(features.dtype), mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def random_perspective(features: Tensor, distortion: float = 0.15, generator: torch.Generator | None = None,
                       p: float = 1.0) -> Tensor:
    """Warp each sample of ``features [B, C, H, W]`` by its own random perspective transform.

    The homographies come from :func:`perspective_homographies` (corners moved inward by up to ``distortion``
    times the half size, each sample warped with probability ``p``) and are applied by :func:`warp_features`.
    ``distortion = 0`` returns ``features`` itself (no random numbers are drawn). Simulates the misalignment
    between residual features and the edited generator features (see the module docstring).
    """
    if features.dim() != 4:
        raise ValueError(f"features must be [B, C, H, W], got {tuple(features.shape)}")
    if distortion == 0:
        return features
    homographies = perspective_homographies(features.shape[0], distortion, generator, device=features.device,
                                            dtype=torch.float64, p=p)
    return warp_features(features, homographies)
