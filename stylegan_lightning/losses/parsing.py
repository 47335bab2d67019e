"""Face-parsing loss: keep the semantic layout of the target."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..utils.images import resize_labels

PARSING_MODES = ("cross_entropy", "feature", "l2")


class ParsingLoss(nn.Module):
    """Distance between face parses. ``parser(images) -> logits [B, C, H, W]``.

    - ``cross_entropy``: cross-entropy of the prediction's logits against the parser's labels of the target
      (or against ground-truth ``labels`` when given);
    - ``feature``: mean squared distance between the two softmax probability maps;
    - ``l2``: ``‖H(x) - H(x̂)‖²`` on the parser's outputs ``H`` (its logits) as the codec paper writes its parsing
      distance, divided by the number of elements (batch x classes x pixels) so that its size does not depend on
      the resolution -- the same normalisation as the landmark heatmap distance. Logits are unbounded, so this
      term is typically one to two orders of magnitude larger than ``feature`` and needs its own weight.
    """

    def __init__(self, parser: nn.Module, mode: str = "cross_entropy"):
        super().__init__()
        if mode not in PARSING_MODES:
            raise ValueError(f"mode must be one of {PARSING_MODES}, got {mode!r}")
        self.parser = parser
        self.mode = mode

    def forward(self, prediction: torch.Tensor, target: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.parser(prediction)
        if self.mode == "cross_entropy":
            if labels is None:
                if target is None:
                    raise ValueError("ParsingLoss needs a target image or ground-truth labels")
                with torch.no_grad():
                    labels = self.parser(target).argmax(1)
            return F.cross_entropy(logits, resize_labels(labels, logits.shape[-2:]))
        if target is None:
            raise ValueError(f"the {self.mode} parsing loss needs a target image")
        with torch.no_grad():
            target_logits = self.parser(target)
        if self.mode == "l2":
            return F.mse_loss(logits, target_logits)
        return F.mse_loss(logits.softmax(1), target_logits.softmax(1))
