"""GradStyle Selective Attention, Aligner and random perspective warps: exact masks, exact zeros, learning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stylegan_lightning.gradstyle.attention import (
    Aligner,
    AlignerLayer,
    SelectiveAttention,
    selective_attention,
    sinusoidal_position_embedding_2d,
    top_k_count,
    top_ratio_mask,
)
from stylegan_lightning.gradstyle.augment import (
    CANONICAL_CORNERS,
    apply_homography,
    homography_from_corners,
    perspective_homographies,
    random_perspective,
    warp_features,
)

pytestmark = pytest.mark.usefixtures("single_thread")


# ---------------------------------------------------------------- top_ratio_mask


@pytest.mark.parametrize("ratio", [0.01, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("integer_scores", [False, True])
def test_top_ratio_mask_keeps_exactly_k_largest(ratio, integer_scores):
    gen = torch.Generator().manual_seed(1)
    nk = 37
    if integer_scores:  # many ties: values 0..4 only
        scores = torch.randint(0, 5, (2, 3, 11, nk), generator=gen).float()
    else:
        scores = torch.randn(2, 3, 11, nk, generator=gen)
    mask = top_ratio_mask(scores, ratio)
    k = max(1, math.ceil(ratio * nk))
    assert k == top_k_count(ratio, nk)
    assert mask.dtype == torch.bool and mask.shape == scores.shape
    assert torch.all(mask.sum(-1) == k)
    kept_min = scores.masked_fill(~mask, float("inf")).amin(-1)
    dropped_max = scores.masked_fill(mask, float("-inf")).amax(-1)
    assert torch.all(kept_min >= dropped_max)


def test_top_ratio_mask_counts_and_validation():
    assert [top_k_count(r, 100) for r in (0.001, 0.01, 0.07, 0.5, 1.0)] == [1, 1, 7, 50, 100]
    assert top_k_count(0.25, 4096) == 1024
    assert top_ratio_mask(torch.zeros(4, 6), 0.5).sum(-1).tolist() == [3, 3, 3, 3]  # all tied
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="ratio"):
            top_ratio_mask(torch.zeros(2, 5), bad)


# ---------------------------------------------------------------- selective_attention


def _qkv(nq=7, nk=20, d=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, n, d, generator=gen) for n in (nq, nk, nk)]


@pytest.mark.parametrize("ratio", [0.01, 0.25, 0.5])
def test_selective_attention_zero_weight_outside_mask(ratio):
    q, k, _ = _qkv()
    nk = k.shape[-2]
    eye = torch.eye(nk).expand(2, 3, nk, nk)  # one-hot values: output row = attention weights
    weights = selective_attention(q, k, eye, ratio)
    mask = top_ratio_mask(torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k.transpose(-2, -1)), ratio)  # as computed
    assert torch.all(weights[~mask] == 0)
    assert torch.all(weights[mask] > 0)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3, q.shape[-2]), atol=1e-6)
    # the kept entries are the softmax over the kept scores only
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
    assert torch.allclose(weights, expected, atol=1e-6)


def test_selective_attention_ratio_one_is_sdpa():
    q, k, v = _qkv(nq=9, nk=13, d=16)
    out = selective_attention(q, k, v, 1.0)
    assert out.shape == (2, 3, 9, 16)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6)


@pytest.mark.parametrize("ratio", [0.01, 0.5, 1.0])
def test_selective_attention_gradients(ratio):
    q, k, v = (t.requires_grad_() for t in _qkv(nk=30))
    assert top_k_count(0.01, 30) == 1
    out = selective_attention(q, k, v, ratio)
    assert torch.isfinite(out).all()
    (out ** 2).sum().backward()
    for t in (q, k, v):
        assert t.grad is not None and torch.isfinite(t.grad).all()
    assert v.grad.abs().sum() > 0
    if ratio > 0.01:  # with k=1 the softmax is constant, so q and k get zero gradient (still finite)
        assert q.grad.abs().sum() > 0 and k.grad.abs().sum() > 0


# ---------------------------------------------------------------- modules


def test_selective_attention_module_shapes_and_errors():
    torch.manual_seed(0)
    attn = SelectiveAttention(12, 20, heads=3, head_dim=8, ratio=0.25)
    out = attn(torch.randn(2, 5, 12), torch.randn(2, 9, 20))
    assert out.shape == (2, 5, 12)
    with pytest.raises(ValueError, match="queries"):
        attn(torch.randn(2, 5, 11), torch.randn(2, 9, 20))
    with pytest.raises(ValueError, match="keys"):
        attn(torch.randn(2, 5, 12), torch.randn(3, 9, 20))
    with pytest.raises(ValueError, match="ratio"):
        SelectiveAttention(4, 4, ratio=0.0)
    layer = AlignerLayer(16, heads=2, head_dim=8, ratio=0.5)
    assert layer(torch.randn(2, 6, 16), torch.randn(2, 10, 16)).shape == (2, 6, 16)


def test_aligner_shapes_and_errors():
    torch.manual_seed(0)
    aligner = Aligner(8, heads=2, head_dim=16, layers=2, ratio=0.5, width=16)
    residual, edited = torch.randn(2, 8, 6, 5), torch.randn(2, 8, 6, 5)
    out = aligner(residual, edited)
    assert out.shape == (2, 8, 6, 5) and torch.isfinite(out).all()
    assert Aligner(8)(residual, edited).shape == (2, 8, 6, 5)  # default width = channels
    with pytest.raises(ValueError, match=r"\(2, 8, 6, 4\)"):
        aligner(torch.randn(2, 8, 6, 4), edited)
    with pytest.raises(ValueError, match=r"\(2, 4, 6, 5\)"):
        aligner(residual, torch.randn(2, 4, 6, 5))
    with pytest.raises(ValueError, match="residual and edited"):
        aligner(torch.randn(2, 4, 6, 5), torch.randn(2, 4, 6, 5))  # same shapes, wrong channels
    with pytest.raises(ValueError, match="multiple of 4"):
        Aligner(8, width=10)


def test_aligner_output_follows_edited_layout():
    """Each output token depends on its own edited token (the query) and on all residual tokens (the memory)."""
    torch.manual_seed(0)
    aligner = Aligner(8, heads=2, head_dim=8, width=16, ratio=1.0)
    residual = torch.randn(1, 8, 4, 4, requires_grad=True)
    edited = torch.randn(1, 8, 4, 4, requires_grad=True)
    aligner(residual, edited)[0, :, 1, 2].sum().backward()
    edited_grad = edited.grad.abs().sum(1)[0]
    assert edited_grad[1, 2] > 0 and edited_grad.sum() == edited_grad[1, 2]
    assert torch.all(residual.grad.abs().sum(1) > 0)


def test_position_embedding():
    emb = sinusoidal_position_embedding_2d(3, 5, 8)
    assert emb.shape == (15, 8) and emb.dtype == torch.get_default_dtype()
    assert torch.equal(emb[0], torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1]))
    # token (y=2, x=3): y half = [sin(2), sin(0.02), cos(2), cos(0.02)], frequencies 1 and 10000**-0.5
    y, x = torch.tensor(2.0, dtype=torch.float64), torch.tensor(3.0, dtype=torch.float64)
    w = torch.tensor([1.0, 0.01], dtype=torch.float64)
    expected = torch.cat([(y * w).sin(), (y * w).cos(), (x * w).sin(), (x * w).cos()]).float()
    assert torch.allclose(emb[2 * 5 + 3], expected, atol=1e-7)
    assert torch.cdist(emb, emb).add(torch.eye(15) * 10).min() > 0.01  # all rows distinct
    assert sinusoidal_position_embedding_2d(2, 2, 4, dtype=torch.float64).dtype == torch.float64
    for bad in (6, 0, 3):
        with pytest.raises(ValueError, match="multiple of 4"):
            sinusoidal_position_embedding_2d(2, 2, bad)


# ---------------------------------------------------------------- random perspective


def test_perspective_identity_and_shapes():
    x = torch.randn(2, 3, 8, 10)
    assert torch.allclose(random_perspective(x, 0.0), x, atol=1e-6)
    # a zero-distortion homography is the identity, and so is the warp it produces without the short-circuit
    h = perspective_homographies(2, 0.0)
    assert torch.allclose(h, torch.eye(3).expand(2, 3, 3), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    y = random_perspective(x, 0.25, generator=g)
    assert y.shape == x.shape
    assert (y - x).abs().mean() > 0.1
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_perspective(x, 0.25, generator=g), y)  # reproducible
    with pytest.raises(ValueError, match="distortion"):
        random_perspective(x, 1.0)


def test_perspective_homographies_move_corners_inward_like_torchvision():
    """torchvision RandomPerspective semantics: the output corners move inward by up to distortion x half size
    and the input's corners land on them (the input shrinks into the quadrilateral, the border is zero)."""
    g = torch.Generator().manual_seed(3)
    h, corners = perspective_homographies(64, 0.3, generator=g, dtype=torch.float64, return_corners=True)
    canonical = torch.tensor(CANONICAL_CORNERS, dtype=torch.float64).expand(64, 4, 2)
    inward = (corners - canonical) * -canonical.sign()  # displacement towards the centre, per coordinate
    assert inward.min() >= 0 and inward.max() <= 0.3 and inward.max() > 0.25
    assert torch.allclose(apply_homography(h, corners), canonical, atol=1e-10)  # output corner -> input corner
    assert torch.allclose(h[:, 2, 2], torch.ones(64, dtype=torch.float64))
    # every warped map has a zero border where the output lies outside the moved quadrilateral, and the centre
    # keeps its content
    x = torch.ones(64, 1, 32, 32, dtype=torch.float64)
    warped = random_perspective(x, 0.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(warped, random_perspective(x, 0.3, generator=torch.Generator().manual_seed(3)))
    assert (warped[:, 0, 14:18, 14:18] - 1).abs().max() < 1e-9
    covered = warped.flatten(1).mean(1)  # the input shrinks: every sample loses area to the empty border
    assert float(covered.max()) < 0.999 and 0.7 < float(covered.mean()) < 0.9
    # the probability p: about half of the samples are left alone at p = 0.5, all at p = 0, none at p = 1
    h_half = perspective_homographies(400, 0.15, generator=torch.Generator().manual_seed(0), p=0.5)
    identity = (h_half - torch.eye(3)).abs().flatten(1).amax(1) < 1e-6
    assert 160 < int(identity.sum()) < 240
    assert torch.allclose(perspective_homographies(5, 0.15, p=0.0), torch.eye(3).expand(5, 3, 3), atol=1e-6)
    h_all = perspective_homographies(50, 0.15, generator=torch.Generator().manual_seed(0), p=1.0)
    assert bool(((h_all - torch.eye(3)).abs().flatten(1).amax(1) > 1e-4).all())
    with pytest.raises(ValueError, match="p must"):
        perspective_homographies(2, 0.15, p=1.5)
    # a known homography: scaling by 0.5 and shifting by (0.1, -0.2)
    target = canonical[:5] * 0.5 + torch.tensor([0.1, -0.2], dtype=torch.float64)
    expected = torch.tensor([[0.5, 0, 0.1], [0, 0.5, -0.2], [0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(homography_from_corners(canonical[:5], target), expected.expand(5, 3, 3), atol=1e-12)


def test_one_warp_moves_every_scale_alike():
    """The same homographies warp an 8 px and a 32 px map of one image consistently: warping then pooling equals
    pooling then warping up to the resampling error."""
    torch.manual_seed(0)
    fine = F.interpolate(torch.randn(3, 2, 4, 4), size=32, mode="bilinear", align_corners=False)  # smooth
    h = perspective_homographies(3, 0.15, generator=torch.Generator().manual_seed(1), p=1.0)
    coarse_of_warped = F.avg_pool2d(warp_features(fine, h), 4)
    warped_of_coarse = warp_features(F.avg_pool2d(fine, 4), h)
    other = perspective_homographies(3, 0.15, generator=torch.Generator().manual_seed(2), p=1.0)
    consistent = (coarse_of_warped - warped_of_coarse).abs().mean().item()
    inconsistent = (coarse_of_warped - warp_features(F.avg_pool2d(fine, 4), other)).abs().mean().item()
    assert consistent < 0.5 * inconsistent, (consistent, inconsistent)
    with pytest.raises(ValueError, match="homographies"):
        warp_features(fine, h[:2])


def test_random_perspective_matches_its_homography():
    """The warp samples the input at H(output pixel centre): check it against a direct grid_sample."""
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    h = perspective_homographies(2, 0.2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert (h - torch.eye(3, dtype=torch.float64)).abs().max() > 0.05  # p = 1 by default: both are warped
    ys = (torch.arange(6, dtype=torch.float64) * 2 + 1) / 6 - 1  # pixel centres, align_corners=False
    xs = (torch.arange(7, dtype=torch.float64) * 2 + 1) / 7 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    num = torch.stack([gx, gy, torch.ones_like(gx)], -1)  # [6, 7, 3]
    mapped = torch.einsum("bij,hwj->bhwi", h, num)
    grid = mapped[..., :2] / mapped[..., 2:]
    expected = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = random_perspective(x, 0.2, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(out, expected, atol=1e-12)


def test_random_perspective_is_differentiable():
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    random_perspective(x, 0.2, generator=torch.Generator().manual_seed(0)).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ---------------------------------------------------------------- learning


def _alignment_batch(count: int, generator: torch.Generator, size: int = 8):
    """Synthetic misaligned pairs like the editing stream's: ``edited`` features [f, 0] and residual features
    [f, payload] (smooth random maps; the payload is independent of f, so only the residual memory holds it),
    and the residuals warped by fresh random perspective transforms (distortion 0.15, every sample warped)."""
    def smooth():
        return F.interpolate(torch.randn(count, 4, 4, 4, generator=generator), size=size, mode="bilinear",
                             align_corners=False)

    content, payload = smooth(), smooth()
    edited, residual = torch.cat([content, torch.zeros_like(content)], 1), torch.cat([content, payload], 1)
    homographies = perspective_homographies(count, 0.15, generator, p=1.0)
    return edited, residual, warp_features(residual, homographies)


def test_aligner_aligns_unseen_warps_of_unseen_features():
    """Trained on fresh features and fresh warps every step, the Aligner (mu = 0.5, GradStyle's choice) re-aligns
    held-out features under held-out warps: it learned to align, not one batch. The payload channels exist only
    in the warped memory, so their error shows the attention moving content to where the edited layout wants it
    (and a memory from another image does not serve)."""
    torch.manual_seed(0)
    aligner = Aligner(8, heads=4, head_dim=8, layers=2, ratio=0.5, width=32)
    optimizer = torch.optim.Adam(aligner.parameters(), lr=1e-2)
    train = torch.Generator().manual_seed(0)
    for _ in range(300):
        edited, residual, warped = _alignment_batch(16, train)
        loss = F.l1_loss(aligner(warped, edited), residual)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    edited, residual, warped = _alignment_batch(64, torch.Generator().manual_seed(123))  # unseen
    with torch.no_grad():
        aligned = aligner(warped, edited)
        foreign = aligner(warped.roll(1, dims=0), edited)  # every image gets another image's memory
    unaligned = F.l1_loss(warped, residual).item()
    payload = F.l1_loss(aligned[:, 4:], residual[:, 4:]).item()
    payload_unaligned = F.l1_loss(warped[:, 4:], residual[:, 4:]).item()
    payload_foreign = F.l1_loss(foreign[:, 4:], residual[:, 4:]).item()
    print(f"held-out L1: aligned {F.l1_loss(aligned, residual).item():.4f}, unaligned {unaligned:.4f}; payload "
          f"aligned {payload:.4f}, unaligned {payload_unaligned:.4f}, other image's memory {payload_foreign:.4f}")
    assert F.l1_loss(aligned, residual).item() < 0.5 * unaligned  # measured 0.053 vs 0.143
    assert payload < 0.75 * payload_unaligned  # measured 0.090 vs 0.142
    assert payload_foreign > 1.5 * payload
