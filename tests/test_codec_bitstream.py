"""The codec's file format: header layout, varints, CRCs, scalable truncation, every kind of damage raising
BitstreamError (and nothing else), and images <-> streams with a real codec."""

from __future__ import annotations

import binascii
import random
import struct

import pytest
import torch

from stylegan_lightning.codec import (
    BitstreamError,
    CodecStream,
    LayerStrings,
    ScalableFaceCodec,
    check_stream,
    compress_images,
    decompress_stream,
    read_stream,
    write_stream,
)
from stylegan_lightning.codec.bitstream import FORMAT_VERSION, MAGIC
from stylegan_lightning.utils.images import resize_images
from model_helpers import tiny_codec  # noqa: E402  (test helper beside this file)

SIZE = 32
FINGERPRINT = bytes(range(1, 9))

pytestmark = pytest.mark.usefixtures("single_thread")


# ---------------------------------------------------------------------------------------------- helpers
def crc(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value >> 7 else 0))
        value >>= 7
        if not value:
            return bytes(out)


def hand_stream() -> CodecStream:
    layers = LayerStrings([b"h1h1", b"H2", bytes(range(130))], [bytes(200 * [7]), b"s2s2s2", b"\xff\x00s3"])
    return CodecStream(FINGERPRINT, resolution=1024, height=720, width=1280, total_layers=3, layers=layers)


def header_length(stream: CodecStream) -> int:
    fields = sum(len(varint(len(h))) + len(varint(len(s))) + 2
                 for h, s in zip(stream.layers.hyper, stream.layers.symbols))
    return 21 + fields + 2


def layer_end(stream: CodecStream, layer: int) -> int:
    """Offset right after layer ``layer``'s payload in ``stream.to_bytes()``."""
    return header_length(stream) + sum(len(stream.layers.hyper[k]) + len(stream.layers.symbols[k])
                                       for k in range(layer))


def assert_same(a: CodecStream, b: CodecStream) -> None:
    assert (a.fingerprint, a.resolution, a.height, a.width, a.total_layers) == \
        (b.fingerprint, b.resolution, b.height, b.width, b.total_layers)
    assert a.layers.hyper == b.layers.hyper and a.layers.symbols == b.layers.symbols


def coding_codec(seed: int = 0) -> ScalableFaceCodec:
    """A perturbed tiny codec (non-trivial symbols, means and scales) with its CDF tables built."""
    codec = tiny_codec(seed, perturb=True)
    codec.update(force=True)
    return codec


def random_images(n: int, size: int = SIZE, seed: int = 7) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def codec():
    return coding_codec(0)


@pytest.fixture(scope="module")
def real_stream(codec):
    return compress_images(codec, random_images(1, seed=3))[0]


# ---------------------------------------------------------------------------------------------- format
def test_round_trip_of_a_hand_built_stream():
    stream = hand_stream()
    data = stream.to_bytes()
    parsed = CodecStream.from_bytes(data)
    assert_same(parsed, stream)
    assert parsed.n_layers == 3 and parsed.to_bytes() == data
    assert CodecStream.from_bytes(bytearray(data)).to_bytes() == data
    assert parsed.layer_payload(2) == b"H2s2s2s2"
    assert len(data) == header_length(stream) + sum(map(len, stream.layers.hyper + stream.layers.symbols))


def test_header_layout():
    stream = hand_stream()
    data = stream.to_bytes()
    assert data[0:4] == b"SGLC" == MAGIC
    assert data[4] == 2 == FORMAT_VERSION
    assert data[5:13] == FINGERPRINT
    assert struct.unpack(">HHH", data[13:19]) == (1024, 720, 1280)
    assert data[13:15] == b"\x04\x00"
    assert data[19] == 3 and data[20] == 3
    offset = 21
    for h, s in zip(stream.layers.hyper, stream.layers.symbols):
        for length in (len(h), len(s)):
            encoded = varint(length)
            assert data[offset:offset + len(encoded)] == encoded
            offset += len(encoded)
        assert struct.unpack(">H", data[offset:offset + 2])[0] == crc(h + s)
        offset += 2
    assert struct.unpack(">H", data[offset:offset + 2])[0] == crc(data[:offset])
    offset += 2
    assert offset == header_length(stream)
    assert data[offset:] == b"".join(h + s for h, s in zip(stream.layers.hyper, stream.layers.symbols))


def test_varint_lengths():
    stream = hand_stream()
    data = stream.to_bytes()
    # layer 1: hyper 4 bytes (one varint byte), symbols 200 bytes = 0b1_1001000 -> 0xC8 0x01
    assert data[21] == 4
    assert data[22:24] == b"\xc8\x01"
    # layer 3: hyper 130 bytes -> 0x82 0x01
    assert varint(130) == b"\x82\x01"
    assert b"\x82\x01" in data[21:header_length(stream)]
    assert varint(127) == b"\x7f" and varint(128) == b"\x80\x01" and varint(300) == b"\xac\x02"
    big = CodecStream(FINGERPRINT, 32, 32, 32, 1, LayerStrings([bytes(5)], [bytes(20000)]))
    data = big.to_bytes()
    assert data[22:25] == varint(20000) == b"\xa0\x9c\x01"
    assert_same(CodecStream.from_bytes(data), big)


def test_truncation_at_a_layer_boundary():
    stream = hand_stream()
    data = stream.to_bytes()
    for k in (1, 2):
        cut = CodecStream.from_bytes(data[:layer_end(stream, k)])
        assert cut.n_layers == k and cut.total_layers == 3
        assert cut.layers.hyper == stream.layers.hyper[:k] and cut.layers.symbols == stream.layers.symbols[:k]
        assert (cut.fingerprint, cut.resolution, cut.height, cut.width) == (FINGERPRINT, 1024, 720, 1280)
        proper = stream.truncate(k)
        assert proper.n_layers == k and proper.total_layers == 3
        assert_same(CodecStream.from_bytes(proper.to_bytes()), cut)
        assert len(proper.to_bytes()) < layer_end(stream, k)  # its header lists k layers only
    assert layer_end(stream, 3) == len(data)
    sizes = stream.sizes()
    assert sizes == [len(stream.truncate(k).to_bytes()) for k in (1, 2, 3)]
    assert sizes[-1] == len(data) and sizes[0] < sizes[1] < sizes[2]
    assert sizes[0] == 21 + 1 + 2 + 2 + 2 + 4 + 200
    assert stream.truncate(2).sizes() == sizes[:2]
    for bad in (0, 4):
        with pytest.raises(ValueError):
            stream.truncate(bad)


def test_cuts_inside_a_layer_or_the_header():
    stream = hand_stream()
    data = stream.to_bytes()
    start2 = layer_end(stream, 1)
    for end in (start2 + 1, start2 + 2, layer_end(stream, 2) - 1, len(data) - 1, header_length(stream) + 5):
        with pytest.raises(BitstreamError, match="truncated"):
            CodecStream.from_bytes(data[:end])
    for end in (0, 2, 4, 12, 20, 21, 23, header_length(stream) - 1, header_length(stream)):
        with pytest.raises(BitstreamError):
            CodecStream.from_bytes(data[:end])


def test_damaged_streams():
    stream = hand_stream()
    data = stream.to_bytes()
    with pytest.raises(BitstreamError, match="magic"):
        CodecStream.from_bytes(b"SGLD" + data[4:])
    with pytest.raises(BitstreamError, match="magic"):
        CodecStream.from_bytes(b"")
    with pytest.raises(BitstreamError):
        CodecStream.from_bytes(b"SGL")
    with pytest.raises(BitstreamError, match="version 3 is not supported"):
        CodecStream.from_bytes(data[:4] + b"\x03" + data[5:])
    with pytest.raises(BitstreamError, match="version 1 is no longer decoded .*re-encode") as refused:
        CodecStream.from_bytes(data[:4] + b"\x01" + data[5:])  # streams written before the cross-device rule
    assert "\n" not in str(refused.value)
    for index in [*range(5, 21), 22, header_length(stream) - 3, header_length(stream) - 1]:
        damaged = bytearray(data)
        damaged[index] ^= 0x01
        with pytest.raises(BitstreamError):
            CodecStream.from_bytes(bytes(damaged))
    for index in (5, 13, 16, 19, 20):  # fixed fields: only the CRC can tell
        damaged = bytearray(data)
        damaged[index] ^= 0x40
        with pytest.raises(BitstreamError, match="checksum"):
            CodecStream.from_bytes(bytes(damaged))
    for layer in (1, 2, 3):
        for position in (layer_end(stream, layer - 1) if layer > 1 else header_length(stream),
                         layer_end(stream, layer) - 1):
            damaged = bytearray(data)
            damaged[position] ^= 0x10
            with pytest.raises(BitstreamError, match=f"layer {layer} is damaged"):
                CodecStream.from_bytes(bytes(damaged))
    for extra in (b"\x00", b"junk", data[-10:]):
        with pytest.raises(BitstreamError, match="unexpected bytes"):
            CodecStream.from_bytes(data + extra)
    # a header that is consistent (valid CRC) but describes an impossible stream
    fixed = struct.pack(">4sB8sHHHBB", MAGIC, FORMAT_VERSION, FINGERPRINT, 32, 32, 32, 2, 3)
    header = fixed + b"".join(varint(1) + varint(1) + struct.pack(">H", crc(b"ab")) for _ in range(3))
    header += struct.pack(">H", crc(header))
    with pytest.raises(BitstreamError, match="3 of 2 layers"):
        CodecStream.from_bytes(header + b"ab" * 3)
    fixed = struct.pack(">4sB8sHHHBB", MAGIC, FORMAT_VERSION, FINGERPRINT, 32, 0, 32, 1, 1)
    header = fixed + varint(1) + varint(1) + struct.pack(">H", crc(b"ab"))
    header += struct.pack(">H", crc(header))
    with pytest.raises(BitstreamError, match="size 0x32"):
        CodecStream.from_bytes(header + b"ab")


def test_overlong_varint_is_an_error():
    fixed = struct.pack(">4sB8sHHHBB", MAGIC, FORMAT_VERSION, FINGERPRINT, 32, 32, 32, 1, 1)
    with pytest.raises(BitstreamError, match="too long"):
        CodecStream.from_bytes(fixed + b"\xff" * 12)
    with pytest.raises(BitstreamError):
        CodecStream.from_bytes(fixed + b"\xff\xff")


def test_empty_last_layer_round_trips():
    """BUG (format edge case): from_bytes takes "the data ends exactly where layer k starts" as a cut at a layer
    boundary, so a stream whose last layer has an empty payload (accepted by CodecStream and written by to_bytes)
    parses back with one layer less."""
    try:
        stream = CodecStream(FINGERPRINT, 32, 32, 32, 2, LayerStrings([b"a", b""], [b"b", b""]))
    except ValueError:
        return  # refusing empty layer payloads up front would be a fix as well
    parsed = CodecStream.from_bytes(stream.to_bytes())
    assert parsed.n_layers == 2
    assert_same(parsed, stream)


def test_stream_field_checks():
    layers = LayerStrings([b"a"], [b"b"])
    with pytest.raises(ValueError):
        CodecStream(b"short", 32, 32, 32, 1, layers)
    with pytest.raises(ValueError):
        CodecStream(FINGERPRINT, 32, 32, 32, 0, layers)
    with pytest.raises(ValueError):
        CodecStream(FINGERPRINT, 32, 32, 32, 1, LayerStrings([b"a", b"b"], [b"c", b"d"]))
    with pytest.raises(ValueError):
        CodecStream(FINGERPRINT, 65536, 32, 32, 1, layers)
    with pytest.raises(ValueError):
        CodecStream(FINGERPRINT, 32, 0, 32, 1, layers)
    assert issubclass(BitstreamError, ValueError)


def _parse_or_error(data: bytes, original: CodecStream) -> int | None:
    """Layers parsed from ``data`` (checked against ``original``), or None for a BitstreamError; any other
    exception propagates and fails the test."""
    try:
        parsed = CodecStream.from_bytes(data)
    except BitstreamError:
        return None
    k = parsed.n_layers
    assert parsed.total_layers == original.total_layers
    assert parsed.fingerprint == original.fingerprint
    assert (parsed.resolution, parsed.height, parsed.width) == (original.resolution, original.height, original.width)
    assert parsed.layers.hyper == original.layers.hyper[:k]  # CRC-checked payloads
    assert parsed.layers.symbols == original.layers.symbols[:k]
    return k


def test_every_truncation_of_a_real_stream(real_stream):
    data = real_stream.to_bytes()
    assert real_stream.n_layers == 3
    header = len(data) - sum(len(real_stream.layer_payload(k)) for k in (1, 2, 3))
    boundaries = {header + sum(len(real_stream.layer_payload(j)) for j in range(1, k + 1)): k for k in (1, 2, 3)}
    for end in range(len(data) + 1):
        assert _parse_or_error(data[:end], real_stream) == boundaries.get(end), end


def test_fuzz_never_raises_anything_but_bitstream_errors(real_stream):
    data = real_stream.to_bytes()
    rng = random.Random(1234)
    outcomes = {"error": 0, "parsed": 0}
    for trial in range(300):
        damaged = bytearray(data)
        kind = trial % 6
        if kind == 0:
            damaged = damaged[:rng.randrange(len(data))]
        elif kind == 1:
            for _ in range(rng.randint(1, 4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        elif kind == 2:
            position = rng.randrange(len(damaged))
            damaged[position] ^= 1 << rng.randrange(8)
        elif kind == 3:
            position = rng.randrange(len(damaged) + 1)
            damaged[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        elif kind == 4:
            position = rng.randrange(len(damaged))
            del damaged[position:position + rng.randint(1, 5)]
        else:
            start = rng.randrange(21, len(damaged))
            damaged = damaged[:start] + bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        layers = _parse_or_error(bytes(damaged), real_stream)
        outcomes["error" if layers is None else "parsed"] += 1
        if layers == real_stream.n_layers:  # all layers present: the bytes must be the original ones
            assert bytes(damaged) == data, trial
    assert outcomes["error"] >= 290, outcomes  # only no-op mutations and cuts at layer boundaries parse


# ---------------------------------------------------------------------------------------------- with a codec
def test_streams_of_a_real_codec(codec):
    images = random_images(2, seed=5)
    streams = compress_images(codec, images)
    strings, _ = codec.compress(images)
    assert len(streams) == 2
    for stream, s in zip(streams, strings):
        assert stream.fingerprint == codec.fingerprint() and stream.total_layers == stream.n_layers == 3
        assert (stream.resolution, stream.height, stream.width) == (SIZE, SIZE, SIZE)
        assert stream.layers.hyper == s.hyper and stream.layers.symbols == s.symbols
        check_stream(codec, stream)
        parsed = CodecStream.from_bytes(stream.to_bytes())
        full = decompress_stream(codec, parsed)
        expected = codec.decode_images(codec.decompress(s)).clamp(-1, 1)
        assert torch.equal(full, expected)
        for k in (1, 2):
            assert torch.equal(decompress_stream(codec, parsed, layers=k),
                               codec.decode_images(codec.decompress(s, layers=k)).clamp(-1, 1))
            assert torch.equal(decompress_stream(codec, parsed.truncate(k)), decompress_stream(codec, parsed, k))
        with pytest.raises(BitstreamError):
            decompress_stream(codec, parsed.truncate(1), layers=2)
        with pytest.raises(BitstreamError):
            decompress_stream(codec, parsed, layers=0)
    one = compress_images(codec, images, layers=1)
    assert [s.n_layers for s in one] == [1, 1] and one[0].layers.hyper == streams[0].layers.hyper[:1]
    with pytest.raises(ValueError):
        compress_images(codec, images, layers=4)


def test_stream_of_another_model_is_refused(codec):
    other = coding_codec(1)
    assert other.fingerprint() != codec.fingerprint()
    stream = compress_images(other, random_images(1, seed=6))[0]
    with pytest.raises(BitstreamError, match="another model"):
        decompress_stream(codec, stream)
    with pytest.raises(BitstreamError, match="another model"):
        check_stream(codec, stream)
    decompress_stream(other, stream)
    # a stream with the right fingerprint but another layout is refused too
    mine = compress_images(codec, random_images(1, seed=6))[0]
    for total, resolution in ((4, SIZE), (3, 64)):
        bad = CodecStream(mine.fingerprint, resolution, SIZE, SIZE, total, mine.layers)
        with pytest.raises(BitstreamError, match="layers at"):
            decompress_stream(codec, bad)


def test_read_and_write_stream(tmp_path, codec, real_stream):
    path = write_stream(tmp_path / "a" / "b" / "face.sglc", real_stream)
    assert path.is_file() and path.read_bytes() == real_stream.to_bytes()
    back = read_stream(path)
    assert_same(back, real_stream)
    assert torch.equal(decompress_stream(codec, back), decompress_stream(codec, real_stream))
    assert_same(read_stream(str(path)), real_stream)
    with pytest.raises(FileNotFoundError):
        read_stream(tmp_path / "missing.sglc")
    damaged = tmp_path / "damaged.sglc"
    damaged.write_bytes(real_stream.to_bytes()[:-3])
    with pytest.raises(BitstreamError, match="damaged.sglc"):
        read_stream(damaged)


def test_decoded_size_follows_the_stream(codec):
    images = random_images(2, size=48, seed=8)
    streams = compress_images(codec, images)
    assert (streams[0].height, streams[0].width, streams[0].resolution) == (48, 48, SIZE)
    decoded = decompress_stream(codec, streams[0])
    assert decoded.shape == (1, 3, 48, 48)
    native = decompress_stream(codec, streams[0], resize=False)
    assert native.shape == (1, 3, SIZE, SIZE)
    assert torch.equal(decoded, resize_images(native, (48, 48)))
    # the encoder sees the image resized to its input size: same streams as coding the resized image
    resized = compress_images(codec, resize_images(images, SIZE))
    assert streams[0].layers.symbols == resized[0].layers.symbols
    wide = compress_images(codec, torch.rand(1, 3, 40, 24) * 2 - 1)[0]
    assert (wide.height, wide.width) == (40, 24)
    assert decompress_stream(codec, CodecStream.from_bytes(wide.to_bytes())).shape == (1, 3, 40, 24)


def test_compress_images_rejects_bad_input(codec):
    images = random_images(2)
    images[1, 0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        compress_images(codec, images)
    images[1, 0, 3, 4] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        compress_images(codec, images)
    for bad in (torch.zeros(3, SIZE, SIZE), torch.zeros(1, 1, SIZE, SIZE), torch.zeros(1, 4, SIZE, SIZE),
                torch.zeros(1, 1, 3, SIZE, SIZE), random_images(1).numpy()):
        with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
            compress_images(codec, bad)
