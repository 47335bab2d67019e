"""CUDA kernels against the reference path (skipped without a GPU)."""

from __future__ import annotations

import itertools

import pytest
import torch

from stylegan_lightning.ops import bias_act, plugin_status, upfirdn2d

pytestmark = [pytest.mark.cuda, pytest.mark.usefixtures("no_tf32")]


def _grid():
    for up, down, pad, kshape in itertools.product([1, 2, (2, 1)], [1, 2, (1, 2)], [(1, 2), (2, 1, 0, 3), (-1, 2)],
                                                   [(4, 4), (3, 5), (1, 1)]):
        yield up, down, pad, kshape


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_upfirdn2d_cuda_matches_reference(dtype, tol):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 9, 7, dtype=dtype, device="cuda", requires_grad=True)
    checked = 0
    for up, down, pad, kshape in _grid():
        k = torch.randn(kshape, dtype=dtype, device="cuda")
        try:
            ref = upfirdn2d(x, k, up=up, down=down, pad=pad, impl="ref")
        except ValueError:
            continue
        out = upfirdn2d(x, k, up=up, down=down, pad=pad, impl="cuda")
        torch.testing.assert_close(out, ref, atol=tol, rtol=tol)
        grad_out = torch.randn_like(ref)
        g_ref, = torch.autograd.grad(ref, x, grad_out)
        g_cuda, = torch.autograd.grad(out, x, grad_out)
        torch.testing.assert_close(g_cuda, g_ref, atol=tol, rtol=tol)
        checked += 1
    assert checked > 40
    assert plugin_status()["upfirdn2d"] == "loaded"


def test_upfirdn2d_cuda_gradgradcheck():
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, device="cuda", requires_grad=True)
    k = torch.randn(3, 4, dtype=torch.float64, device="cuda")
    for config in [dict(up=2, pad=(2, 1)), dict(down=2, pad=(1, 1)), dict(up=(2, 1), down=(1, 2), pad=(0, 1, 2, 1))]:
        fn = lambda t: upfirdn2d(t, k, impl="cuda", **config)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_upfirdn2d_cuda_low_precision(dtype):
    x = torch.randn(2, 8, 16, 16, device="cuda")
    k = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])).cuda() / 16
    ref = upfirdn2d(x, k, up=2, pad=(2, 1), impl="ref")
    out = upfirdn2d(x.to(dtype), k.to(dtype), up=2, pad=(2, 1), impl="cuda").float()
    torch.testing.assert_close(out, ref, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("act,clamp", [("lrelu", None), ("linear", None), ("relu", None), ("lrelu", 0.5)])
def test_bias_act_cuda_matches_reference(act, clamp):
    torch.manual_seed(1)
    x = torch.randn(4, 8, 6, 5, dtype=torch.float64, device="cuda", requires_grad=True)
    b = torch.randn(8, dtype=torch.float64, device="cuda", requires_grad=True)
    ref = bias_act(x, b, act=act, clamp=clamp, impl="ref")
    out = bias_act(x, b, act=act, clamp=clamp, impl="cuda")
    torch.testing.assert_close(out, ref)
    grad_out = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, (x, b), grad_out), torch.autograd.grad(ref, (x, b), grad_out))
    fn = lambda t, c: bias_act(t, c, act=act, clamp=clamp, impl="cuda")  # noqa: E731
    small = (x[:1, :2, :2, :2].detach().clone().requires_grad_(), b[:2].detach().clone().requires_grad_())
    assert torch.autograd.gradgradcheck(fn, small)


def test_generator_cuda_equals_reference():
    from stylegan_lightning.stylegan2 import Generator

    torch.manual_seed(0)
    generator = Generator(64, style_dim=64, n_mlp=2, channel_max=64).cuda().eval()
    w = torch.randn(3, 64, device="cuda")
    from stylegan_lightning import ops

    previous = ops.get_impl()
    try:
        ops.set_impl("ref")
        ref, _ = generator([w], randomize_noise=False)
        ops.set_impl("cuda")
        out, _ = generator([w], randomize_noise=False)
    finally:
        ops.set_impl(previous)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
