"""Face-parsing mean IoU."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import Metric

from ..utils.images import resize_labels


class ParsingMIoU(Metric):
    """Mean intersection-over-union between the parse of the prediction and the target's labels: ground-truth
    masks when given (``target_masks``), otherwise the parser's labels of the target image. Classes absent from
    both (union 0) over the whole evaluation are left out of the mean. Confusion matrix summed across
    processes.

    ``target_mapping`` (a LUT tensor) converts ground-truth mask indices to the parser's class order
    (e.g. CelebAMask-HQ order -> face-parsing order).

    ``update(preds, target=None, target_masks=None)``: ``preds`` are images [B, 3, H, W] (parsed here) or
    already label maps [B, H, W] (integer dtype), in which case ``target`` is taken as label maps too.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, parser: nn.Module | None = None, num_classes: int = 19,
                 target_mapping: torch.Tensor | None = None, **kwargs):
        super().__init__(**kwargs)
        self.parser = parser
        self.num_classes = num_classes
        self.register_buffer("target_mapping", target_mapping, persistent=False)
        self.add_state("confusion", default=torch.zeros(num_classes, num_classes, dtype=torch.float64),
                       dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor | None = None,
               target_masks: torch.Tensor | None = None) -> None:
        if preds.ndim == 3 and not preds.is_floating_point():
            if target is None:
                raise ValueError("ParsingMIoU: label-map predictions need label-map targets")
            self._accumulate(preds, target)
            return
        if self.parser is None:
            raise RuntimeError("ParsingMIoU without a parser only accepts label maps [B, H, W]")
        with torch.no_grad():
            predicted = self.parser(preds).argmax(1)
            if target_masks is not None:
                labels = target_masks.long()
                if self.target_mapping is not None:
                    labels = self.target_mapping.to(labels.device)[labels]
            elif target is not None:
                labels = self.parser(target).argmax(1)
            else:
                raise ValueError("ParsingMIoU needs a target image or target masks")
        self._accumulate(predicted, labels)

    def _accumulate(self, predicted: torch.Tensor, labels: torch.Tensor) -> None:
        """Add label maps [B, H, W] (targets resized to the prediction's size with nearest neighbour)."""
        labels = resize_labels(labels, predicted.shape[-2:])
        if predicted.min() < 0 or labels.min() < 0 or max(predicted.max(), labels.max()) >= self.num_classes:
            raise ValueError(f"ParsingMIoU: labels outside [0, {self.num_classes})")
        index = labels.reshape(-1) * self.num_classes + predicted.reshape(-1)
        counts = torch.bincount(index, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)
        self.confusion += counts.to(self.confusion)

    def per_class_iou(self) -> torch.Tensor:
        """IoU per class (NaN for classes never present)."""
        true_positive = self.confusion.diag()
        union = self.confusion.sum(0) + self.confusion.sum(1) - true_positive
        return torch.where(union > 0, true_positive / union.clamp_min(1), torch.full_like(union, float("nan")))

    def compute(self) -> torch.Tensor:
        iou = self.per_class_iou()
        present = ~torch.isnan(iou)
        return iou[present].mean().float() if present.any() else torch.tensor(float("nan"))
