"""StyleGAN2 building blocks with rosinality's module and parameter names (they are the checkpoint format).

Equalised learning rate: weights are stored as N(0, 1) (divided by ``lr_mul`` for linear layers) and scaled at
run time by ``1 / sqrt(fan_in)`` (times ``lr_mul``), exactly as in the official implementations.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import FusedLeakyReLU, fused_leaky_relu, upfirdn2d

DEFAULT_BLUR_KERNEL = (1, 3, 3, 1)


def make_kernel(kernel: Sequence[float] | torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """A 2-D FIR kernel from a 1-D one (outer product) or a 2-D one, normalised to sum to ``gain``, on the default
    device.

    The arithmetic runs on the CPU: on the meta device (models built only to check their shapes) these ops would
    go through PyTorch's Python decompositions, whose first use imports ``torch._dynamo`` (about 1 s)."""
    kernel = torch.as_tensor(kernel, dtype=torch.float32, device="cpu")
    if kernel.ndim == 1:
        kernel = kernel[None, :] * kernel[:, None]
    return (kernel * (gain / kernel.sum())).to(torch.get_default_device())


class PixelNorm(nn.Module):
    """``x / sqrt(mean(x^2) + 1e-8)`` over dimension 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class Upsample(nn.Module):
    """2x (or ``factor``x) upsampling with the FIR kernel (buffer ``kernel``)."""

    def __init__(self, kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel, gain=factor**2))
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, down=1, pad=self.pad)


class Downsample(nn.Module):
    """2x (or ``factor``x) downsampling with the FIR kernel (buffer ``kernel``)."""

    def __init__(self, kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel))
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=1, down=self.factor, pad=self.pad)


class Blur(nn.Module):
    """FIR filtering with padding (buffer ``kernel``); scaled by ``upsample_factor**2`` after a strided
    transposed convolution so the DC gain stays 1."""

    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel, gain=max(upsample_factor, 1) ** 2))
        self.pad = tuple(pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate (``weight`` [out, in, k, k], ``bias`` [out])."""

    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, bias=self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        out_channel, in_channel, k, _ = self.weight.shape
        return f"{in_channel}, {out_channel}, {k}, stride={self.stride}, padding={self.padding}"


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate and learning-rate multiplier ``lr_mul``.

    ``activation='fused_lrelu'`` adds the bias inside the fused leaky ReLU (rosinality's behaviour).
    """

    def __init__(self, in_dim, out_dim, bias=True, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim).fill_(bias_init)) if bias else None
        self.activation = activation
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias=bias)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, lr_mul={self.lr_mul}, activation={self.activation}"


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution (``weight`` [1, out, in, k, k]; ``modulation`` maps a style to per-input-
    channel scales, bias initialised to 1), optional demodulation, 2x up/down sampling with the FIR kernel.

    ``weight_delta`` (HyperStyle) is a tensor broadcastable to [B, out, in, k, k]; the kernel becomes
    ``W * (1 + delta)`` before modulation and demodulation. ``None`` leaves the layer untouched.

    Per-sample kernels use one grouped convolution (rosinality's fused path); when the kernel is shared by the
    batch the styles scale the activations instead, which is the same computation with one ordinary convolution.
    """

    def __init__(
        self,
        in_channel,
        out_channel,
        kernel_size,
        style_dim,
        demodulate=True,
        upsample=False,
        downsample=False,
        blur_kernel=DEFAULT_BLUR_KERNEL,
    ):
        super().__init__()
        self.eps = 1e-8
        self.kernel_size = kernel_size
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.upsample = upsample
        self.downsample = downsample
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)
        if downsample:
            factor = 2
            p = (len(blur_kernel) - factor) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.demodulate = demodulate

    def extra_repr(self) -> str:
        return (
            f"{self.in_channel}, {self.out_channel}, {self.kernel_size}, demodulate={self.demodulate}, "
            f"upsample={self.upsample}, downsample={self.downsample}"
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor, weight_delta: torch.Tensor | None = None):
        batch, in_channel, height, width = x.shape
        style = self.modulation(style)
        weight = self.weight if weight_delta is None else self.weight * (1 + weight_delta)
        if weight.shape[0] == 1 and batch > 1 and self._activations_cost_less(height, width):
            return self._modulate_activations(x, style, weight[0])
        weight = self.scale * weight * style.view(batch, 1, in_channel, 1, 1)  # [B, out, in, k, k]
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + self.eps)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
        k = self.kernel_size
        x = x.reshape(1, batch * in_channel, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_channel, self.out_channel, k, k)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
            return self.blur(out.view(batch, self.out_channel, *out.shape[2:]))
        if self.downsample:
            x = self.blur(x)
            padding, stride = 0, 2
        else:
            padding, stride = self.padding, 1
        weight = weight.view(batch * self.out_channel, in_channel, k, k)
        out = F.conv2d(x, weight, padding=padding, stride=stride, groups=batch)
        return out.view(batch, self.out_channel, *out.shape[2:])

    def _activations_cost_less(self, height: int, width: int) -> bool:
        """Whether scaling the activations (two passes over the input and output feature maps) costs less per
        sample than modulating and demodulating a kernel of its own (about three passes over the weight)."""
        return (self.in_channel + self.out_channel) * height * width < 3 * self.weight[0].numel()

    def _modulate_activations(self, x: torch.Tensor, style: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The same result for a weight shared by the batch: scale the input channels by the style, convolve
        once with the shared weight, scale the output channels by the demodulation coefficients (one ordinary
        convolution instead of a grouped one: faster for batches, especially on the CPU)."""
        batch = x.shape[0]
        weight = self.scale * weight  # [out, in, k, k]
        x = x * style.view(batch, -1, 1, 1)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), padding=0, stride=2))
        elif self.downsample:
            out = F.conv2d(self.blur(x), weight, padding=0, stride=2)
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sum over (in, k, k) of (w * s_in)^2 = s^2 @ (sum over k, k of w^2): a [B, in] x [in, out] product
            # instead of a [B, out, in, k, k] temporary
            demod = torch.rsqrt(style.pow(2) @ weight.pow(2).sum([2, 3]).t() + self.eps)
            out = out * demod.view(batch, self.out_channel, 1, 1)
        return out


class NoiseInjection(nn.Module):
    """Adds per-pixel noise scaled by a learned scalar ``weight`` (fresh N(0, 1) noise when none is given)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            batch, _, height, width = image.shape
            noise = image.new_empty(batch, 1, height, width).normal_()
        return torch.addcmul(image, self.weight, noise)  # image + weight * noise in one pass


class ConstantInput(nn.Module):
    """The learned 4x4 input of the synthesis network (parameter ``input`` [1, C, 4, 4])."""

    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.input.repeat(x.shape[0], 1, 1, 1)


class StyledConv(nn.Module):
    """Modulated conv -> noise -> bias + leaky ReLU (``conv``, ``noise``, ``activate``)."""

    def __init__(
        self, in_channel, out_channel, kernel_size, style_dim, upsample=False, blur_kernel=DEFAULT_BLUR_KERNEL,
        demodulate=True,
    ):
        super().__init__()
        self.conv = ModulatedConv2d(
            in_channel, out_channel, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel,
            demodulate=demodulate,
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x, style, noise=None, weight_delta=None):
        out = self.conv(x, style, weight_delta=weight_delta)
        out = self.noise(out, noise=noise)
        return self.activate(out)


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB (no demodulation) plus ``bias``, added to the upsampled previous RGB skip."""

    def __init__(self, in_channel, style_dim, upsample=True, blur_kernel=DEFAULT_BLUR_KERNEL):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None, weight_delta=None):
        out = self.conv(x, style, weight_delta=weight_delta) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ConvLayer(nn.Sequential):
    """[Blur ->] EqualConv2d [-> FusedLeakyReLU] as a Sequential (indices are part of the key names)."""

    def __init__(
        self, in_channel, out_channel, kernel_size, downsample=False, blur_kernel=DEFAULT_BLUR_KERNEL, bias=True,
        activate=True,
    ):
        layers: list[nn.Module] = []
        if downsample:
            factor = 2
            p = (len(blur_kernel) - factor) + (kernel_size - 1)
            layers.append(Blur(blur_kernel, pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(
            EqualConv2d(in_channel, out_channel, kernel_size, padding=padding, stride=stride, bias=bias and not activate)
        )
        if activate:
            layers.append(FusedLeakyReLU(out_channel, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Discriminator residual block: two 3x3 convs (the second downsamples) and a 1x1 downsampling skip,
    summed and scaled by 1/sqrt(2)."""

    def __init__(self, in_channel, out_channel, blur_kernel=DEFAULT_BLUR_KERNEL):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=True, activate=False, bias=False,
                              blur_kernel=blur_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return (out + self.skip(x)) / math.sqrt(2)
