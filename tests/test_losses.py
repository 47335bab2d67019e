"""Losses against their formulas; gradients go where they should."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylegan_lightning.losses import (
    IdentityLoss,
    L2Loss,
    LandmarkLoss,
    LPIPSLoss,
    ParsingLoss,
    d_logistic_loss,
    delta_regularizer,
    g_nonsaturating_loss,
    r1_penalty,
    w_norm,
)


class ToyEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return F.normalize(self.proj(x).mean((2, 3)), dim=1)


def test_l2_loss_and_resize():
    a, b = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    assert torch.allclose(L2Loss()(a, b), F.mse_loss(a, b))
    pooled = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    assert torch.allclose(L2Loss(resolution=8)(a, b), F.mse_loss(*pooled), atol=1e-6)


def test_identity_loss_formula_and_gradients():
    torch.manual_seed(0)
    encoder = ToyEncoder().requires_grad_(False)
    loss = IdentityLoss(encoder)
    prediction = torch.randn(3, 3, 8, 8, requires_grad=True)
    target = torch.randn(3, 3, 8, 8, requires_grad=True)
    value = loss(prediction, target)
    expected = (1 - F.cosine_similarity(encoder(prediction), encoder(target), dim=1)).mean()
    assert torch.allclose(value, expected)
    value.backward()
    assert prediction.grad.abs().sum() > 0 and target.grad is None
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    encoder.differentiable = False
    with pytest.raises(ValueError, match="differentiable"):
        IdentityLoss(encoder)


class ToyParser(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 1)

    def forward(self, x):
        return self.conv(x)


def test_parsing_loss_modes():
    torch.manual_seed(1)
    parser = ToyParser()
    prediction, target = torch.randn(2, 3, 6, 6), torch.randn(2, 3, 6, 6)
    ce = ParsingLoss(parser)(prediction, target)
    assert torch.allclose(ce, F.cross_entropy(parser(prediction), parser(target).argmax(1)))
    labels = torch.randint(0, 5, (2, 12, 12))
    with_labels = ParsingLoss(parser)(prediction, labels=labels)
    assert torch.allclose(with_labels, F.cross_entropy(parser(prediction), labels[:, ::2, ::2]))
    feature = ParsingLoss(parser, mode="feature")(prediction, target)
    assert torch.allclose(feature, F.mse_loss(parser(prediction).softmax(1), parser(target).softmax(1)))
    l2 = ParsingLoss(parser, mode="l2")(prediction, target)
    squared_norm = (parser(prediction) - parser(target)).pow(2).sum()  # ‖H(x) - H(x̂)‖² over the batch
    assert torch.allclose(l2, squared_norm / (2 * 5 * 6 * 6))
    assert float(ParsingLoss(parser, mode="l2")(target, target).detach()) == 0.0
    assert float(l2) > 10 * float(feature)  # logits, not probabilities
    prediction.requires_grad_(True)
    ParsingLoss(parser, mode="l2")(prediction, target).backward()
    assert prediction.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="target image"):
        ParsingLoss(parser, mode="l2")(prediction, labels=labels)
    with pytest.raises(ValueError):
        ParsingLoss(parser, mode="dice")


class ToyLandmarks(nn.Module):
    """Heatmaps = the image's first channel; landmarks = two fixed linear read-outs."""

    def heatmaps(self, x):
        return x[:, :2]

    def forward(self, x):
        return torch.stack([x[:, 0].mean((1, 2)), x[:, 1].mean((1, 2))], -1)[:, None].expand(-1, 3, -1)


def test_landmark_loss_modes():
    prediction, target = torch.randn(2, 3, 8, 8, requires_grad=True), torch.randn(2, 3, 8, 8)
    heat = LandmarkLoss(ToyLandmarks())(prediction, target)
    assert torch.allclose(heat, F.mse_loss(prediction[:, :2], target[:, :2]))
    heat.backward()
    assert prediction.grad.abs().sum() > 0
    coords = LandmarkLoss(ToyLandmarks(), mode="coordinates")(prediction, target)
    net = ToyLandmarks()
    assert torch.allclose(coords, (net(prediction) - net(target)).norm(dim=-1).mean() / 8)


def test_adversarial_losses_hand_values():
    zero = torch.zeros(4, 1)
    assert g_nonsaturating_loss(zero).item() == pytest.approx(math.log(2))
    assert d_logistic_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert g_nonsaturating_loss(torch.full((2, 1), 30.0)).item() < 1e-10
    real = torch.randn(3, 5, requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 0.0, -1.0, 3.0], requires_grad=True)
    logits = (real * weights).sum(1)
    penalty = r1_penalty(logits, real)
    assert penalty.item() == pytest.approx(float((weights**2).sum()))
    penalty.backward()  # differentiable w.r.t. the discriminator's parameters
    assert torch.allclose(weights.grad, 2 * weights.detach())


def test_regularizers_hand_values():
    w = torch.zeros(2, 3, 4)
    w[0, :, 0] = 1.0  # ||.||_F = sqrt(3)
    w[1, 0, :] = 2.0  # ||.||_F = 4
    assert w_norm(w).item() == pytest.approx((math.sqrt(3) + 4) / 2)
    assert w_norm(w + 1, torch.ones(4)).item() == pytest.approx((math.sqrt(3) + 4) / 2)
    w_plus = torch.zeros(2, 4, 3)
    w_plus[:, 1] = torch.tensor([3.0, 4.0, 0.0])  # ||w_1 - w_0|| = 5
    w_plus[:, 3] = torch.tensor([0.0, 0.0, 2.0])  # ||w_3 - w_0|| = 2
    assert delta_regularizer(w_plus).item() == pytest.approx(7.0)
    assert delta_regularizer(w_plus, upto=2).item() == pytest.approx(5.0)


def test_lpips_loss_resizes_and_averages():
    calls = []

    def network(x, y):
        calls.append(x.shape[-1])
        return (x - y).abs().flatten(1).mean(1)

    loss = LPIPSLoss(network, resolution=8)
    value = loss(torch.zeros(2, 3, 16, 16), torch.ones(2, 3, 16, 16))
    assert calls == [8] and value.item() == pytest.approx(1.0)


def test_inversion_losses_weight_and_resize():
    """The inversion methods' image losses: weighted L2 after resizing the reconstruction to the target's size;
    LPIPS and identity are off (and need no files) at weight 0."""
    from stylegan_lightning.losses import InversionLosses
    from stylegan_lightning.utils.images import resize_images

    torch.manual_seed(0)
    target, reconstruction = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    losses = InversionLosses(l2_lambda=2.5)
    assert losses.lpips is None and losses.identity is None
    assert losses.networks() == {"lpips": None, "identity": None}
    terms = losses(reconstruction, target)
    assert set(terms) == {"l2"}
    expected = 2.5 * torch.mean((resize_images(reconstruction, 16) - target) ** 2)
    assert torch.allclose(terms["l2"], expected)
