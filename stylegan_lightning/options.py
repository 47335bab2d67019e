"""Checked option values for the command-line tools (no torch import): argparse ``type=`` converters for numbers
and checks of output paths, run before any work starts so that a mistake costs nothing and overwrites nothing.

Every check raises :class:`~stylegan_lightning.errors.UsageError` (argparse turns a ``type=`` failure into its
own one-line error); the command line prints either as one line with exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable, Iterable

from .errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda, cuda:1 ..."
MAX_TRUNCATION = 4.0  # |psi| beyond this only extrapolates into saturated, flat images


def integer_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    convert.__name__ = f"integer >= {minimum}"
    return convert


positive_int = integer_at_least(1)
nonnegative_int = integer_at_least(0)


def finite_float(text: str) -> float:
    """An argparse type: a finite float (no ``nan`` / ``inf``)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def truncation(text: str) -> float:
    """An argparse type: a truncation ψ, finite with ``|ψ| <= MAX_TRUNCATION``."""
    value = finite_float(text)
    if abs(value) > MAX_TRUNCATION:
        raise argparse.ArgumentTypeError(f"must be in [-{MAX_TRUNCATION:g}, {MAX_TRUNCATION:g}], got {text}")
    return value


def generator_size(text: str) -> int:
    """An argparse type: a StyleGAN2 resolution, a power of two from 4 to 4096."""
    value = integer_at_least(4)(text)
    if value > 4096 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two from 4 to 4096, got {value}")
    return value


MAX_CHANNELS = 4096  # the widest layer a channel table may ask for on the command line


def channel_table(text: str) -> dict[int, int]:
    """An argparse type: an explicit channel table ``"4:256,8:256,16:256,32:128,64:64"`` (resolution:channels)."""
    table: dict[int, int] = {}
    for item in text.split(","):
        resolution, sep, count = item.strip().partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected RESOLUTION:CHANNELS items such as 4:256,8:128, got {item!r}")
        resolution_value, count_value = generator_size(resolution), integer_at_least(1)(count)
        if count_value > MAX_CHANNELS:
            raise argparse.ArgumentTypeError(f"{count_value} channels at {resolution_value} px: at most {MAX_CHANNELS}")
        table[resolution_value] = count_value
    return table


def _writable_folder(folder: Path, flag: str) -> None:
    """``folder`` is, or can be created as, a writable directory (nothing is created here: a run that fails
    later leaves no empty folders behind)."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} '{folder}': '{existing}' is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} '{folder}': '{existing}' is not writable")


def output_folder(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as an output folder that exists or can be created, writable; an existing file there is an
    error."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} '{path}' is a file; give a folder")
    _writable_folder(path, flag)
    return path


def output_file(path: str | Path, flag: str = "--out", suffixes: Iterable[str] | None = IMAGE_SUFFIXES,
                not_same_as: dict[str, str | None] | None = None) -> Path:
    """``path`` as an output file in a writable folder, with one of ``suffixes`` (case-insensitive;
    ``None``: any), and not an existing folder nor one of the files in ``not_same_as`` (flag -> path: inputs the
    output would overwrite). Nothing is created."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UsageError(f"{flag} '{path}' is a folder; give a file name")
    if suffixes is not None and path.suffix.lower() not in tuple(suffixes):
        raise UsageError(f"{flag} '{path}' needs one of the extensions {', '.join(suffixes)}")
    for other_flag, other in (not_same_as or {}).items():
        if other and Path(other).expanduser().resolve() == path.resolve():
            raise UsageError(f"{flag} '{path}' is the {other_flag} file: it would be overwritten")
    _writable_folder(path.parent, flag)
    return path


__all__ = ["DEVICE_HELP", "IMAGE_SUFFIXES", "MAX_TRUNCATION", "finite_float", "generator_size", "integer_at_least",
           "nonnegative_int", "output_file", "output_folder", "positive_int", "truncation"]
