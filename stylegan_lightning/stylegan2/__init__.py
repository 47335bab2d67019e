"""Frozen StyleGAN2 backbone: rosinality-compatible Generator / Discriminator, checkpoint import and export,
and :class:`FrozenGenerator`, the wrapper every method uses."""

from .checkpoints import (
    build_generator,
    convert_checkpoint,
    infer_generator_config,
    load_discriminator,
    load_generator,
    read_checkpoint,
    save_generator,
)
from .discriminator import Discriminator
from .frozen import FrozenGenerator
from .generator import Generator, channel_layout

__all__ = [
    "Discriminator",
    "FrozenGenerator",
    "Generator",
    "build_generator",
    "channel_layout",
    "convert_checkpoint",
    "infer_generator_config",
    "load_discriminator",
    "load_generator",
    "read_checkpoint",
    "save_generator",
]
