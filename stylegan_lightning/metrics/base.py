"""A mean-over-images metric: the pattern most metrics here share."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class MeanOverImages(Metric):
    """Accumulates a per-image value (``sum``, ``count`` in float64, summed across processes) and reports its
    mean. Subclasses implement :meth:`per_image`."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def per_image(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def add_values(self, values: torch.Tensor) -> None:
        """Add per-image values [B] (NaN/Inf refused: they would poison every later mean)."""
        values = values.detach().reshape(-1).to(torch.float64)
        if not torch.isfinite(values).all():
            raise ValueError(f"{type(self).__name__}: non-finite per-image values {values.tolist()}")
        self.total += values.sum()
        self.count += values.numel()

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.shape != target.shape:
            raise ValueError(f"{type(self).__name__}: preds {tuple(preds.shape)} and target {tuple(target.shape)} differ")
        with torch.no_grad():
            self.add_values(self.per_image(preds, target))

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float() if self.count > 0 else torch.tensor(float("nan"))
