"""InterFaceGAN fitting: a boundary fitted on labels that are a known linear function of w recovers its normal."""

from __future__ import annotations

import pytest
import torch

from stylegan_lightning.editing import fit_direction, fit_directions, sample_latents
from stylegan_lightning.editing.interfacegan import chosen_count
from stylegan_lightning.stylegan2 import FrozenGenerator

N = 2000


@pytest.fixture(scope="module")
def latents():
    """w from the mapping network of a tiny random generator (anisotropic, correlated, not centred)."""
    from stylegan_lightning.stylegan2 import Generator

    torch.manual_seed(0)
    generator = Generator(32, style_dim=32, n_mlp=2, channel_max=16).eval()
    return sample_latents(FrozenGenerator(generator, n_mean_latent=256), N, seed=1)


@pytest.fixture(scope="module")
def truth(latents):
    normal = torch.randn(latents.shape[1], generator=torch.Generator().manual_seed(2))
    normal /= normal.norm()
    offset = -float((latents @ normal).quantile(0.4))  # 60 % positives
    return normal, offset


@pytest.mark.parametrize("method,options", [("svm", {}), ("svm", {"svm_loss": "hinge", "max_iter": 400}),
                                            ("logistic", {})])
def test_binary_labels_recover_the_normal(latents, truth, method, options):
    normal, offset = truth
    labels = (latents @ normal + offset > 0).float()
    direction = fit_direction(latents, labels, method, name="attr", **options)
    cosine = float(direction.vector @ normal)
    assert cosine > 0.95, cosine
    assert direction.norm == pytest.approx(1.0, abs=1e-5)
    assert direction.intercept == pytest.approx(offset, abs=0.15)  # the hyperplane itself, not only its normal
    meta = direction.metadata
    assert meta["method"] == method and meta["n_train"] + meta["n_val"] == N
    assert meta["n_positive"] == int(labels.sum())
    assert meta["train_accuracy"] > 0.97 and meta["val_accuracy"] > 0.95
    # -1/+1 labels mean the same
    again = fit_direction(latents, 2 * labels - 1, method, **options)
    assert torch.allclose(again.vector, direction.vector, atol=1e-4)


def test_continuous_labels_linear(latents, truth):
    normal, _ = truth
    noise = torch.randn(N, generator=torch.Generator().manual_seed(3))
    labels = 2.0 * (latents @ normal) + 0.1 * noise
    direction = fit_direction(latents, labels, "linear")
    assert float(direction.vector @ normal) > 0.99
    meta = direction.metadata
    assert meta["slope"] == pytest.approx(2.0, rel=0.03)  # label change per unit distance along n
    assert meta["val_r2"] > 0.98
    # the boundary is the level set at the mean label: distance 0 <=> predicted label == level
    level = meta["level"]
    assert level == pytest.approx(float(labels.mean()), abs=0.1)
    predicted = meta["slope"] * direction.distance(latents) + level
    assert torch.corrcoef(torch.stack([predicted, labels]))[0, 1] > 0.99
    # flipped labels flip the normal
    assert float(fit_direction(latents, -labels, "linear").vector @ normal) < -0.99


def test_top_bottom_selection_interfacegan_style(latents, truth):
    normal, offset = truth
    scores = torch.sigmoid(3 * (latents @ normal + offset))  # classifier-like probabilities
    with pytest.raises(ValueError, match="chosen_ratio"):
        fit_direction(latents, scores, "svm")
    direction = fit_direction(latents, scores, "svm", chosen_ratio=0.25)
    meta = direction.metadata
    assert float(direction.vector @ normal) > 0.95
    chosen = chosen_count(N, 0.25)
    assert chosen == 500 and meta["n_positive"] == meta["n_negative"] == chosen
    assert (meta["n_train"], meta["n_val"]) == (700, 300)  # split_ratio 0.7 per class
    # the middle samples (labelled by the midpoint score, as InterFaceGAN) lie near the boundary: harder
    assert meta["val_accuracy"] == 1.0 and 0.7 < meta["remaining_accuracy"] < 1.0
    assert chosen_count(N, 50) == 50 and chosen_count(10, 0.9) == 5
    thresholded = fit_direction(latents, scores, "logistic", threshold=0.5)
    assert float(thresholded.vector @ normal) > 0.95


def test_fit_options_and_errors(latents, truth):
    normal, offset = truth
    labels = (latents @ normal + offset > 0).float()
    raw = fit_direction(latents, labels, "svm", standardize=False)
    assert float(raw.vector @ normal) > 0.9
    labels_nan = labels.clone()
    labels_nan[:100] = float("nan")
    assert fit_direction(latents, labels_nan, "logistic").metadata["n_samples"] == N - 100
    invalid = labels.clone()
    invalid[:50] = -7
    assert fit_direction(latents, invalid, "logistic", invalid_value=-7).metadata["n_samples"] == N - 50
    with pytest.raises(ValueError, match="both classes"):
        fit_direction(latents, torch.ones(N), "svm")
    with pytest.raises(ValueError, match="method"):
        fit_direction(latents, labels, "pca")
    with pytest.raises(ValueError, match=r"labels must be \[N\]"):
        fit_direction(latents, labels[:10], "svm")
    many = fit_directions(latents[:400], torch.stack([labels[:400], 1 - labels[:400]], 1), ["a", "b"], "logistic")
    assert set(many) == {"a", "b"} and float(many["a"].vector @ many["b"].vector) < -0.95
