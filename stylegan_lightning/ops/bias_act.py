"""Fused bias + activation + gain (+ clamp): ``clamp(act(x + b) * gain, -clamp, clamp)``.

``bias_act`` follows NVlabs' op: the bias is broadcast along ``dim`` (1 = channels for NCHW), the activation is
one of :data:`ACTIVATIONS` with its default ``alpha`` and ``gain``. ``fused_leaky_relu`` and
:class:`FusedLeakyReLU` are rosinality's form of the same thing (``leaky_relu(x + b, 0.2) * sqrt(2)``).
The CUDA kernel covers the leaky-ReLU family (``linear``, ``relu``, ``lrelu``); other activations always use
the reference path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .impl import resolve
from .plugin import get_plugin


@dataclass(frozen=True)
class Activation:
    """One activation: ``function(x, alpha)``, its default ``alpha`` and default output ``gain``."""

    function: Callable[[torch.Tensor, float], torch.Tensor]
    alpha: float
    gain: float
    cuda: bool = False  # covered by the CUDA kernel (the leaky-ReLU family)


def _identity(x: torch.Tensor, alpha: float) -> torch.Tensor:  # compared by identity in bias_act_ref
    return x


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(_identity, 0.0, 1.0, cuda=True),
    "relu": Activation(lambda x, a: F.relu(x), 0.0, math.sqrt(2), cuda=True),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), 0.2, math.sqrt(2), cuda=True),
    "tanh": Activation(lambda x, a: torch.tanh(x), 0.0, 1.0),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x), 0.0, 1.0),
    "elu": Activation(lambda x, a: F.elu(x), 0.0, 1.0),
    "selu": Activation(lambda x, a: F.selu(x), 0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x), 0.0, 1.0),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
}


def _broadcast_bias(b: torch.Tensor, x: torch.Tensor, dim: int) -> torch.Tensor:
    if b.ndim != 1 or b.shape[0] != x.shape[dim]:
        raise ValueError(f"bias of shape {tuple(b.shape)} does not match dimension {dim} of input {tuple(x.shape)}")
    shape = [1] * x.ndim
    shape[dim] = b.shape[0]
    return b.reshape(shape)


def bias_act_ref(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Reference implementation of :func:`bias_act` in plain PyTorch."""
    spec = ACTIVATIONS[act]
    alpha = spec.alpha if alpha is None else float(alpha)
    gain = spec.gain if gain is None else float(gain)
    if b is not None:
        x = x + _broadcast_bias(b.to(x.dtype), x, dim)
    x = spec.function(x, alpha)
    # without autograd, the gain and the clamp rewrite the activation's own output instead of allocating two more
    # tensors of its size (same values; a large saving for the feature maps of high resolutions on the CPU)
    in_place = not torch.is_grad_enabled() and spec.function is not _identity
    if gain != 1:
        x = x.mul_(gain) if in_place else x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp) if in_place else x.clamp(-clamp, clamp)
    return x


class _BiasActCUDA(torch.autograd.Function):
    """Leaky-ReLU family on CUDA. The output ``y`` is saved: its sign and magnitude give the derivative."""

    @staticmethod
    def forward(ctx, x, b, dim, alpha, gain, clamp):
        x = x.contiguous()
        bias = b.contiguous() if b is not None else x.new_empty(0)
        y = _cuda_bias_act(x, bias, x.new_empty(0), 0, dim, alpha, gain, clamp)
        ctx.save_for_backward(y)
        ctx.config = (dim, alpha, gain, clamp, b is not None)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (y,) = ctx.saved_tensors
        dim, alpha, gain, clamp, has_bias = ctx.config
        grad_x = _BiasActGradCUDA.apply(grad_y, y, dim, alpha, gain, clamp)
        grad_b = None
        if has_bias and ctx.needs_input_grad[1]:
            grad_b = grad_x.sum([d for d in range(grad_x.ndim) if d != dim])
        return grad_x, grad_b, None, None, None, None


class _BiasActGradCUDA(torch.autograd.Function):
    """``grad_x = grad_y * gain * (y > 0 ? 1 : alpha) * (|y| < clamp)``: linear in ``grad_y``, and piecewise
    constant in ``y``, so its own derivative is the same masking (double backward)."""

    @staticmethod
    def forward(ctx, grad_y, y, dim, alpha, gain, clamp):
        ctx.save_for_backward(y)
        ctx.config = (dim, alpha, gain, clamp)
        return _cuda_bias_act(grad_y.contiguous(), y.new_empty(0), y, 1, dim, alpha, gain, clamp)

    @staticmethod
    def backward(ctx, grad_grad_x):
        (y,) = ctx.saved_tensors
        dim, alpha, gain, clamp = ctx.config
        return _BiasActGradCUDA.apply(grad_grad_x, y, dim, alpha, gain, clamp), None, None, None, None, None


def _cuda_bias_act(x, b, ref, grad, dim, alpha, gain, clamp):
    """The compiled kernel (mode ``grad`` 0: forward, 1: masked gradient); tests may substitute it."""
    return get_plugin("bias_act", required=True).bias_act(x, b, ref, grad, dim, alpha, gain, clamp)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """``clamp(act(x + b) * gain, -clamp, clamp)`` with ``b`` broadcast along ``dim``.

    ``alpha`` and ``gain`` default to the activation's values in :data:`ACTIVATIONS`; ``clamp=None`` (or a
    negative value) disables clamping.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATIONS)}")
    dim = dim % x.ndim
    spec = ACTIVATIONS[act]
    if b is not None:
        _broadcast_bias(b, x, dim)  # validates the shape for both paths
    if not spec.cuda or resolve(impl, x, "bias_act") == "ref":
        return bias_act_ref(x, b, dim, act, alpha, gain, clamp)
    alpha = {"linear": 1.0, "relu": 0.0}.get(act, spec.alpha if alpha is None else float(alpha))
    gain = spec.gain if gain is None else float(gain)
    clamp = -1.0 if clamp is None else float(clamp)
    return _BiasActCUDA.apply(x, None if b is None else b.to(x.dtype), dim, alpha, gain, clamp)


def fused_leaky_relu(
    x: torch.Tensor, bias: torch.Tensor | None = None, negative_slope: float = 0.2, scale: float = 2**0.5
) -> torch.Tensor:
    """``leaky_relu(x + bias, negative_slope) * scale`` with the bias on dimension 1 (rosinality's op)."""
    return bias_act(x, bias, dim=1, act="lrelu", alpha=negative_slope, gain=scale)


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias followed by a scaled leaky ReLU (parameter name ``bias``, as in rosinality)."""

    def __init__(self, channel: int, bias: bool = True, negative_slope: float = 0.2, scale: float = 2**0.5):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}, scale={self.scale:.4f}"
