"""Classical codec baselines (JPEG, WebP, AVIF, HEIC): round trips, byte counts and lowest-rate settings."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_lightning.codec import classical
from stylegan_lightning.codec.classical import (
    CLASSICAL_CODECS,
    LOWEST_QUALITY,
    QUALITY_RANGE,
    available_classical_codecs,
    classical_round_trip,
    decode_classical,
    encode_classical,
)
from stylegan_lightning.data.imaging import image_to_tensor

FACE = Path(__file__).resolve().parents[1] / "data" / "samples" / "ffhq" / "00000.jpg"


def _require(codec: str) -> None:
    if codec in available_classical_codecs():
        return
    if codec == "heic":
        pytest.skip("HEIC needs pillow-heif, which is not installed (or does not work) here")
    pytest.skip(f"this Pillow build cannot encode/decode {codec}")


def _psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(10 * np.log10(255.0 ** 2 / np.mean((x - y) ** 2)))


@pytest.fixture(scope="module")
def face() -> Image.Image:
    with Image.open(FACE) as image:
        return image.convert("RGB").resize((128, 128), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def smooth() -> Image.Image:
    """Smooth synthetic 64 x 64 image: colour gradients plus a slow sinusoid."""
    y, x = np.mgrid[0:64, 0:64] / 63.0
    rgb = np.stack([x, y, 0.5 + 0.4 * np.sin(2 * np.pi * (x + y) / 2)], axis=-1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB")


def test_codec_names_and_lowest_quality_table():
    assert CLASSICAL_CODECS == ("jpeg", "webp", "avif", "heic")
    assert set(LOWEST_QUALITY) == set(QUALITY_RANGE) == set(CLASSICAL_CODECS)
    for codec, quality in LOWEST_QUALITY.items():
        assert QUALITY_RANGE[codec][0] == quality  # the lowest rate is the bottom of the allowed range
    available = available_classical_codecs()
    assert set(available) <= set(CLASSICAL_CODECS) and "jpeg" in available
    assert available_classical_codecs() is not available_classical_codecs()  # callers get their own list


@pytest.mark.parametrize("codec", CLASSICAL_CODECS)
def test_round_trip_shapes_and_byte_counts(codec, face, smooth):
    _require(codec)
    images = torch.stack([image_to_tensor(face), image_to_tensor(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT))])
    decoded, sizes = classical_round_trip(images, codec)
    assert decoded.shape == images.shape and decoded.dtype == torch.float32
    assert decoded.min() >= -1.0 and decoded.max() <= 1.0
    assert sizes == [len(encode_classical(classical.tensor_to_pil(image), codec)) for image in images]
    assert all(size > 0 for size in sizes)
    # the decoded tensors are exactly the decoded files (v / 127.5 - 1)
    expected = image_to_tensor(decode_classical(encode_classical(face, codec), codec))
    torch.testing.assert_close(decoded[0], expected, rtol=0, atol=0)
    # float64 input outside [-1, 1] is clamped, output is float32
    wide = image_to_tensor(smooth)[None].double() * 1.5
    out, (size,) = classical_round_trip(wide, codec, quality=90)
    assert out.dtype == torch.float32 and out.shape == (1, 3, 64, 64)
    assert size == len(encode_classical(classical.tensor_to_pil(wide[0]), codec, 90))


@pytest.mark.parametrize("codec", CLASSICAL_CODECS)
def test_lowest_quality_is_smallest_and_worst(codec, face, smooth):
    _require(codec)
    for image in (face, smooth):
        lowest = encode_classical(image, codec)
        assert lowest == encode_classical(image, codec, LOWEST_QUALITY[codec])
        high = encode_classical(image, codec, 90)
        assert len(lowest) < len(high)
        psnr_low = _psnr(image, decode_classical(lowest, codec))
        psnr_high = _psnr(image, decode_classical(high, codec))
        assert psnr_high > psnr_low
        assert psnr_high > 25.0
        assert decode_classical(lowest, codec).size == image.size


@pytest.mark.parametrize("codec", CLASSICAL_CODECS)
def test_lowest_quality_is_minimum_of_sweep(codec, face):
    _require(codec)
    low, high = QUALITY_RANGE[codec]
    sweep = sorted({low, low + 1, low + 2, 5, 10, 25, 50, 75, high})
    sizes = {quality: len(encode_classical(face, codec, quality)) for quality in sweep}
    assert sizes[LOWEST_QUALITY[codec]] == min(sizes.values()), sizes
    assert sizes[LOWEST_QUALITY[codec]] < sizes[50] < sizes[high]


@pytest.mark.parametrize("codec", CLASSICAL_CODECS)
def test_no_metadata_is_written(codec, smooth):
    _require(codec)
    tagged = smooth.copy()
    exif = Image.Exif()
    exif[0x010E] = "a long image description that would cost bytes " * 4
    tagged.info["exif"] = exif.tobytes()
    tagged.info["icc_profile"] = b"\0" * 512
    tagged.info["xmp"] = b"<x:xmpmeta>" + b" " * 256 + b"</x:xmpmeta>"
    assert encode_classical(tagged, codec, 50) == encode_classical(smooth, codec, 50)


def test_decoded_files_are_the_named_format(smooth):
    data = encode_classical(smooth, "jpeg", 50)
    assert data[:2] == b"\xff\xd8"
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and not image.info.get("exif") and not image.info.get("icc_profile")
    if "webp" in available_classical_codecs():
        assert encode_classical(smooth, "webp")[8:12] == b"WEBP"
        with pytest.raises(Exception):
            decode_classical(data, "webp")  # JPEG bytes are not silently decoded as WebP


def test_unknown_and_unavailable_codecs_raise(smooth, monkeypatch):
    images = image_to_tensor(smooth)[None]
    for call in (lambda: encode_classical(smooth, "jpeg2000"), lambda: decode_classical(b"", "bpg"),
                 lambda: classical_round_trip(images, "png")):
        with pytest.raises(ValueError, match="available"):
            call()
    with pytest.raises(ValueError, match="'jpeg2000'.*jpeg"):
        encode_classical(smooth, "jpeg2000")
    monkeypatch.setattr(classical, "_available", lambda: ("jpeg",))
    with pytest.raises(ValueError, match=r"'heic' is not available.*available codecs: jpeg"):
        encode_classical(smooth, "heic")
    with pytest.raises(ValueError, match="'webp' is not available"):
        classical_round_trip(images, "webp")


def test_bad_arguments_raise(smooth):
    with pytest.raises(ValueError, match="quality"):
        encode_classical(smooth, "jpeg", 0)
    with pytest.raises(ValueError, match="quality"):
        encode_classical(smooth, "jpeg", 101)
    with pytest.raises(ValueError, match="RGB"):
        encode_classical(smooth.convert("L"), "jpeg")
    with pytest.raises(ValueError, match="subsampling"):
        encode_classical(smooth, "jpeg", subsampling="4:1:1")
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        classical_round_trip(torch.zeros(3, 8, 8), "jpeg")
    if "webp" in available_classical_codecs():
        with pytest.raises(ValueError, match="subsampling"):
            encode_classical(smooth, "webp", subsampling="4:4:4")


def test_chroma_subsampling_option(smooth):
    # 4:4:4 keeps full-resolution chroma: more bytes than the 4:2:0 default at the same quality
    assert len(encode_classical(smooth, "jpeg", 90, subsampling="4:4:4")) > len(encode_classical(smooth, "jpeg", 90))


def test_heic_unavailable_without_pillow_heif(monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # makes `import pillow_heif` raise ImportError
    assert classical._import_pillow_heif() is None
    assert "heic" not in classical._available.__wrapped__()
    assert "jpeg" in classical._available.__wrapped__()
