"""Lookahead / Ranger against their definitions; exact resume through state_dict."""

from __future__ import annotations

import copy

import pytest
import torch

from stylegan_lightning.optim import AdamLookahead, Ranger, build_optimizer, centralize_gradients


def _quadratic_steps(optimizer_factory, steps, start):
    p = torch.nn.Parameter(start.clone())
    optimizer = optimizer_factory([p])
    trajectory = []
    for _ in range(steps):
        optimizer.zero_grad()
        ((p - 3.0) ** 2).sum().backward()
        optimizer.step()
        trajectory.append(p.detach().clone())
    return trajectory, optimizer


def test_lookahead_matches_definition():
    """Every k steps: slow += alpha (fast - slow); fast = slow. Between syncs: plain Adam steps."""
    start = torch.tensor([0.5, -1.0, 2.0])
    k, alpha = 3, 0.5
    got, _ = _quadratic_steps(lambda ps: AdamLookahead(ps, lr=0.1, k=k, alpha=alpha), 7, start)
    p = torch.nn.Parameter(start.clone())
    adam = torch.optim.Adam([p], lr=0.1)
    slow = start.clone()
    expected = []
    for step in range(1, 8):
        adam.zero_grad()
        ((p - 3.0) ** 2).sum().backward()
        adam.step()
        if step % k == 0:
            with torch.no_grad():
                slow += alpha * (p - slow)
                p.copy_(slow)
        expected.append(p.detach().clone())
    for a, b in zip(got, expected):
        assert torch.allclose(a, b, atol=1e-7)


def test_gradient_centralization():
    w = torch.nn.Parameter(torch.zeros(2, 3))
    w.grad = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])
    b = torch.nn.Parameter(torch.zeros(3))
    b.grad = torch.tensor([1.0, 2.0, 3.0])
    centralize_gradients([w, b])
    assert torch.allclose(w.grad, torch.tensor([[-1.0, 0.0, 1.0], [-1.0, -1.0, 2.0]]))
    assert torch.equal(b.grad, torch.tensor([1.0, 2.0, 3.0]))  # 1-D tensors untouched


def test_ranger_converges_and_resumes_exactly():
    start = torch.tensor([[0.5, -1.0], [2.0, 4.0]])
    trajectory, _ = _quadratic_steps(lambda ps: Ranger(ps, lr=0.1, centralize=False), 600, start)
    assert (trajectory[-1] - 3.0).abs().max() < 0.05
    # k=1, alpha=1 (slow weights always equal the fast ones) and no centralisation is plain RAdam
    degenerate, _ = _quadratic_steps(lambda ps: Ranger(ps, lr=0.05, k=1, alpha=1.0, centralize=False), 20, start)
    radam, _ = _quadratic_steps(lambda ps: torch.optim.RAdam(ps, lr=0.05, betas=(0.95, 0.999), eps=1e-5), 20, start)
    assert torch.allclose(degenerate[-1], radam[-1], atol=1e-6)
    # interrupted run: 5 steps, save, reload into a fresh optimizer, 5 more == 10 uninterrupted steps
    full, _ = _quadratic_steps(lambda ps: Ranger(ps, lr=0.05), 10, start)
    p = torch.nn.Parameter(start.clone())
    first = Ranger([p], lr=0.05)
    for _ in range(5):
        first.zero_grad()
        ((p - 3.0) ** 2).sum().backward()
        first.step()
    saved = copy.deepcopy(first.state_dict())
    p2 = torch.nn.Parameter(p.detach().clone())
    second = Ranger([p2], lr=0.05)
    second.load_state_dict(saved)
    for _ in range(5):
        second.zero_grad()
        ((p2 - 3.0) ** 2).sum().backward()
        second.step()
    assert torch.equal(p2.detach(), full[-1])


def test_build_optimizer():
    layer = torch.nn.Linear(2, 2)
    layer.bias.requires_grad_(False)
    optimizer = build_optimizer("ranger", layer.parameters(), lr=1e-4)
    assert isinstance(optimizer, Ranger) and len(optimizer.param_groups[0]["params"]) == 1
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer("sgdx", layer.parameters(), lr=1)
    with pytest.raises(ValueError, match="no trainable"):
        build_optimizer("adam", torch.nn.Linear(2, 2).requires_grad_(False).parameters(), lr=1)
