"""stylegan-lightning: compress, invert and edit faces with a frozen StyleGAN2 prior (PyTorch Lightning)."""

from . import _torchvision_compat  # noqa: F401  (must run before anything imports torchvision)

__version__ = "0.1.0"
