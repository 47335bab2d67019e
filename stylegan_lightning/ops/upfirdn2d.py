"""Upsample, FIR-filter, downsample: the resampling primitive of StyleGAN2.

``upfirdn2d(x, kernel, up, down, pad)`` on an NCHW tensor does, per channel:

1. upsample by inserting ``up - 1`` zeros after every pixel,
2. pad with zeros (negative values crop),
3. convolve with ``kernel`` (a true convolution, i.e. the kernel flipped; ``flip_filter=True`` correlates),
4. keep every ``down``-th pixel.

Output size per axis: ``(in * up + pad0 + pad1 - k + down) // down``. Padding follows rosinality's
convention: an int pads all sides, ``(p0, p1)`` pads both axes by ``p0`` before and ``p1`` after, and
``(x0, x1, y0, y1)`` sets each side. ``up`` and ``down`` are an int or ``(x, y)``. A 2-D kernel is used as
given; a 1-D kernel ``k`` means the separable kernel ``outer(k, k)``.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F

from .impl import resolve
from .plugin import get_plugin

IntPair = Union[int, Sequence[int]]


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        pair = (value, value)
    else:
        pair = tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of positive ints (x, y), got {value!r}")
    return pair  # type: ignore[return-value]


def _padding(pad: IntPair) -> tuple[int, int, int, int]:
    if isinstance(pad, int):
        return (pad, pad, pad, pad)
    pad = tuple(int(p) for p in pad)
    if len(pad) == 2:
        return (pad[0], pad[1], pad[0], pad[1])
    if len(pad) == 4:
        return pad  # type: ignore[return-value]
    raise ValueError(f"pad must be an int, (p0, p1) or (x0, x1, y0, y1), got {pad!r}")


def output_size(
    in_size: tuple[int, int], kernel_size: tuple[int, int], up: IntPair = 1, down: IntPair = 1, pad: IntPair = 0
) -> tuple[int, int]:
    """Output (height, width) of :func:`upfirdn2d` for an input of ``in_size`` = (H, W)."""
    (ux, uy), (dx, dy) = _pair(up, "up"), _pair(down, "down")
    px0, px1, py0, py1 = _padding(pad)
    kh, kw = kernel_size
    height = (in_size[0] * uy + py0 + py1 - kh + dy) // dy
    width = (in_size[1] * ux + px0 + px1 - kw + dx) // dx
    return height, width


def upfirdn2d_ref(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: IntPair = 1,
    down: IntPair = 1,
    pad: IntPair = 0,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Reference implementation of :func:`upfirdn2d` in plain PyTorch (any device, any order of derivative)."""
    (ux, uy), (dx, dy) = _pair(up, "up"), _pair(down, "down")
    px0, px1, py0, py1 = _padding(pad)
    channels = x.shape[1]
    kernel = kernel.to(device=x.device, dtype=x.dtype)
    if flip_filter:  # correlation = convolution with the flipped kernel
        kernel = kernel.flip(list(range(kernel.ndim)))
    if ux > 1 or uy > 1:
        return _upsample_ref(x, kernel, ux, uy, dx, dy, px0, px1, py0, py1)

    padding: tuple[int, int] | int = 0
    if px0 == px1 >= 0 and py0 == py1 >= 0:  # the convolution pads: no padded copy of the input (same zeros)
        padding = (py0, px0)
    else:
        x = F.pad(x, [px0, px1, py0, py1])  # negative values crop
    kernel = kernel.flip(list(range(kernel.ndim)))  # conv2d correlates
    if kernel.ndim == 1:  # separable: filter rows, then columns
        taps = kernel.numel()
        py, px = padding if isinstance(padding, tuple) else (0, 0)
        x = F.conv2d(x, kernel.view(1, 1, 1, taps).expand(channels, 1, 1, taps), groups=channels, stride=(1, dx),
                     padding=(0, px))
        x = F.conv2d(x, kernel.view(1, 1, taps, 1).expand(channels, 1, taps, 1), groups=channels, stride=(dy, 1),
                     padding=(py, 0))
    else:
        kh, kw = kernel.shape
        x = F.conv2d(x, kernel.view(1, 1, kh, kw).expand(channels, 1, kh, kw), groups=channels, stride=(dy, dx),
                     padding=padding)
    return x


def _upsample_ref(x, kernel, ux, uy, dx, dy, px0, px1, py0, py1):
    """Zero insertion followed by a full convolution is a strided transposed convolution (which never multiplies
    the inserted zeros); the padding then selects a window of that full result and decimation follows."""
    if kernel.ndim == 1:
        kernel = torch.outer(kernel, kernel)
    channels, height, width = x.shape[1:]
    kh, kw = kernel.shape
    full = F.conv_transpose2d(x, kernel.view(1, 1, kh, kw).expand(channels, 1, kh, kw), stride=(uy, ux),
                              groups=channels)
    # out[t] = full[t + k - 1 - pad0] for t < in * up + pad0 + pad1 - k + 1 (zero outside `full`)
    start_y, start_x = kh - 1 - py0, kw - 1 - px0
    stop_y = start_y + height * uy + py0 + py1 - kh + 1
    stop_x = start_x + width * ux + px0 + px1 - kw + 1
    x = F.pad(full, [-start_x, stop_x - full.shape[3], -start_y, stop_y - full.shape[2]])
    return x[:, :, ::dy, ::dx] if dx > 1 or dy > 1 else x


class _Upfirdn2dCUDA(torch.autograd.Function):
    """CUDA forward; the backward is the same op with the kernel flipped and up/down swapped, so it is
    differentiable again (double backward for R1 / path-length regularisation)."""

    @staticmethod
    def forward(ctx, x, kernel, up, down, pad):  # kernel: 2-D, convolution orientation
        (ux, uy), (dx, dy) = up, down
        px0, px1, py0, py1 = pad
        out = _cuda_kernel(x.contiguous(), kernel.contiguous(), ux, uy, dx, dy, px0, px1, py0, py1)
        ctx.save_for_backward(kernel)
        ctx.config = (up, down, pad, x.shape)
        return out

    @staticmethod
    def backward(ctx, grad):
        (kernel,) = ctx.saved_tensors
        (ux, uy), (dx, dy), (px0, px1, py0, py1), in_shape = ctx.config
        kh, kw = kernel.shape
        in_h, in_w = in_shape[2], in_shape[3]
        out_h, out_w = grad.shape[2], grad.shape[3]
        grad_pad = (
            kw - px0 - 1,
            in_w * ux - out_w * dx + px0 - ux + 1,
            kh - py0 - 1,
            in_h * uy - out_h * dy + py0 - uy + 1,
        )
        grad_x = _Upfirdn2dCUDA.apply(grad, kernel.flip([0, 1]), (dx, dy), (ux, uy), grad_pad)
        return grad_x, None, None, None, None


def _cuda_kernel(x, kernel, ux, uy, dx, dy, px0, px1, py0, py1):
    """The compiled kernel; a module-level function so tests can substitute the reference on the CPU."""
    return get_plugin("upfirdn2d", required=True).upfirdn2d(x, kernel, ux, uy, dx, dy, px0, px1, py0, py1)


def upfirdn2d(
    x: torch.Tensor,
    kernel: torch.Tensor,
    up: IntPair = 1,
    down: IntPair = 1,
    pad: IntPair = 0,
    flip_filter: bool = False,
    impl: str | None = None,
) -> torch.Tensor:
    """Upsample by ``up``, pad by ``pad``, convolve with ``kernel``, downsample by ``down`` (NCHW).

    See the module docstring for the exact semantics; ``impl`` overrides the default implementation
    (:mod:`stylegan_lightning.ops.impl`). The kernel is a constant: no gradient is computed for it.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects an NCHW tensor, got shape {tuple(x.shape)}")
    if kernel.ndim not in (1, 2):
        raise ValueError(f"upfirdn2d expects a 1-D or 2-D kernel, got shape {tuple(kernel.shape)}")
    up_xy, down_xy, pad4 = _pair(up, "up"), _pair(down, "down"), _padding(pad)
    kernel_2d_shape = (kernel.shape[0], kernel.shape[-1])
    out_h, out_w = output_size((x.shape[2], x.shape[3]), kernel_2d_shape, up_xy, down_xy, pad4)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"upfirdn2d output would be empty ({out_h}x{out_w}) for input {tuple(x.shape)}, "
            f"kernel {tuple(kernel.shape)}, up={up_xy}, down={down_xy}, pad={pad4}"
        )
    if resolve(impl, x, "upfirdn2d") == "ref":
        return upfirdn2d_ref(x, kernel, up_xy, down_xy, pad4, flip_filter)
    kernel = kernel.to(device=x.device, dtype=x.dtype).detach()
    if kernel.ndim == 1:
        kernel = torch.outer(kernel, kernel)
    if flip_filter:
        kernel = kernel.flip([0, 1])
    return _Upfirdn2dCUDA.apply(x, kernel, up_xy, down_xy, pad4)
