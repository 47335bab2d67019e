"""Frozen StyleGAN2 backbone: rosinality-compatible Generator / Discriminator, checkpoint import and export,
:class:`FrozenGenerator`, the wrapper every method uses, and :class:`StyleGAN2Module`, which trains a prior."""

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
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
