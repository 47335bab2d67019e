"""bias_act / fused_leaky_relu: reference against formulas, gradients, CUDA-path autograd logic, implementation
selection and the once-per-process plugin build."""

from __future__ import annotations

import importlib
import math
import warnings

import pytest
import torch

from stylegan_lightning import ops
from stylegan_lightning.ops import ACTIVATIONS, FusedLeakyReLU, bias_act, bias_act_ref, fused_leaky_relu
from stylegan_lightning.ops.bias_act import _BiasActCUDA

bias_act_mod = importlib.import_module("stylegan_lightning.ops.bias_act")
plugin_mod = importlib.import_module("stylegan_lightning.ops.plugin")
impl_mod = importlib.import_module("stylegan_lightning.ops.impl")

FORMULAS = {  # activation: (formula(x, alpha), default gain)
    "linear": (lambda x, a: x, 1.0),
    "relu": (lambda x, a: torch.where(x > 0, x, torch.zeros_like(x)), math.sqrt(2)),
    "lrelu": (lambda x, a: torch.where(x > 0, x, a * x), math.sqrt(2)),
    "tanh": (lambda x, a: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)), 1.0),
    "sigmoid": (lambda x, a: 1 / (1 + torch.exp(-x)), 1.0),
    "elu": (lambda x, a: torch.where(x > 0, x, torch.exp(x) - 1), 1.0),
    "selu": (lambda x, a: 1.0507009873554805 * torch.where(x > 0, x, 1.6732632423543772 * (torch.exp(x) - 1)), 1.0),
    "softplus": (lambda x, a: torch.log1p(torch.exp(x)), 1.0),
    "swish": (lambda x, a: x / (1 + torch.exp(-x)), math.sqrt(2)),
}


def test_activation_table_covers_formulas():
    assert set(FORMULAS) == set(ACTIVATIONS)


@pytest.mark.parametrize("act", sorted(FORMULAS))
@pytest.mark.parametrize("dim", [1, 2, -1])
def test_reference_matches_formula(act, dim):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    b = torch.randn(x.shape[dim], dtype=torch.float64)
    shape = [1] * 4
    shape[dim] = -1
    formula, gain = FORMULAS[act]
    alpha = ACTIVATIONS[act].alpha
    expected = formula(x + b.view(shape), alpha) * gain
    assert torch.allclose(bias_act(x, b, dim=dim, act=act), expected, atol=1e-12)
    # explicit gain and clamp
    clamped = (formula(x + b.view(shape), alpha) * 0.7).clamp(-0.3, 0.3)
    assert torch.allclose(bias_act(x, b, dim=dim, act=act, gain=0.7, clamp=0.3), clamped, atol=1e-12)


def test_fused_leaky_relu_matches_rosinality_semantics_and_honours_slope():
    x = torch.randn(4, 6, 3, 3, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    expected = torch.nn.functional.leaky_relu(x + b.view(1, 6, 1, 1), 0.2) * math.sqrt(2)
    assert torch.allclose(fused_leaky_relu(x, b), expected)
    # the slope argument is used (rosinality's CPU path silently ignores it)
    expected_01 = torch.nn.functional.leaky_relu(x + b.view(1, 6, 1, 1), 0.1) * 3.0
    assert torch.allclose(fused_leaky_relu(x, b, negative_slope=0.1, scale=3.0), expected_01)
    # 2-D input (EqualLinear) with the bias on dim 1, and no bias
    y = torch.randn(5, 6, dtype=torch.float64)
    assert torch.allclose(fused_leaky_relu(y, b), torch.nn.functional.leaky_relu(y + b, 0.2) * math.sqrt(2))
    assert torch.allclose(fused_leaky_relu(y), torch.nn.functional.leaky_relu(y, 0.2) * math.sqrt(2))


def test_fused_leaky_relu_module_parameter_name():
    layer = FusedLeakyReLU(8)
    assert list(layer.state_dict()) == ["bias"] and layer.bias.shape == (8,)
    assert list(FusedLeakyReLU(8, bias=False).state_dict()) == []


def test_bias_shape_mismatch_raises():
    with pytest.raises(ValueError, match="bias"):
        bias_act(torch.randn(2, 3, 4), torch.randn(4), dim=1)
    with pytest.raises(ValueError, match="activation"):
        bias_act(torch.randn(2, 3), act="gelu-ish")


@pytest.mark.parametrize("act", ["lrelu", "tanh", "swish", "linear"])
def test_reference_gradcheck_and_gradgradcheck(act):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    fn = lambda t, c: bias_act_ref(t, c, act=act, gain=1.3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def kernel_semantics(x, b, ref, mode, dim, alpha, gain, clamp):
    """What csrc/bias_act.cu computes, written from its header comment (no autograd)."""
    with torch.no_grad():
        if mode == 0:
            v = x if b.numel() == 0 else x + b.view([-1 if d == dim else 1 for d in range(x.ndim)])
            v = torch.where(v > 0, v, v * alpha) * gain
            return v.clamp(-clamp, clamp) if clamp >= 0 else v
        slope = torch.where(ref > 0, torch.ones_like(ref), torch.full_like(ref, alpha)) * gain
        if clamp >= 0:
            slope = torch.where(ref.abs() >= clamp, torch.zeros_like(slope), slope)
        return x * slope


@pytest.mark.parametrize("alpha,gain,clamp", [(0.2, math.sqrt(2), -1.0), (1.0, 1.0, -1.0), (0.0, 2.0, -1.0),
                                              (0.2, 1.5, 0.8)])
def test_cuda_function_backward_logic(monkeypatch, alpha, gain, clamp):
    """The CUDA path's autograd Functions, with the kernel's documented semantics standing in for it."""
    monkeypatch.setattr(bias_act_mod, "_cuda_bias_act", kernel_semantics)
    torch.manual_seed(2)
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    fn = lambda t, c: _BiasActCUDA.apply(t, c, 1, alpha, gain, clamp)  # noqa: E731
    reference = bias_act_ref(x, b, act="lrelu", alpha=alpha, gain=gain, clamp=None if clamp < 0 else clamp)
    assert torch.allclose(fn(x, b), reference)
    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_reference_is_used_on_cpu_and_cuda_impl_requires_cuda_tensor():
    x = torch.randn(2, 3)
    assert impl_mod.resolve(None, x, "bias_act") == "ref"
    assert impl_mod.resolve("ref", x, "upfirdn2d") == "ref"
    with pytest.raises(RuntimeError, match="cuda"):
        bias_act(x, act="lrelu", impl="cuda")


def test_set_impl_and_environment_variable(monkeypatch):
    previous = ops.get_impl()
    try:
        ops.set_impl("ref")
        assert ops.get_impl() == "ref"
        with pytest.raises(ValueError):
            ops.set_impl("turbo")
    finally:
        ops.set_impl(previous)
    monkeypatch.setenv("STYLEGAN_LIGHTNING_OPS", "ref")
    reloaded = importlib.reload(impl_mod)
    try:
        assert reloaded.get_impl() == "ref"
    finally:
        monkeypatch.delenv("STYLEGAN_LIGHTNING_OPS")
        importlib.reload(impl_mod)


def test_failed_build_is_remembered_and_warns_once(monkeypatch):
    calls = []

    def failing_build(name):
        calls.append(name)
        raise RuntimeError("nvcc not found")

    monkeypatch.setattr(plugin_mod, "_build", failing_build)
    monkeypatch.setattr(plugin_mod, "_cache", {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(5):
            assert plugin_mod.get_plugin("upfirdn2d") is None
    assert calls == ["upfirdn2d"]
    assert sum("could not be built" in str(w.message) for w in caught) == 1
    assert plugin_mod.plugin_status()["upfirdn2d"].startswith("failed: RuntimeError: nvcc not found")
    with pytest.raises(RuntimeError, match="unavailable"):
        plugin_mod.get_plugin("upfirdn2d", required=True)
    assert calls == ["upfirdn2d"]


def test_cuda_sources_are_packaged():
    for source in plugin_mod.PLUGINS.values():
        assert (plugin_mod.SOURCE_DIR / source).is_file()


def test_compile_kernel_passes_the_runtime_flags_to_cpp_extension(monkeypatch):
    """The build check (tools/cuda_build_check.py) and the lazy build compile with the same name and flags."""
    from torch.utils import cpp_extension

    seen = {}
    monkeypatch.setattr(cpp_extension, "load", lambda **kwargs: seen.update(kwargs) or "module")
    assert plugin_mod.compile_kernel("bias_act", build_directory="/tmp/x", extra_cuda_cflags=["-I/inc"]) == "module"
    assert seen["name"].startswith("stylegan_lightning_bias_act_") and seen["build_directory"] == "/tmp/x"
    assert seen["sources"] == [str(plugin_mod.SOURCE_DIR / "bias_act.cu")]
    assert seen["extra_cuda_cflags"] == ["-O3", "-I/inc"] and seen["extra_cflags"] == ["-O3"]
    with pytest.raises(KeyError, match="unknown CUDA op"):
        plugin_mod.compile_kernel("conv2d")
