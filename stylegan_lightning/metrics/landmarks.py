"""Landmark normalised mean error (NME)."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import Metric

LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45  # 68-point (iBUG) outer eye corners


class LandmarkNME(Metric):
    """Mean over images of ``mean_k ||p_k - t_k|| / ||t_36 - t_45||`` (inter-ocular normalisation, 68 points).

    ``update(preds, target)`` takes image batches [B, 3, H, W], on which ``detector`` (images -> [B, K, 2], NaN
    rows where no face is found) is run, or landmark tensors [B, K, 2] directly. Images where either side has
    no face are not averaged but counted in ``failures`` (see :meth:`failure_rate`).
    """

    higher_is_better = False
    full_state_update = False

    def __init__(self, detector: nn.Module | None = None, left_eye: int = LEFT_EYE_OUTER,
                 right_eye: int = RIGHT_EYE_OUTER, **kwargs):
        super().__init__(**kwargs)
        self.detector = detector
        self.left_eye, self.right_eye = left_eye, right_eye
        for name in ("total", "count", "failures"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.ndim == 3:
            self._accumulate(preds, target)
            return
        if self.detector is None:
            raise RuntimeError("LandmarkNME without a detector only accepts landmarks [B, K, 2]")
        with torch.no_grad():
            self._accumulate(torch.as_tensor(self.detector(preds)), torch.as_tensor(self.detector(target)))

    def _accumulate(self, predicted: torch.Tensor, reference: torch.Tensor) -> None:
        """Add landmarks [B, K, 2] (pixels); rows containing NaN count as failures."""
        if predicted.shape != reference.shape or predicted.ndim != 3 or predicted.shape[-1] != 2:
            raise ValueError(f"LandmarkNME: expected two [B, K, 2] tensors, got {tuple(predicted.shape)} and "
                             f"{tuple(reference.shape)}")
        predicted, reference = predicted.double().cpu(), reference.double().cpu()
        valid = torch.isfinite(predicted).flatten(1).all(1) & torch.isfinite(reference).flatten(1).all(1)
        inter_ocular = (reference[:, self.left_eye] - reference[:, self.right_eye]).norm(dim=-1)
        valid &= inter_ocular > 0
        errors = (predicted - reference).norm(dim=-1).mean(1) / inter_ocular.clamp_min(1e-12)
        self.total += errors[valid].sum().to(self.total)
        self.count += valid.sum().to(self.count)
        self.failures += (~valid).sum().to(self.failures)

    def failure_rate(self) -> torch.Tensor:
        """Fraction of images without landmarks on either side (synchronised across processes)."""
        with self.sync_context():
            seen = self.count + self.failures
            return (self.failures / seen).float() if seen > 0 else torch.tensor(float("nan"))

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float() if self.count > 0 else torch.tensor(float("nan"))
