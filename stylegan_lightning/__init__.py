"""stylegan-lightning: compress, invert and edit faces with a frozen StyleGAN2 prior (PyTorch Lightning)."""

from ._import_hook import install_torchvision_hook

install_torchvision_hook()  # torchvision (and lightning, torchmetrics... that import it) loads in any import order

__version__ = "0.1.0"
