"""Machine-task evaluation of decoded faces (issue: the codec paper's parsing accuracy, identity recognition
accuracy and attribute prediction, beside mIoU and cosine): the metrics on hand-built inputs with known answers,
and their place in the codec metric collection and the ``evaluate`` tool's columns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from stylegan_lightning.editing.classifier import AttributeClassifier, load_attribute_classifier
from stylegan_lightning.metrics import codec_metrics
from stylegan_lightning.metrics.machine import (
    AttributeAccuracy,
    IdentityVerificationAccuracy,
    ParsingPixelAccuracy,
    best_threshold,
    verification_accuracy,
)

ROOT = Path(__file__).resolve().parents[1]


class Embedder(nn.Module):
    """'Identity embedding' = the flattened image (so the test picks the cosines)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)


class ChannelParser(nn.Module):
    """Logits [B, 3, H, W] = the image: the label of a pixel is its largest channel."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images


def test_parsing_pixel_accuracy_on_label_maps():
    metric = ParsingPixelAccuracy(num_classes=4)
    target = torch.tensor([[[0, 1], [2, 3]], [[1, 1], [1, 1]]])
    predicted = torch.tensor([[[0, 1], [3, 3]], [[1, 0], [1, 1]]])  # 2 of 8 pixels wrong
    metric.update(predicted, target)
    assert float(metric.compute()) == pytest.approx(6 / 8)
    images = torch.zeros(1, 3, 2, 2)
    images[0, 2] = 1.0  # every pixel parses as class 2
    parsed = ParsingPixelAccuracy(ChannelParser(), num_classes=3)
    parsed.update(images, target_masks=torch.tensor([[[2, 2], [0, 2]]]))
    assert float(parsed.compute()) == pytest.approx(3 / 4)


def test_best_threshold():
    scores = torch.tensor([0.1, 0.2, 0.6, 0.9])
    assert best_threshold(scores, torch.tensor([False, False, True, True])) == pytest.approx(0.4)
    assert best_threshold(scores, torch.tensor([True, True, True, True])) < 0.1
    tied = torch.tensor([0.5, 0.5, 0.5, 0.7])
    assert best_threshold(tied, torch.tensor([False, True, False, True])) == pytest.approx(0.6)


def test_verification_accuracy_known_answers():
    n = 20
    generator = torch.Generator().manual_seed(0)
    faces = torch.randn(n, 64, generator=generator)  # distinct random identities: impostor cosines near 0
    assert float(verification_accuracy(faces + 0.05 * torch.randn(n, 64, generator=generator), faces)) == 1.0
    assert float(verification_accuracy(faces, faces)) == 1.0
    # decoded faces that lost the identity entirely: every cosine is the same, chance level
    same = torch.ones(n, 64)
    assert float(verification_accuracy(same, same)) == 0.5
    assert torch.isnan(verification_accuracy(faces[:1], faces[:1]))


def test_verification_threshold_is_fitted_on_other_pairs():
    """Three images whose genuine cosine is high, one (image 3) whose decoded face is unrelated: a threshold fitted
    on all pairs would still misjudge it; fitted on the others, each fold is judged honestly: 7 of 8 pairs."""
    e = torch.eye(4)
    target = e.clone()
    predicted = e.clone()
    predicted[3] = torch.tensor([0.0, 0.0, 0.0, -1.0])  # genuine cosine -1, below every impostor (0)
    accuracy = float(verification_accuracy(predicted, target, folds=4))
    # folds of one image: genuine pairs of 0-2 (cos 1) accepted, every impostor (cos 0) refused, image 3's genuine
    # pair (cos -1) refused
    assert accuracy == pytest.approx(7 / 8)
    metric = IdentityVerificationAccuracy(Embedder(), folds=4)
    metric.update(predicted[:2].reshape(2, 1, 2, 2), target[:2].reshape(2, 1, 2, 2))
    metric.update(predicted[2:].reshape(2, 1, 2, 2), target[2:].reshape(2, 1, 2, 2))
    assert float(metric.compute()) == pytest.approx(7 / 8)


def tiny_classifier() -> AttributeClassifier:
    torch.manual_seed(0)
    return AttributeClassifier(3, resolution=8, width=4, max_width=8, output_kinds=["binary", "regression", "binary"],
                               attribute_names=["Smiling", "age", "Male"]).eval()


def test_attribute_accuracy():
    classifier = tiny_classifier()
    images = torch.rand(6, 3, 8, 8) * 2 - 1
    metric = AttributeAccuracy(classifier)
    assert metric.names == ["Smiling", "Male"]
    metric.update(images, images)
    assert float(metric.compute()) == 1.0
    decided = classifier.predict(images)[:, [0, 2]] >= 0.5
    labels = torch.full((6, 3), float("nan"))
    labels[:, 0] = decided[:, 0].float()  # all right
    labels[:3, 2] = (~decided[:3, 1]).float()  # 3 labelled, all wrong; the rest unknown
    truth = AttributeAccuracy(classifier)
    truth.update(images, target_attributes=labels)
    assert truth.per_attribute() == {"Smiling": 1.0, "Male": 0.0}
    assert float(truth.compute()) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="binary"):
        AttributeAccuracy(AttributeClassifier(1, resolution=8, width=4, output_kinds=["regression"]))


def test_codec_metrics_hold_the_machine_tasks():
    collection = codec_metrics("val/", networks={"parser": ChannelParser(), "identity": Embedder()}, build=False,
                               attribute_classifier=tiny_classifier())
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(8, 3, 8, 8, generator=generator) * 2 - 1
    collection.update(preds=target.clone(), target=target, num_bytes=torch.full((8,), 100), num_pixels=64,
                      likelihoods=[torch.full((8, 10), 0.5)])
    values = {k: float(v) for k, v in collection.compute().items()}
    for name in ("parsing_miou", "parsing_accuracy", "id_similarity", "id_accuracy", "attribute_accuracy"):
        assert values[f"val/{name}"] == pytest.approx(1.0), name
    assert "id_accuracy" not in codec_metrics(networks={}, build=False)


def test_demo_classifier_loads_for_the_evaluation():
    classifier = load_attribute_classifier(ROOT / "data" / "demo" / "classifier.pt")
    metric = AttributeAccuracy(classifier)
    assert len(metric.names) == 10
