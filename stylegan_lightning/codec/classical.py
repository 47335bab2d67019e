"""Classical image codecs (JPEG, WebP, AVIF, HEVC-intra/HEIC) as rate-distortion baselines.

The learned codec is compared against these standard codecs at their *lowest* rates on the same faces. This
module encodes and decodes 8-bit RGB images with each codec, in memory, and reports the exact number of bytes
each image takes:

- JPEG, WebP and AVIF go through Pillow (which ships libjpeg-turbo, libwebp and libavif); HEIC goes through
  ``pillow_heif`` (libheif with the x265 HEVC encoder), imported lazily, so everything else works when it is
  not installed (HEIC is then simply reported unavailable).
- Only the image itself is written: the encoder input is a fresh RGB image without ``info``, so no EXIF, XMP or
  ICC profile is ever embedded. The codecs' own mandatory container headers are kept (JPEG's JFIF APP0 segment,
  WebP's RIFF header, the HEIF/AVIF boxes, including the ~20-byte ``nclx`` colour box that says how to turn the
  YCbCr planes back into RGB), so the files stay standard and decode anywhere.
- Chroma is subsampled 4:2:0 by default for every codec (WebP's lossy mode only supports 4:2:0).
- Encoder effort is fixed (:data:`ENCODER_SETTINGS`): JPEG baseline with optimised Huffman tables (about half
  the bytes of the default tables at the lowest quality), WebP ``method=6`` (slowest, smallest), AVIF with
  libaom at Pillow's default ``speed=6``, HEIC with libheif's x265 defaults.

:data:`LOWEST_QUALITY` holds the quality setting of each codec that gives its smallest files; it was checked
by sweeping every allowed quality (:data:`QUALITY_RANGE`) on 256 x 256 FFHQ/CelebA-HQ faces. Lower quality
settings than these either do not exist or produce the same bytes (libjpeg clamps 0 to 1; libavif maps 0-2 to
the same quantiser).
"""

from __future__ import annotations

import functools
import io

import numpy as np
import torch
from PIL import Image

from ..data.imaging import image_to_tensor
from ..utils.images import tensor_to_pil
from ..utils.timing import Timer

CLASSICAL_CODECS: tuple[str, ...] = ("jpeg", "webp", "avif", "heic")
"""Every classical codec this module knows (see :func:`available_classical_codecs` for what works here)."""

LOWEST_QUALITY: dict[str, int] = {"jpeg": 1, "webp": 0, "avif": 0, "heic": 0}
"""Quality setting giving each codec's lowest rate (smallest file over :data:`QUALITY_RANGE`)."""

QUALITY_RANGE: dict[str, tuple[int, int]] = {"jpeg": (1, 100), "webp": (0, 100), "avif": (0, 100), "heic": (0, 100)}
"""Allowed quality settings per codec, inclusive (higher is better quality and more bytes)."""

SUBSAMPLINGS: dict[str, tuple[str, ...]] = {
    "jpeg": ("4:2:0", "4:2:2", "4:4:4"),
    "webp": ("4:2:0",),
    "avif": ("4:2:0", "4:2:2", "4:4:4"),
    "heic": ("4:2:0", "4:2:2", "4:4:4"),
}
"""Chroma subsamplings each codec can be asked for (lossy WebP is always 4:2:0)."""

ENCODER_SETTINGS: dict[str, dict[str, object]] = {
    "jpeg": {"optimize": True, "progressive": False},
    "webp": {"method": 6},
    "avif": {"speed": 6, "codec": "auto"},
    "heic": {},
}
"""Fixed encoder options besides quality and chroma subsampling (effort, entropy coding)."""

_PILLOW_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}


def _import_pillow_heif():
    """``pillow_heif`` or ``None`` when it is not installed (or fails to load)."""
    try:
        import pillow_heif
    except Exception:  # ImportError, or a broken binary wheel
        return None
    return pillow_heif


def _check_codec(codec: str) -> str:
    if codec not in CLASSICAL_CODECS:
        raise ValueError(f"unknown classical codec {codec!r}; known codecs: {', '.join(CLASSICAL_CODECS)} "
                         f"(available here: {', '.join(available_classical_codecs()) or 'none'})")
    if codec not in _available():
        reason = " (pillow-heif is not installed)" if codec == "heic" and _import_pillow_heif() is None else ""
        raise ValueError(f"classical codec {codec!r} is not available on this install{reason}; available codecs: "
                         f"{', '.join(available_classical_codecs()) or 'none'}")
    return codec


def _encode(image: Image.Image, codec: str, quality: int, subsampling: str) -> bytes:
    buffer = io.BytesIO()
    if codec == "heic":
        pillow_heif = _import_pillow_heif()
        if pillow_heif is None:
            raise RuntimeError("pillow-heif is not installed")
        pillow_heif.from_pillow(image).save(buffer, quality=quality, chroma=subsampling.replace(":", ""),
                                            exif=None, xmp=None, **ENCODER_SETTINGS["heic"])
    elif codec == "jpeg":
        # Pillow's JPEG subsampling codes: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
        code = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}[subsampling]
        image.save(buffer, format="JPEG", quality=quality, subsampling=code, **ENCODER_SETTINGS["jpeg"])
    elif codec == "webp":
        image.save(buffer, format="WEBP", quality=quality, lossless=False, **ENCODER_SETTINGS["webp"])
    else:
        image.save(buffer, format="AVIF", quality=quality, subsampling=subsampling, **ENCODER_SETTINGS["avif"])
    return buffer.getvalue()


def _decode(data: bytes, codec: str) -> Image.Image:
    if codec == "heic":
        pillow_heif = _import_pillow_heif()
        if pillow_heif is None:
            raise RuntimeError("pillow-heif is not installed")
        image = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True).to_pillow()
    else:
        image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[codec]])
        image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


@functools.lru_cache(maxsize=None)
def _available() -> tuple[str, ...]:
    """Codecs that encode and decode a small test image here (probed once per process)."""
    ramp = np.linspace(0, 255, 16 * 16 * 3).reshape(16, 16, 3)
    probe = Image.fromarray(ramp.round().astype(np.uint8), "RGB")
    working = []
    for codec in CLASSICAL_CODECS:
        try:
            decoded = _decode(_encode(probe, codec, 90, "4:2:0"), codec)
        except Exception:  # missing library or plugin, codec compiled out, broken encoder ...
            continue
        if decoded.size == probe.size and decoded.mode == "RGB":
            working.append(codec)
    return tuple(working)


def available_classical_codecs() -> list[str]:
    """Names (from :data:`CLASSICAL_CODECS`) of the codecs that really encode and decode on this install.

    Each codec is probed once per process by a round trip of a small image; the result is cached."""
    return list(_available())


def encode_classical(image: Image.Image, codec: str, quality: int | None = None, *,
                     subsampling: str = "4:2:0") -> bytes:
    """Compress an RGB Pillow ``image`` with ``codec`` and return the file's bytes.

    Args:
        image: an 8-bit ``RGB`` image (other modes raise :class:`ValueError`).
        codec: one of :data:`CLASSICAL_CODECS` that is in :func:`available_classical_codecs`.
        quality: the codec's quality setting within :data:`QUALITY_RANGE` (higher = better, more bytes);
            ``None`` uses :data:`LOWEST_QUALITY`, the codec's lowest rate.
        subsampling: chroma subsampling, ``"4:2:0"`` (default, for every codec), ``"4:2:2"`` or ``"4:4:4"``
            where the codec supports it (:data:`SUBSAMPLINGS`; lossy WebP only has 4:2:0).

    No EXIF, XMP or ICC profile is written (the image is copied into a fresh one without ``info``), so
    ``len()`` of the result measures the image plus the codec's minimal container header only.

    Raises:
        ValueError: unknown or unavailable codec, quality out of range, unsupported subsampling, non-RGB image.
    """
    _check_codec(codec)
    if not isinstance(image, Image.Image):
        raise ValueError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode!r}")
    if quality is None:
        quality = LOWEST_QUALITY[codec]
    low, high = QUALITY_RANGE[codec]
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not low <= quality <= high:
        raise ValueError(f"quality for {codec!r} must be an integer in [{low}, {high}], got {quality!r}")
    if subsampling not in SUBSAMPLINGS[codec]:
        raise ValueError(f"subsampling {subsampling!r} is not supported by {codec!r}; "
                         f"choose from {', '.join(SUBSAMPLINGS[codec])}")
    clean = Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB")  # drops info: no EXIF/ICC/XMP carried over
    return _encode(clean, codec, int(quality), subsampling)


def decode_classical(data: bytes, codec: str) -> Image.Image:
    """Decode ``data`` written by :func:`encode_classical` with ``codec`` into an 8-bit RGB Pillow image.

    Only that codec's decoder is tried (JPEG bytes passed as ``"webp"`` fail rather than silently decode).

    Raises:
        ValueError: unknown or unavailable codec.
    """
    _check_codec(codec)
    return _decode(bytes(data), codec)


def classical_round_trip(images: torch.Tensor, codec: str, quality: int | None = None, *,
                         subsampling: str = "4:2:0",
                         seconds: list[float] | None = None) -> tuple[torch.Tensor, list[int]]:
    """Compress and decompress a batch of images with a classical codec.

    Args:
        images: ``[B, 3, H, W]`` float images in [-1, 1]; each is quantised to 8 bits as
            ``round((x + 1) / 2 * 255)`` after clamping to [-1, 1] before encoding.
        codec, quality, subsampling: as in :func:`encode_classical` (``quality=None`` is the lowest rate).
        seconds: when given, ``[encode, decode]`` seconds to add this batch's encoding and decoding times to.

    Returns:
        The decoded images (float32 ``[B, 3, H, W]`` in [-1, 1], ``v / 127.5 - 1``, on the input's device) and
        the number of bytes of each image's file (``bits per pixel = 8 * bytes / (H * W)``).
    """
    _check_codec(codec)
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected [B, 3, H, W] images, got {tuple(images.shape)}")
    decoded, sizes = [], []
    encode, decode = Timer(), Timer()
    for image in images:
        with encode:
            data = encode_classical(tensor_to_pil(image), codec, quality, subsampling=subsampling)
        with decode:
            decoded.append(image_to_tensor(decode_classical(data, codec)))
        sizes.append(len(data))
        if seconds is not None:
            seconds[0] += encode.seconds
            seconds[1] += decode.seconds
    if not decoded:
        return images.detach().to(torch.float32).clone(), sizes
    return torch.stack(decoded).to(images.device), sizes
