"""Discriminator: rosinality layout, minibatch stddev, R1 double backward."""

from __future__ import annotations

import pytest
import torch

from stylegan_lightning.stylegan2 import Discriminator


def test_config_f_256_layout():
    sd = Discriminator(256).state_dict()
    assert tuple(sd["convs.0.0.weight"].shape) == (128, 3, 1, 1) and tuple(sd["convs.0.1.bias"].shape) == (128,)
    assert tuple(sd["convs.1.conv1.0.weight"].shape) == (128, 128, 3, 3)
    assert tuple(sd["convs.1.conv2.0.kernel"].shape) == (4, 4)
    assert tuple(sd["convs.1.conv2.1.weight"].shape) == (256, 128, 3, 3)
    assert tuple(sd["convs.1.skip.1.weight"].shape) == (256, 128, 1, 1) and "convs.1.skip.1.bias" not in sd
    assert tuple(sd["final_conv.0.weight"].shape) == (512, 513, 3, 3)
    assert tuple(sd["final_linear.0.weight"].shape) == (512, 512 * 16)
    assert tuple(sd["final_linear.1.weight"].shape) == (1, 512)
    assert len([k for k in sd if k.startswith("convs.") and k.endswith("conv1.0.weight")]) == 6


def _independent_stddev(features: torch.Tensor, group: int) -> torch.Tensor:
    """Per group of samples (sample i belongs to group slot i % groups): std over the group, averaged."""
    batch = features.shape[0]
    groups = features.view(group, batch // group, *features.shape[1:])
    std = torch.sqrt(groups.var(0, unbiased=False) + 1e-8).mean(dim=[1, 2, 3])  # [batch // group]
    return std.repeat(group)


@pytest.mark.parametrize("batch,group", [(8, 4), (4, 4), (6, 3), (5, 1), (2, 2)])
def test_minibatch_stddev_groups(batch, group):
    d = Discriminator(16, channel_max=8)
    features = torch.randn(batch, 8, 4, 4, dtype=torch.float64)
    out = d.double().minibatch_stddev(features)
    assert out.shape == (batch, 9, 4, 4)
    assert torch.equal(out[:, :8], features)
    assert torch.allclose(out[:, 8, 0, 0], _independent_stddev(features, group))


def test_forward_shapes_and_validation():
    d = Discriminator(32, channel_max=16)
    logits, features = d(torch.randn(3, 3, 32, 32), return_features=True)
    assert logits.shape == (3, 1)
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4]
    with pytest.raises(ValueError, match="expects"):
        d(torch.randn(3, 3, 16, 16))


def test_r1_double_backward():
    torch.manual_seed(0)
    d = Discriminator(16, channel_max=8)
    real = torch.randn(4, 3, 16, 16, requires_grad=True)
    (grad,) = torch.autograd.grad(d(real).sum(), real, create_graph=True)
    penalty = grad.square().sum([1, 2, 3]).mean()
    penalty.backward()
    weight_grad = d.convs[1].conv2[1].weight.grad
    assert weight_grad is not None and weight_grad.abs().sum() > 0
