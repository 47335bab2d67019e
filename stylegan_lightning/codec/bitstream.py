"""The codec's file format (version 2): a small header, then each layer's payload in transmission order.

All integers are big-endian; lengths are unsigned LEB128 varints (1 byte below 128)::

    offset  size  field
    0       4     magic b"SGLC"
    4       1     format version (2)
    5       8     model fingerprint (:meth:`ScalableFaceCodec.fingerprint`; a different model refuses the stream)
    13      2     resolution of the generator that decodes it (u16)
    15      2     image height (u16; the decoded image is resized to height x width when it differs)
    17      2     image width (u16)
    19      1     number of layers of the model K
    20      1     number of layers in this stream k (1..K)
    21      ...   per layer: varint hyper-latent length, varint symbol length, u16 CRC-16 of the layer's payload
    ...     2     u16 CRC-16 of every header byte before it
    ...           payloads: hyper_1 symbols_1 hyper_2 symbols_2 ... (layer payload = hyper_k + symbols_k)

Bounds: height and width must each be at most ``MAX_OUTPUT_SCALE`` (4) times the resolution field, and the
resolution field must equal the decoding model's generator resolution (checked by
:func:`~.coding.check_stream`), so a forged header cannot ask for a huge image: every stream is refused with
:class:`BitstreamError` before anything is decoded or allocated. Writers refuse such streams as well.

Versions: 2 (current) codes every symbol with the CDF and mean chosen by the cross-device procedure of
:mod:`.model` (float64 entropy-parameter network on exact inputs, means on the ``1 / mean_grid`` grid); 1 chose
them in the model's own dtype and device and is refused with one line (re-encode the image).

Scalability: a stream cut right after layer j's payload (j < k) still decodes layers 1..j; :meth:`CodecStream
.truncate` writes a proper j-layer stream. Anything else wrong -- wrong magic or version, a damaged header, a
payload cut inside a layer, damaged payload bytes (CRC-16 / CCITT, ``binascii.crc_hqx``), an image size above the
bound -- raises
:class:`BitstreamError`, before any entropy decoding.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from pathlib import Path

from ..utils.bounds import check_size


@dataclass
class LayerStrings:
    """The entropy-coded payload of one image: per layer, the hyper-latent string and the symbol string."""

    hyper: list[bytes]
    symbols: list[bytes]

    def __len__(self) -> int:
        return len(self.hyper)


MAGIC = b"SGLC"
FORMAT_VERSION = 2
RETIRED_VERSIONS = {1: "its entropy parameters were chosen in the sender's float precision, which another device may "
                       "not reproduce; re-encode the image"}
SUFFIX = ".sglc"
_FIXED = struct.Struct(">4sB8sHHHBB")
MAX_OUTPUT_SCALE = 4  # a stream's height and width are at most this many times its generator resolution


class BitstreamError(ValueError):
    """A codec stream that cannot be decoded (see :mod:`.bitstream` for the cases)."""


def check_image_size(resolution: int, height: int, width: int) -> None:
    """Raise :class:`BitstreamError` unless ``height`` and ``width`` are in 1..``MAX_OUTPUT_SCALE * resolution``."""
    check_size(resolution, "the stream's generator resolution", 0xFFFF, BitstreamError)
    limit = MAX_OUTPUT_SCALE * resolution
    for name, value in (("height", height), ("width", width)):
        check_size(value, f"image {name} (at most {MAX_OUTPUT_SCALE} x the {resolution} px generator resolution)",
                   limit, BitstreamError)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT of ``data``."""
    return binascii.crc_hqx(data, 0xFFFF)


def _write_varint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"varints are unsigned, got {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if offset >= len(data):
            raise BitstreamError("the stream ends inside its header (a length field is cut)")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 35:
            raise BitstreamError("damaged header: a length field is too long")


@dataclass
class CodecStream:
    """One coded image: header fields plus the per-layer strings (``layers`` holds the k layers present)."""

    fingerprint: bytes
    resolution: int
    height: int
    width: int
    total_layers: int
    layers: LayerStrings

    def __post_init__(self) -> None:
        if len(self.fingerprint) != 8:
            raise ValueError(f"the model fingerprint must be 8 bytes, got {len(self.fingerprint)}")
        if not 1 <= len(self.layers) <= self.total_layers <= 255:
            raise ValueError(f"a stream holds 1..{self.total_layers} layers, got {len(self.layers)}")
        if any(not h and not y for h, y in zip(self.layers.hyper, self.layers.symbols)):
            raise ValueError("every layer of a stream needs a non-empty payload")
        check_image_size(self.resolution, self.height, self.width)

    @property
    def n_layers(self) -> int:
        """Layers present in this stream."""
        return len(self.layers)

    def bits_per_pixel(self, num_bytes: int) -> float:
        """``num_bytes`` (of this stream, a prefix of it, or another file of the same image) in bits per pixel of
        the image this stream codes."""
        return 8.0 * num_bytes / (self.height * self.width)

    def layer_payload(self, layer: int) -> bytes:
        return self.layers.hyper[layer - 1] + self.layers.symbols[layer - 1]

    def to_bytes(self) -> bytes:
        """The file's bytes."""
        header = bytearray(_FIXED.pack(MAGIC, FORMAT_VERSION, self.fingerprint, self.resolution, self.height,
                                       self.width, self.total_layers, self.n_layers))
        for layer in range(1, self.n_layers + 1):
            header += _write_varint(len(self.layers.hyper[layer - 1]))
            header += _write_varint(len(self.layers.symbols[layer - 1]))
            header += struct.pack(">H", crc16(self.layer_payload(layer)))
        header += struct.pack(">H", crc16(bytes(header)))
        return bytes(header) + b"".join(self.layer_payload(k) for k in range(1, self.n_layers + 1))

    def truncate(self, layers: int) -> "CodecStream":
        """The same image with layers 1..``layers`` only (what a sender transmits for a k-layer receiver)."""
        if not 1 <= layers <= self.n_layers:
            raise ValueError(f"can keep 1..{self.n_layers} layers, got {layers}")
        kept = LayerStrings(self.layers.hyper[:layers], self.layers.symbols[:layers])
        return CodecStream(self.fingerprint, self.resolution, self.height, self.width, self.total_layers, kept)

    def sizes(self) -> list[int]:
        """File size in bytes of the stream truncated to 1, 2, ..., k layers (header included)."""
        return [len(self.truncate(k).to_bytes()) for k in range(1, self.n_layers + 1)]

    @classmethod
    def from_bytes(cls, data: bytes) -> "CodecStream":
        """Parse and check a stream (see the module docstring for what raises :class:`BitstreamError`)."""
        data = bytes(data)
        if len(data) < len(MAGIC) or data[:4] != MAGIC:
            raise BitstreamError(f"not a stylegan-lightning codec stream (magic {data[:4]!r}, expected {MAGIC!r})")
        if len(data) < _FIXED.size:
            raise BitstreamError(f"the stream ends inside its header ({len(data)} bytes)")
        magic, version, fingerprint, resolution, height, width, total, count = _FIXED.unpack_from(data)
        if version in RETIRED_VERSIONS:
            raise BitstreamError(f"codec stream format version {version} is no longer decoded (this toolkit reads "
                                 f"version {FORMAT_VERSION}): {RETIRED_VERSIONS[version]}")
        if version != FORMAT_VERSION:
            raise BitstreamError(f"codec stream format version {version} is not supported (this toolkit reads "
                                 f"version {FORMAT_VERSION})")
        offset = _FIXED.size
        entries = []
        for _ in range(count):
            hyper_length, offset = _read_varint(data, offset)
            symbol_length, offset = _read_varint(data, offset)
            if offset + 2 > len(data):
                raise BitstreamError("the stream ends inside its header")
            entries.append((hyper_length, symbol_length, struct.unpack_from(">H", data, offset)[0]))
            offset += 2
        if offset + 2 > len(data):
            raise BitstreamError("the stream ends inside its header")
        if struct.unpack_from(">H", data, offset)[0] != crc16(data[:offset]):
            raise BitstreamError("damaged header (checksum mismatch)")
        offset += 2
        if not 1 <= count <= total or min(resolution, height, width) == 0:
            raise BitstreamError(f"damaged header: {count} of {total} layers, resolution {resolution}, "
                                 f"size {height}x{width}")
        check_image_size(resolution, height, width)
        hyper, symbols = [], []
        for layer, (hyper_length, symbol_length, checksum) in enumerate(entries, start=1):
            end = offset + hyper_length + symbol_length
            if offset == len(data) and layer > 1:
                break  # cut at a layer boundary: the layers before decode
            if end > len(data):
                raise BitstreamError(f"the stream is truncated inside layer {layer} ({len(data) - offset} of "
                                     f"{hyper_length + symbol_length} bytes)")
            payload = data[offset:end]
            if crc16(payload) != checksum:
                raise BitstreamError(f"layer {layer} is damaged (checksum mismatch)")
            hyper.append(payload[:hyper_length])
            symbols.append(payload[hyper_length:])
            offset = end
        if offset != len(data):
            raise BitstreamError(f"{len(data) - offset} unexpected bytes after the last layer")
        return cls(fingerprint, resolution, height, width, total, LayerStrings(hyper, symbols))


def write_stream(path: str | Path, stream: CodecStream) -> Path:
    """Write ``stream`` to ``path`` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(stream.to_bytes())
    return path


def read_stream(path: str | Path) -> CodecStream:
    """Read and check a stream file (:class:`BitstreamError` when it cannot be decoded)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codec stream '{path}' does not exist")
    try:
        return CodecStream.from_bytes(path.read_bytes())
    except BitstreamError as error:
        raise BitstreamError(f"'{path}': {error}") from None
