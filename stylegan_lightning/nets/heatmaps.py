"""Heatmap <-> landmark conversions for heatmap landmark networks, and the 68-point mirror permutation.

Coordinate convention (everywhere in this package): ``(x, y)`` in pixel units with the *centre* of pixel
``(row i, column j)`` at ``x = j, y = i``; the image spans ``[-0.5, W - 0.5]``. dlib uses the same convention.
"""

from __future__ import annotations

import torch

FAN_TARGET_SIGMA = 1.75
"""Standard deviation (heatmap pixels) of FAN's training targets: Torch's ``image.gaussian(6 * 1 + 1)``, whose
width is 0.25 of its size (face-alignment's ``draw_gaussian(..., sigma=1)``)."""


def _mirror_pairs() -> list[tuple[int, int]]:
    pairs = [(i, 16 - i) for i in range(8)]                      # jaw line 0..16
    pairs += [(17 + i, 26 - i) for i in range(5)]                # eyebrows 17..26
    pairs += [(31, 35), (32, 34)]                                # nostrils 31..35 (nose bridge 27..30 stays)
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips (51, 57 stay)
    pairs += [(60, 64), (61, 63), (65, 67)]                      # inner lips (62, 66 stay)
    return pairs


def _flip_permutation() -> tuple[int, ...]:
    permutation = list(range(68))
    for a, b in _mirror_pairs():
        permutation[a], permutation[b] = b, a
    return tuple(permutation)


FLIP_PERMUTATION_68 = _flip_permutation()
"""``landmarks_of_mirrored_image[:, k] == mirror(landmarks[:, FLIP_PERMUTATION_68[k]])`` for iBUG 68 points
(mirror: ``x -> W - 1 - x``); the permutation is its own inverse."""


def mirror_landmarks(landmarks: torch.Tensor, width: int) -> torch.Tensor:
    """The landmarks [B, 68, 2] of the horizontally flipped image (``x -> width - 1 - x`` and left/right
    point labels swapped)."""
    mirrored = landmarks[:, list(FLIP_PERMUTATION_68)].clone()
    mirrored[..., 0] = width - 1 - mirrored[..., 0]
    return mirrored


def _grid(size: int, like: torch.Tensor) -> torch.Tensor:
    return torch.arange(size, device=like.device, dtype=like.dtype)


def soft_argmax(heatmaps: torch.Tensor, temperature: float = 0.1, window: int | None = 9) -> torch.Tensor:
    """Differentiable peak positions [B, K, 2] (x, y) of heatmaps [B, K, H, W], in heatmap pixel units.

    Each heatmap is first normalised by its range, ``Hn = (H - max H) / (max H - min H)`` (the range is
    detached, so it acts as a per-map adaptive temperature and the result does not depend on the peak height
    or an offset), then the position is the expectation of ``(x, y)`` under ``softmax(Hn / temperature)``.
    With ``window`` (odd) the softmax runs over a ``window x window`` patch centred on the hard argmax, so the
    flat background cannot pull the estimate towards the image centre; the argmax only picks the patch, the
    gradient flows through every heatmap value inside it. ``window=None`` uses the whole map.

    With the defaults, a Gaussian peak of standard deviation 1.75 heatmap pixels (FAN's training targets) is
    located within 0.02 px of its true sub-pixel position; narrower peaks need a larger temperature.
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be [B, K, H, W], got {tuple(heatmaps.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    b, k, h, w = heatmaps.shape
    flat = heatmaps.flatten(2)
    top = flat.detach().amax(-1, keepdim=True)
    spread = (top - flat.detach().amin(-1, keepdim=True)).clamp_min(1e-12)
    logits = (flat - top) / (spread * temperature)
    if window is None:
        weights = logits.softmax(-1)
        xs, ys = _grid(w, flat).repeat(h), _grid(h, flat).repeat_interleave(w)
        return torch.stack(((weights * xs).sum(-1), (weights * ys).sum(-1)), -1)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number or None, got {window}")
    index = flat.detach().argmax(-1)
    offsets = torch.arange(-(window // 2), window // 2 + 1, device=flat.device)
    ys = (index // w)[..., None, None] + offsets[:, None]                      # [B, K, window, 1]
    xs = (index % w)[..., None, None] + offsets[None, :]                      # [B, K, 1, window]
    ys, xs = ys.expand(b, k, window, window), xs.expand(b, k, window, window)
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    patch = logits.gather(-1, (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).flatten(2))
    patch = patch.masked_fill(~inside.flatten(2), float("-inf"))
    weights = patch.softmax(-1)
    return torch.stack(((weights * xs.flatten(2).to(flat.dtype)).sum(-1),
                        (weights * ys.flatten(2).to(flat.dtype)).sum(-1)), -1)


def hard_argmax(heatmaps: torch.Tensor, refine: bool = True) -> torch.Tensor:
    """Peak positions [B, K, 2] (x, y) in heatmap pixel units, as face-alignment decodes them for evaluation:
    the arg-max pixel, moved a quarter pixel towards the larger of its two neighbours along each axis (when
    the peak is not on the border). Not differentiable."""
    b, k, h, w = heatmaps.shape
    maps = heatmaps.detach()
    index = maps.flatten(2).argmax(-1)
    ys, xs = index // w, index % w
    points = torch.stack((xs, ys), -1).to(maps.dtype)
    if not refine:
        return points
    inner = (xs > 0) & (xs < w - 1) & (ys > 0) & (ys < h - 1)
    xc, yc = xs.clamp(1, w - 2), ys.clamp(1, h - 2)
    flat = maps.flatten(2)

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat.gather(-1, (y * w + x)[..., None])[..., 0]

    dx = at(yc, xc + 1) - at(yc, xc - 1)
    dy = at(yc + 1, xc) - at(yc - 1, xc)
    step = 0.25 * torch.stack((dx.sign(), dy.sign()), -1)
    return points + step * inner[..., None].to(maps.dtype)


def heatmap_targets(landmarks: torch.Tensor, size: int | tuple[int, int],
                    sigma: float = FAN_TARGET_SIGMA) -> torch.Tensor:
    """Gaussian heatmaps [B, K, H, W] with peak 1 at ``landmarks`` [B, K, 2] (x, y in heatmap pixel units,
    pixel centres at integers): ``exp(-((x - px)^2 + (y - py)^2) / (2 sigma^2))``. Differentiable with respect
    to the landmarks; points outside the map give (partial or empty) tails. NaN landmarks give NaN maps."""
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks must be [B, K, 2], got {tuple(landmarks.shape)}")
    h, w = (size, size) if isinstance(size, int) else size
    dtype = landmarks.dtype if landmarks.is_floating_point() else torch.float32
    landmarks = landmarks.to(dtype)
    dx = _grid(w, landmarks)[None, None, None, :] - landmarks[..., 0, None, None]
    dy = _grid(h, landmarks)[None, None, :, None] - landmarks[..., 1, None, None]
    return torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))
