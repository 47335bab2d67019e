"""Machine-task accuracies of decoded faces (the codec paper's machine-analysis evaluation), beside the distances of
:mod:`.parsing` (mIoU) and :mod:`.networks` (identity cosine):

- :class:`ParsingPixelAccuracy`: the fraction of pixels whose parse of the decoded image has the target's label;
- :class:`IdentityVerificationAccuracy`: face verification of (original, decoded) pairs -- is the decoded face the
  same person? -- at a cosine threshold fitted, fold by fold, on the *other* pairs;
- :class:`AttributeAccuracy`: attribute prediction with the toolkit's :class:`~..editing.classifier
  .AttributeClassifier`: how often its decision on the decoded face matches the label (ground-truth attributes when
  given, otherwise its decision on the original).

Every state is summed or concatenated across processes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from .parsing import ParsingMIoU

VERIFICATION_FOLDS = 10  # LFW-style 10-fold protocol (fewer when there are fewer images)
ATTRIBUTE_THRESHOLD = 0.5  # a binary attribute is "present" when the classifier's probability is at least this


class ParsingPixelAccuracy(ParsingMIoU):
    """Pixel accuracy of the parse of the prediction against the target's labels (ground-truth masks when given,
    otherwise the parser's labels of the target image): trace / sum of the confusion matrix. Updated as
    :class:`~.parsing.ParsingMIoU`."""

    def compute(self) -> torch.Tensor:
        total = self.confusion.sum()
        return (self.confusion.diag().sum() / total).float() if total > 0 else torch.tensor(float("nan"))


def best_threshold(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The threshold ``t`` maximising the accuracy of ``score > t`` against boolean ``labels`` (midway between
    two neighbouring scores; below the smallest or above the largest when that is best; the smallest such ``t``
    on ties)."""
    order = torch.argsort(scores)
    sorted_scores, sorted_labels = scores[order].double(), labels[order].double()
    n = scores.numel()
    # threshold j (0..n) puts the j smallest scores below: correct = negatives among them + positives above
    negatives_below = torch.cat([sorted_scores.new_zeros(1), torch.cumsum(1 - sorted_labels, 0)])
    positives_above = sorted_labels.sum() - torch.cat([sorted_scores.new_zeros(1), torch.cumsum(sorted_labels, 0)])
    correct = negatives_below + positives_above
    # a threshold between equal scores does not exist: only cuts where the score changes (or the ends) count
    valid = torch.ones(n + 1, dtype=torch.bool)
    valid[1:n] = sorted_scores[1:] > sorted_scores[:-1]
    j = int(torch.argmax(torch.where(valid, correct, correct.new_full((), -1.0))))
    if j == 0:
        return float(sorted_scores[0]) - 1.0
    if j == n:
        return float(sorted_scores[-1])
    return float((sorted_scores[j - 1] + sorted_scores[j]) / 2)


def verification_accuracy(predicted: torch.Tensor, target: torch.Tensor, folds: int = VERIFICATION_FOLDS
                          ) -> torch.Tensor:
    """Cross-validated verification accuracy of identity embeddings [N, D] (see
    :class:`IdentityVerificationAccuracy`); NaN below two images."""
    n = predicted.shape[0]
    if n < 2:
        return torch.tensor(float("nan"))
    p, t = F.normalize(predicted.double(), dim=1), F.normalize(target.double(), dim=1)
    genuine = (p * t).sum(1)  # decoded i against original i: the same person
    impostor = (p.roll(-1, 0) * t).sum(1)  # decoded i + 1 against original i: another face
    scores = torch.cat([genuine, impostor])
    labels = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)])
    k = min(folds, n)
    fold = torch.arange(n).remainder(k).repeat(2)
    correct = 0
    for f in range(k):
        held = fold == f
        threshold = best_threshold(scores[~held], labels[~held])
        correct += int(((scores[held] > threshold) == labels[held]).sum())
    return torch.tensor(correct / (2 * n), dtype=torch.float32)


class IdentityVerificationAccuracy(Metric):
    """Identity recognition accuracy as face verification: for every image i the genuine pair (original i, decoded
    i) and the impostor pair (original i, decoded i+1, cyclically: another face of the set), scored by the cosine of
    their identity embeddings and accepted when above a threshold. The images are split into ``folds`` folds (image i
    in fold ``i mod folds``); each fold's pairs are judged at the threshold that is most accurate on the other folds'
    pairs (never fitted on the pairs it judges). Result: the fraction of pairs judged right (0.5 = chance). An
    impostor pair of two photos of one person counts as wrong when accepted; sets of distinct people are assumed.

    ``encoder`` = :class:`stylegan_lightning.nets.identity.IdentityEncoder`; ``update(preds, target)``.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, encoder: nn.Module, folds: int = VERIFICATION_FOLDS, **kwargs):
        super().__init__(**kwargs)
        if folds < 2:
            raise ValueError(f"folds must be at least 2, got {folds}")
        self.encoder = encoder
        self.folds = folds
        self.add_state("predicted", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if preds.shape != target.shape:
            raise ValueError(f"IdentityVerificationAccuracy: preds {tuple(preds.shape)} and target "
                             f"{tuple(target.shape)} differ")
        with torch.no_grad():
            self.predicted.append(self.encoder(preds).detach().float())
            self.target.append(self.encoder(target).detach().float())

    def compute(self) -> torch.Tensor:
        if not self.predicted:
            return torch.tensor(float("nan"))
        predicted, target = dim_zero_cat(self.predicted).cpu(), dim_zero_cat(self.target).cpu()
        return verification_accuracy(predicted, target, self.folds)


class AttributeAccuracy(Metric):
    """Attribute prediction accuracy with an :class:`~stylegan_lightning.editing.classifier.AttributeClassifier`
    (its binary outputs): per attribute, the fraction of images whose decision on the prediction (probability >=
    ``threshold``) equals the label -- ``target_attributes`` [B, A_all] (1 / 0, NaN = unknown, one column per
    classifier output) when given, otherwise the classifier's decision on the target image. Result: the mean over
    the attributes; :meth:`per_attribute` gives each (NaN where never labelled).

    ``update(preds, target=None, target_attributes=None)``.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, classifier: nn.Module, threshold: float = ATTRIBUTE_THRESHOLD, **kwargs):
        super().__init__(**kwargs)
        binary = [i for i, kind in enumerate(classifier.output_kinds) if kind == "binary"]
        if not binary:
            raise ValueError("AttributeAccuracy needs a classifier with at least one binary output")
        self.classifier = classifier
        self.threshold = float(threshold)
        self.binary = binary
        self.names = [classifier.attribute_names[i] for i in binary]
        self.add_state("correct", default=torch.zeros(len(binary), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(len(binary), dtype=torch.float64), dist_reduce_fx="sum")

    def _decisions(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.predict(images)[:, self.binary] >= self.threshold

    def update(self, preds: torch.Tensor, target: torch.Tensor | None = None,
               target_attributes: torch.Tensor | None = None) -> None:
        with torch.no_grad():
            decided = self._decisions(preds)
            if target_attributes is not None:
                labels = target_attributes.to(preds.device).double()[:, self.binary]
                known = ~torch.isnan(labels)
                labels = labels.nan_to_num(0.0) > 0.5
            elif target is not None:
                labels = self._decisions(target)
                known = torch.ones_like(labels)
            else:
                raise ValueError("AttributeAccuracy needs a target image or target attributes")
        self.correct += ((decided == labels) & known).sum(0).double()
        self.count += known.sum(0).double()

    def per_attribute(self) -> dict[str, float]:
        """Accuracy of each binary attribute by name."""
        values = torch.where(self.count > 0, self.correct / self.count.clamp_min(1), float("nan"))
        return dict(zip(self.names, values.tolist()))

    def compute(self) -> torch.Tensor:
        seen = self.count > 0
        if not seen.any():
            return torch.tensor(float("nan"))
        return (self.correct[seen] / self.count[seen]).mean().float()
