"""upfirdn2d: reference path against a direct formula, gradients, and the CUDA-path autograd logic."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
import torch

from stylegan_lightning.ops import upfirdn2d, upfirdn2d_ref
from stylegan_lightning.ops.upfirdn2d import _padding, _pair, _Upfirdn2dCUDA, output_size

# the package re-exports the function under the submodule's name, so fetch the module itself
upfirdn2d_mod = importlib.import_module("stylegan_lightning.ops.upfirdn2d")


def direct_upfirdn2d(x: np.ndarray, k: np.ndarray, up, down, pad) -> np.ndarray:
    """The definition, step by step on one (H, W) plane: zero insertion, zero pad / crop,
    full true convolution restricted to 'valid', decimation."""
    (ux, uy), (dx, dy) = up, down
    px0, px1, py0, py1 = pad
    h, w = x.shape
    upsampled = np.zeros((h * uy, w * ux))
    upsampled[::uy, ::ux] = x
    padded = np.pad(upsampled, ((max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    padded = padded[max(-py0, 0): padded.shape[0] - max(-py1, 0), max(-px0, 0): padded.shape[1] - max(-px1, 0)]
    kh, kw = k.shape
    out = np.zeros((padded.shape[0] - kh + 1, padded.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            # true convolution: sum_{a,b} P[i + a, j + b] * k[kh - 1 - a, kw - 1 - b]
            out[i, j] = np.sum(padded[i: i + kh, j: j + kw] * k[::-1, ::-1])
    return out[::dy, ::dx]


KERNELS = {
    "blur4": np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0,
    "asym3x5": np.random.default_rng(1).standard_normal((3, 5)),
    "asym2x3": np.random.default_rng(2).standard_normal((2, 3)),
    "one": np.ones((1, 1)),
}
SCALES = [(1, 1), (2, 2), (3, 1), (1, 2)]
PADS = [(0, 0, 0, 0), (2, 1, 2, 1), (1, 2, 0, 3), (-1, 2, 2, -1)]


@pytest.mark.parametrize("kernel_name", sorted(KERNELS))
def test_reference_matches_definition_over_grid(kernel_name):
    rng = np.random.default_rng(0)
    kernel = KERNELS[kernel_name]
    x = rng.standard_normal((2, 3, 5, 6))
    checked = 0
    for up, down, pad in itertools.product(SCALES, SCALES, PADS):
        expected_hw = output_size((5, 6), kernel.shape, up, down, pad)
        if min(expected_hw) < 1:
            continue
        got = upfirdn2d_ref(torch.from_numpy(x), torch.from_numpy(kernel), up=up, down=down, pad=pad).numpy()
        assert got.shape == (2, 3, *expected_hw)
        for b, c in itertools.product(range(2), range(3)):
            np.testing.assert_allclose(got[b, c], direct_upfirdn2d(x[b, c], kernel, up, down, pad), atol=1e-10)
        checked += 1
    assert checked > 50


def test_separable_1d_kernel_equals_outer_product():
    x = torch.randn(1, 2, 7, 9, dtype=torch.float64)
    k = torch.tensor([1.0, -2.0, 4.0, 0.5], dtype=torch.float64)
    for up, down, pad in [(1, 1, (1, 2)), (2, 1, (2, 1)), (1, 2, (1, 1)), ((2, 1), (1, 2), (0, 1, 2, 3))]:
        np.testing.assert_allclose(
            upfirdn2d(x, k, up=up, down=down, pad=pad), upfirdn2d(x, torch.outer(k, k), up=up, down=down, pad=pad),
            atol=1e-12,
        )


def test_padding_conventions():
    """int pads all sides, (p0, p1) both axes, (x0, x1, y0, y1) each side (rosinality / NVlabs order)."""
    x = torch.randn(1, 1, 4, 6, dtype=torch.float64)
    k = torch.ones(1, 1, dtype=torch.float64)
    assert upfirdn2d(x, k, pad=2).shape[-2:] == (8, 10)
    assert upfirdn2d(x, k, pad=(1, 3)).shape[-2:] == (8, 10)
    out = upfirdn2d(x, k, pad=(1, 0, 0, 2))  # x0=1 x1=0 y0=0 y1=2
    assert out.shape[-2:] == (6, 7)
    assert torch.equal(out[..., :4, 1:], x) and out[..., :, 0].abs().sum() == 0 and out[..., 4:, :].abs().sum() == 0


def test_flip_filter_is_correlation():
    x = torch.randn(1, 1, 6, 6, dtype=torch.float64)
    k = torch.randn(3, 4, dtype=torch.float64)
    assert torch.allclose(upfirdn2d(x, k, flip_filter=True), upfirdn2d(x, k.flip([0, 1])))
    correlation = torch.nn.functional.conv2d(x, k[None, None])
    assert torch.allclose(upfirdn2d(x, k, flip_filter=True), correlation)


def test_upsample_preserves_constant_and_downsample_averages():
    """DC gain 1: rosinality's Upsample (kernel * 4, pad (2, 1)) keeps a constant image constant."""
    kernel = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1]))
    kernel = kernel / kernel.sum()
    x = torch.full((1, 1, 8, 8), 3.0, dtype=torch.float64)
    up = upfirdn2d(x, kernel.double() * 4, up=2, pad=(2, 1))
    assert up.shape[-2:] == (16, 16)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))
    down = upfirdn2d(x, kernel.double(), down=2, pad=(1, 1))
    assert down.shape[-2:] == (4, 4)
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 3.0))


def test_invalid_arguments_raise():
    x = torch.randn(1, 1, 4, 4)
    with pytest.raises(ValueError, match="empty"):
        upfirdn2d(x, torch.ones(3, 3), pad=(-2, -2))
    with pytest.raises(ValueError, match="NCHW"):
        upfirdn2d(x[0], torch.ones(3, 3))
    with pytest.raises(ValueError, match="up"):
        upfirdn2d(x, torch.ones(3, 3), up=0)
    with pytest.raises(ValueError, match="kernel"):
        upfirdn2d(x, torch.ones(1, 3, 3))
    with pytest.raises(ValueError, match="impl"):
        upfirdn2d(x, torch.ones(3, 3), impl="fast")


GRAD_CONFIGS = [
    dict(up=1, down=1, pad=(1, 2)),
    dict(up=2, down=1, pad=(2, 1)),
    dict(up=1, down=2, pad=(1, 1)),
    dict(up=(2, 1), down=(1, 2), pad=(0, 1, 2, -1)),
    dict(up=3, down=2, pad=(1, 0, 2, 1)),
]


@pytest.mark.parametrize("config", GRAD_CONFIGS)
def test_reference_gradcheck_and_gradgradcheck(config):
    torch.manual_seed(0)
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 4, dtype=torch.float64)
    fn = lambda t: upfirdn2d_ref(t, k, **config)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.fixture
def reference_as_cuda_kernel(monkeypatch):
    """Run the CUDA path's autograd Function on the CPU with the reference standing in for the compiled kernel,
    so its hand-written backward (transposed op, gradient padding) is checked without a GPU."""

    def fake_kernel(x, kernel, ux, uy, dx, dy, px0, px1, py0, py1):
        with torch.no_grad():  # the real kernel is opaque to autograd too
            return upfirdn2d_ref(x, kernel, (ux, uy), (dx, dy), (px0, px1, py0, py1))

    monkeypatch.setattr(upfirdn2d_mod, "_cuda_kernel", fake_kernel)


@pytest.mark.parametrize("config", GRAD_CONFIGS)
def test_cuda_function_backward_logic(reference_as_cuda_kernel, config):
    torch.manual_seed(1)
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    k = torch.randn(4, 3, dtype=torch.float64)
    args = (k, _pair(config["up"], "up"), _pair(config["down"], "down"), _padding(config["pad"]))
    fn = lambda t: _Upfirdn2dCUDA.apply(t, *args)  # noqa: E731
    assert torch.allclose(fn(x), upfirdn2d_ref(x, k, **config))
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
