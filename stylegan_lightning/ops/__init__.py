"""Custom ops of the StyleGAN2 backbone: a pure PyTorch reference (default on CPU, ground truth) and CUDA
kernels built lazily on first CUDA use. See :mod:`stylegan_lightning.ops.impl` for choosing between them."""

from .bias_act import ACTIVATIONS, FusedLeakyReLU, bias_act, bias_act_ref, fused_leaky_relu
from .impl import get_impl, set_impl
from .plugin import plugin_status
from .upfirdn2d import upfirdn2d, upfirdn2d_ref

__all__ = [
    "ACTIVATIONS",
    "FusedLeakyReLU",
    "bias_act",
    "bias_act_ref",
    "fused_leaky_relu",
    "get_impl",
    "plugin_status",
    "set_impl",
    "upfirdn2d",
    "upfirdn2d_ref",
]
