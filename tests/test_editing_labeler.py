"""Labelling generated faces with a classifier, and per-attribute InterFaceGAN directions."""

from __future__ import annotations

import pytest
import torch

from stylegan_lightning.editing import (AttributeClassifier, apply_direction, export_classifier,
                                        fit_attribute_directions, label_latents, resize_images, sample_latents)
from stylegan_lightning.stylegan2 import FrozenGenerator


@pytest.fixture
def setup(tiny_generator):
    frozen = FrozenGenerator(tiny_generator(size=32, style_dim=32), n_mean_latent=256)
    torch.manual_seed(1)
    classifier = AttributeClassifier(2, resolution=16, width=4, max_width=8, output_kinds=["binary", "regression"],
                                     attribute_names=["smile", "age"], target_offsets=[0, 40], target_scales=[1, 20])
    return frozen, classifier.eval()


def test_label_latents_shapes_and_determinism(setup, tmp_path):
    frozen, classifier = setup
    w, values = label_latents(frozen, classifier, 12, seed=0, batch_size=5)
    assert w.shape == (12, 32) and values.shape == (12, 2)
    assert torch.equal(w, sample_latents(frozen, 12, seed=0))
    assert bool(((values[:, 0] > 0) & (values[:, 0] < 1)).all())  # probabilities for the binary output
    with torch.no_grad():  # = classify the synthesised images, resized to the classifier's resolution
        expected = classifier.predict(resize_images(frozen(w), 16))
    assert torch.allclose(values, expected, atol=1e-5)
    w2, values2 = label_latents(frozen, classifier, 12, seed=0, batch_size=12)
    assert torch.equal(w2, w) and torch.allclose(values2, values, atol=1e-5)
    w3, values3 = label_latents(frozen, classifier, 12, seed=1)
    assert not torch.equal(w3, w)
    truncated, _ = label_latents(frozen, classifier, 4, seed=0, truncation=0.5)
    assert torch.allclose(truncated, frozen.latent_avg + 0.5 * (w[:4] - frozen.latent_avg), atol=1e-6)
    # W+ codes, and a classifier given as a file
    w_plus = frozen.to_w_plus(w[:3]).clone()
    export_classifier(classifier, tmp_path / "classifier.pt")
    codes, from_file = label_latents(frozen, tmp_path / "classifier.pt", 0, latents=w_plus)
    assert codes.shape == (3, frozen.n_latent, 32) and torch.allclose(from_file, values[:3], atol=1e-5)
    assert not classifier.training


def test_fit_attribute_directions_move_the_scores(setup):
    frozen, classifier = setup
    directions = fit_attribute_directions(frozen, classifier, n=300, chosen_ratio=0.25, batch_size=100)
    assert set(directions) == {"smile", "age"}
    w = sample_latents(frozen, 64, seed=5)
    for column, (name, direction) in enumerate(directions.items()):
        meta = direction.metadata
        assert direction.name == name and meta["output_kind"] == ("binary", "regression")[column]
        assert meta["n_positive"] == meta["n_negative"] == 75 and meta["val_accuracy"] > 0.6
        assert direction.norm == pytest.approx(1.0, abs=1e-5)
        with torch.no_grad():  # moving along the boundary normal raises the classifier's score
            up = classifier.predict(frozen(apply_direction(w, direction, 2.0)))[:, column].mean()
            down = classifier.predict(frozen(apply_direction(w, direction, -2.0)))[:, column].mean()
        assert float(up) > float(down)
    linear = fit_attribute_directions(frozen, classifier, ["age"], n=300, method="linear", batch_size=100)
    assert list(linear) == ["age"] and linear["age"].metadata["val_r2"] > 0.1
    assert float(linear["age"].vector @ directions["age"].vector) > 0.5
    with pytest.raises(ValueError, match="no output"):
        fit_attribute_directions(frozen, classifier, ["beard"], n=10)
