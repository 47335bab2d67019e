"""Frozen StyleGAN2 backbone: rosinality-compatible Generator / Discriminator, checkpoint import and export,
:class:`FrozenGenerator`, the wrapper every method uses, and the
training modules of a prior: :class:`StyleGAN2Module` (the GAN) and :class:`PriorWarmStartModule` (reconstruction
warm start with a fitted mapping, for CPUs)."""

from .checkpoints import (
    build_discriminator,
    build_generator,
    convert_checkpoint,
    infer_generator_config,
    load_discriminator,
    load_generator,
    read_checkpoint,
    save_generator,
)
from .augment import DiffAugment, diff_augment
from .discriminator import Discriminator
from .frozen import FrozenGenerator
from .generator import Generator, channel_layout

__all__ = [
    "DiffAugment",
    "Discriminator",
    "FrozenGenerator",
    "Generator",
    "PriorEncoder",
    "PriorWarmStartModule",
    "StyleGAN2Module",
    "build_discriminator",
    "build_generator",
    "channel_layout",
    "convert_checkpoint",
    "diff_augment",
    "infer_generator_config",
    "load_discriminator",
    "load_generator",
    "read_checkpoint",
    "save_generator",
]


def __getattr__(name: str):
    # the training module pulls in Lightning; import it on first use so the backbone stays light
    if name == "StyleGAN2Module":
        from .module import StyleGAN2Module

        return StyleGAN2Module
    if name in ("PriorEncoder", "PriorWarmStartModule"):
        from . import prior

        return getattr(prior, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
