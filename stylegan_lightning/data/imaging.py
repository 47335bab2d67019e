"""Decoding image and mask bytes with Pillow, and turning them into tensors.

Every failure is reported as :class:`~stylegan_lightning.data.errors.BadImageError` with the file name and the
reason, never as a bare Pillow exception. Colour handling:

- grayscale (``1``, ``L``, 16-bit ``I;16``/``I``), palette (``P``), ``CMYK`` and ``YCbCr`` images become RGB;
- images with transparency (``RGBA``, ``LA``, ``PA``, palette with a transparent index) are composited on white;
- EXIF orientation is applied when present;
- other pixel modes (e.g. floating point ``F``) are refused.

Bounds: an image whose header claims more than ``MAX_IMAGE_PIXELS`` (64 Mi pixels, 8192 x 8192; override with
the environment variable ``STYLEGAN_LIGHTNING_MAX_IMAGE_PIXELS``) pixels is refused with
:class:`~stylegan_lightning.data.errors.BadImageError` from its header alone, before any pixel is decoded;
Pillow's own decompression-bomb warning (above ``PIL.Image.MAX_IMAGE_PIXELS``, about 89 Mpx) is an error here too.
Output sizes (``resolution``) are at most ``MAX_RESOLUTION`` (4096) pixels a side (:func:`check_resolution`).

Tensors: images are float32 ``[3, R, R]`` in [-1, 1] (``v / 127.5 - 1``, so 255 -> 1.0 and 0 -> -1.0 exactly),
masks are int64 ``[R, R]`` class indices.
"""

from __future__ import annotations

import io
import os
import warnings
from typing import IO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..utils.bounds import check_size
from .errors import BadImageError, DatasetError

RESAMPLE = {"lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC,
            "bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX}
_DIRECT_RGB = {"RGB", "L", "1", "CMYK", "YCbCr"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa"}
_WIDE_GRAY = {"I;16", "I;16L", "I;16B", "I;16N", "I"}
MASK_MODES = {"L", "P", "I;16", "I;16L", "I;16B", "I;16N", "I"}
MAX_IMAGE_PIXELS = 64 * 2**20  # width x height of an image file read by the toolkit (8192 x 8192)
MAX_IMAGE_PIXELS_ENV = "STYLEGAN_LIGHTNING_MAX_IMAGE_PIXELS"
MAX_RESOLUTION = 4096  # side of the images the toolkit reads images at (a 4096 x 4096 RGB float tensor: 201 MB)


def check_resolution(resolution: object) -> int:
    """``resolution`` as an int in 1..``MAX_RESOLUTION``, else :class:`DatasetError`."""
    return check_size(resolution, "resolution", MAX_RESOLUTION, DatasetError)


def max_image_pixels() -> int:
    """The bound on an image's width x height: ``$STYLEGAN_LIGHTNING_MAX_IMAGE_PIXELS`` if set, else
    ``MAX_IMAGE_PIXELS``."""
    value = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not value:
        return MAX_IMAGE_PIXELS
    return check_size(int(value) if value.isdigit() else value, f"${MAX_IMAGE_PIXELS_ENV}", None, DatasetError)


def open_bounded(file: str | IO[bytes], name: str) -> Image.Image:
    """``Image.open(file)`` (lazy: no pixel is decoded), refused with :class:`BadImageError` when the header claims
    more than :func:`max_image_pixels` pixels or trips Pillow's decompression-bomb check (an error here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(file)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
            raise BadImageError.for_file(name, f"too large to decode ({error})") from None
    width, height = image.size
    limit = max_image_pixels()
    if width * height > limit:
        image.close()
        raise BadImageError.for_file(name, f"{width} x {height} image ({width * height} pixels) is above the "
                                           f"{limit}-pixel limit (${MAX_IMAGE_PIXELS_ENV})")
    return image


def _open(data: bytes, name: str) -> Image.Image:
    if len(data) == 0:
        raise BadImageError.for_file(name, "empty file (0 bytes)")
    try:
        return open_bounded(io.BytesIO(data), name)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        raise BadImageError.for_file(name, f"not an image Pillow can identify ({len(data)} bytes)") from None
    except Exception as error:  # broken headers, ...
        raise BadImageError.for_file(name, f"unreadable header ({type(error).__name__}: {error})") from None


def _failure(error: Exception) -> str:
    kind = "truncated" if "truncat" in str(error).lower() else "corrupt"
    return f"{kind} ({type(error).__name__}: {error})"


def _load(data: bytes, name: str, verify: bool) -> Image.Image:
    """Open and fully decode ``data``; with ``verify`` run ``Image.verify()`` first (checksums, structure)."""
    if verify:
        image = _open(data, name)
        try:
            image.verify()
        except Exception as error:
            raise BadImageError.for_file(name, _failure(error)) from None
    image = _open(data, name)
    try:
        image.load()  # verify() does not decode pixels, so truncation only shows up here
    except Exception as error:
        raise BadImageError.for_file(name, _failure(error)) from None
    return image


def _exif_upright(image: Image.Image) -> Image.Image:
    try:
        if image.getexif().get(0x0112, 1) in (0, 1):  # no orientation tag, or already upright
            return image
        return ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF blocks are common and harmless for the pixels: keep the stored orientation
        return image


def to_rgb(image: Image.Image, name: str) -> Image.Image:
    """``image`` as an 8-bit RGB image (transparency composited on white); unsupported modes raise."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in _WIDE_GRAY:
        array = np.asarray(image, dtype=np.int64)
        if array.min() < 0 or array.max() > 65535:
            raise BadImageError.for_file(name, f"unsupported pixel mode {mode!r} (values outside 16 bits)")
        scale = 257.0 if mode != "I" or array.max() > 255 else 1.0
        return Image.fromarray(np.clip(np.rint(array / scale), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode in _DIRECT_RGB:
        return image if mode == "RGB" else image.convert("RGB")
    raise BadImageError.for_file(name, f"unsupported pixel mode {mode!r} (expected an 8/16-bit RGB, grayscale, "
                                       "palette, CMYK or RGBA image)")


def decode_rgb(data: bytes, name: str, verify: bool = False) -> Image.Image:
    """Decode image bytes into an upright RGB Pillow image; :class:`BadImageError` names ``name`` otherwise."""
    return to_rgb(_exif_upright(_load(data, name, verify)), name)


def decode_mask(data: bytes, name: str, verify: bool = False) -> Image.Image:
    """Decode an index mask (single-channel ``L``/``P``/16-bit PNG; palette indices are kept, not colours)."""
    image = _load(data, name, verify)
    if image.mode not in MASK_MODES:
        raise BadImageError.for_file(name, f"a mask must be a single-channel index image (L, P or 16-bit), got "
                                           f"mode {image.mode!r}")
    if image.mode != "L" and image.mode != "P":
        array = np.asarray(image, dtype=np.int64)
        if array.min() < 0 or array.max() > 255:
            raise BadImageError.for_file(name, "mask class indices must be in [0, 255]")
        image = Image.fromarray(array.astype(np.uint8), "L")
    return image


def validate_bytes(data: bytes, name: str, kind: str = "image", full: bool = True) -> None:
    """Check that ``data`` is a usable image (``kind="image"``) or mask. ``full=False`` only runs the fast
    ``Image.verify()`` structure check and the pixel-mode check (it misses truncated files)."""
    if kind not in ("image", "mask"):
        raise ValueError(f"kind must be 'image' or 'mask', got {kind!r}")
    if full:
        (decode_mask if kind == "mask" else decode_rgb)(data, name, verify=True)
        return
    image = _open(data, name)
    try:
        image.verify()
    except Exception as error:
        raise BadImageError.for_file(name, _failure(error)) from None
    supported = MASK_MODES if kind == "mask" else _DIRECT_RGB | _ALPHA_MODES | _WIDE_GRAY | {"P"}
    if image.mode not in supported:
        what = "a mask" if kind == "mask" else "an image"
        raise BadImageError.for_file(name, f"unsupported pixel mode {image.mode!r} for {what}")


def center_square(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred square box ``(left, top, right, bottom)`` inside an image of ``size`` (w, h)."""
    width, height = size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def fit(image: Image.Image, resolution: int, crop: bool, resample: Image.Resampling) -> Image.Image:
    """Optionally centre-crop to a square, then resize to ``resolution`` x ``resolution`` (no-op if already)."""
    if crop and image.width != image.height:
        image = image.crop(center_square(image.size))
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), resample)
    return image


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB Pillow image -> float32 [3, H, W] in [-1, 1]."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def mask_to_tensor(mask: Image.Image) -> torch.Tensor:
    """Index mask Pillow image -> int64 [H, W]."""
    return torch.from_numpy(np.asarray(mask, dtype=np.uint8).astype(np.int64))
