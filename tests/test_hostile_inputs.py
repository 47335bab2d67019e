"""Hostile inputs get bounded resources: forged stream headers, oversized options, model files whose configuration
asks for huge networks, image headers claiming huge sizes, NaN weights and deeply nested pickles are refused with
one clear line, before anything large is allocated or decoded."""

from __future__ import annotations

import binascii
import contextlib
import io
import struct
import zlib

import pytest
import torch

from stylegan_lightning.cli import main
from stylegan_lightning.codec import BitstreamError, CodecStream, load_codec, save_codec
from stylegan_lightning.codec import checkpoints as codec_checkpoints
from stylegan_lightning.codec import tools as codec_tools
from stylegan_lightning.codec.bitstream import FORMAT_VERSION, MAGIC, MAX_OUTPUT_SCALE
from stylegan_lightning.data import FaceImageDataset
from stylegan_lightning.data.errors import BadImageError, DatasetError
from stylegan_lightning.data.imaging import MAX_IMAGE_PIXELS_ENV, decode_rgb
from stylegan_lightning.inversion import read_images
from stylegan_lightning.serialization import CheckpointError, restricted_pickle_load, safe_torch_load
from stylegan_lightning.styleae import StyleAE, load_styleae, save_styleae
from stylegan_lightning.styleae import checkpoints as styleae_checkpoints
from stylegan_lightning.stylegan2 import FrozenGenerator, Generator, load_generator, save_generator
from stylegan_lightning.stylegan2 import checkpoints as generator_checkpoints
from model_helpers import tiny_codec  # noqa: E402  (test helper beside this file)

pytestmark = pytest.mark.usefixtures("single_thread")
SIZE = 32  # tiny_codec's generator resolution


def one_line(error: BaseException | str, *words: str) -> str:
    """The error's message, checked to be one line holding every word of ``words``."""
    text = str(error)
    assert "\n" not in text.strip(), text
    for word in words:
        assert word in text, (word, text)
    return text


def cli(*argv) -> tuple[int, str]:
    """Run the command in-process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, err.getvalue()


class _Recorder:
    """Stands in for a class or function and records the default device of every call (``meta`` = no memory)."""

    def __init__(self, target):
        self.target, self.devices = target, []

    def __call__(self, *args, **kwargs):
        self.devices.append(torch.get_default_device().type)
        return self.target(*args, **kwargs)


@pytest.fixture(scope="module")
def codec_file(tmp_path_factory):
    codec = tiny_codec(0)
    codec.update(force=True)
    return save_codec(tmp_path_factory.mktemp("codec") / "codec.pt", codec), codec.fingerprint()


# ---------------------------------------------------------------------------------------------- 1. codec streams
def forged_stream(fingerprint: bytes, resolution: int, height: int, width: int) -> bytes:
    """A 1-layer stream with the given header fields and valid CRCs (the format and the fingerprint are public)."""
    payload = b"\x01\x02"
    header = struct.pack(">4sB8sHHHBB", MAGIC, FORMAT_VERSION, fingerprint, resolution, height, width, 1, 1)
    header += bytes([1, 1]) + struct.pack(">H", binascii.crc_hqx(payload, 0xFFFF))
    header += struct.pack(">H", binascii.crc_hqx(header, 0xFFFF))
    return header + payload


@pytest.mark.parametrize("resolution,height,width", [(SIZE, 65535, 65535), (SIZE, 4096, 4096),
                                                     (SIZE, MAX_OUTPUT_SCALE * SIZE + 1, SIZE),
                                                     (SIZE, SIZE, MAX_OUTPUT_SCALE * SIZE + 1), (1, 5, 5)])
def test_stream_header_beyond_the_output_bound_is_refused(resolution, height, width):
    data = forged_stream(bytes(8), resolution, height, width)
    assert len(data) < 40
    with pytest.raises(BitstreamError) as caught:
        CodecStream.from_bytes(data)
    one_line(caught.value, "at most 4 x", str(max(height, width)))
    with pytest.raises(BitstreamError):  # writers refuse such streams too
        CodecStream(bytes(8), resolution, height, width, 1, CodecStream.from_bytes(
            forged_stream(bytes(8), SIZE, SIZE, SIZE)).layers)


def test_stream_at_the_output_bound_parses():
    bound = MAX_OUTPUT_SCALE * SIZE
    assert (CodecStream.from_bytes(forged_stream(bytes(8), SIZE, bound, bound)).height) == bound


@pytest.mark.parametrize("resolution,height,width,words", [
    (SIZE, 65535, 65535, ("height", "65535")),
    (2 * SIZE, 2 * SIZE, 2 * SIZE, ("64 px model", "32 px")),  # resolution field must equal the model's
])
def test_decompress_refuses_forged_headers_before_decoding(tmp_path, monkeypatch, codec_file, resolution, height,
                                                          width, words):
    path, fingerprint = codec_file
    stream = tmp_path / "forged.sglc"
    stream.write_bytes(forged_stream(fingerprint, resolution, height, width))
    decoded = _Recorder(codec_tools.decompress_stream)
    monkeypatch.setattr(codec_tools, "decompress_stream", decoded)
    status, err = cli("decompress", "--codec", path, stream, "--out", tmp_path / "out", "--device", "cpu")
    assert status == 2 and decoded.devices == [] and not (tmp_path / "out").exists()
    one_line(err, "decompress: error:", "forged.sglc", *words)


# ---------------------------------------------------------------------------------------------- 2. --resolution
@pytest.mark.parametrize("tool", ["compress", "evaluate"])
@pytest.mark.parametrize("value", ["70000", "-8", "0", str(MAX_OUTPUT_SCALE * SIZE + 1)])
def test_resolution_option_is_bounded(tmp_path, monkeypatch, codec_file, tool, value):
    opened = _Recorder(codec_tools.open_images)
    monkeypatch.setattr(codec_tools, "open_images", opened)
    images = tmp_path / "faces"
    images.mkdir()
    inputs = [images] if tool == "compress" else ["--images", images]
    status, err = cli(tool, "--codec", codec_file[0], *inputs, "--resolution", value, "--device", "cpu")
    assert status == 2 and opened.devices == []  # refused before any image is read
    if int(value) < 1:  # the option's type refuses it while parsing
        one_line(err, f"{tool}: error: argument --resolution: must be >= 1, got {int(value)}")
    else:
        one_line(err, f"{tool}: error: --resolution must be in 1..{MAX_OUTPUT_SCALE * SIZE}, got {int(value)}")


@pytest.mark.parametrize("value,kind", [(70000, "in 1..4096"), (-8, "in 1..4096"), (0, "in 1..4096"),
                                        (True, "positive integer"), ("64", "positive integer"), (2.5, "positive")])
def test_image_readers_bound_the_resolution(tmp_path, value, kind):
    for read in (lambda: read_images(tmp_path, value), lambda: FaceImageDataset(str(tmp_path), resolution=value)):
        with pytest.raises(DatasetError) as caught:
            read()
        one_line(caught.value, "resolution", kind)


# ---------------------------------------------------------------------------------------------- 3. model files
@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    torch.manual_seed(0)
    return save_generator(tmp_path_factory.mktemp("g") / "g.pt", Generator(32, style_dim=32, n_mlp=2, channel_max=16))


@pytest.mark.parametrize("key,value,words", [
    ("style_dim", 10**9, ("mis-shaped",)),  # would be terabytes of mapping weights
    ("channel_max", 10**6, ("mis-shaped",)),
    ("n_mlp", 10**7, ("'n_mlp'", "in 1..")),  # would take minutes to build, even on the meta device
    ("style_dim", "512", ("'style_dim'", "positive integer", "str")),
    ("channel_multiplier", True, ("'channel_multiplier'", "bool")),
    ("size", -8, ("'size'", "positive")),
    ("n_mlp", 2.0, ("'n_mlp'", "float")),
    ("style_dim", [[512]], ("'style_dim'", "list")),
    ("lr_mlp", "fast", ("'lr_mlp'",)),
    ("size", 2**20, ("invalid configuration",)),
])
def test_generator_config_is_checked_before_building(tmp_path, monkeypatch, generator_file, key, value, words):
    data = torch.load(generator_file, weights_only=True)
    data["generator_config"][key] = value
    torch.save(data, tmp_path / "forged.pt")
    built = _Recorder(Generator)
    monkeypatch.setattr(generator_checkpoints, "Generator", built)
    with pytest.raises(CheckpointError) as caught:
        load_generator(tmp_path / "forged.pt")
    assert set(built.devices) <= {"meta"}  # nothing real was built
    one_line(caught.value, "forged.pt", *words)


@pytest.mark.parametrize("forge,words", [
    (lambda d: d.update(generator_config="big"), ("'generator_config'", "str")),
    (lambda d: d.update(g_ema=[1, 2]), ("'g_ema'", "list")),
    (lambda d: d.update(latent_avg="x"), ("'latent_avg'", "str")),
])
def test_generator_file_structure_is_checked(tmp_path, generator_file, forge, words):
    data = torch.load(generator_file, weights_only=True)
    forge(data)
    torch.save(data, tmp_path / "forged.pt")
    with pytest.raises(CheckpointError) as caught:
        load_generator(tmp_path / "forged.pt")
    one_line(caught.value, "forged.pt", *words)


@pytest.mark.parametrize("section,key,value,words", [
    ("codec", "dim", 10**6, ("mis-shaped",)),
    ("codec", "hyper_channels", 10**6, ("mis-shaped",)),
    ("codec", "code_channels", 10**6, ("mis-shaped",)),
    ("codec", "depth", 10**6, ("'depth'", "in 1..")),
    ("codec", "heads", "2", ("'heads'", "str")),
    ("codec", "dim", False, ("'dim'", "bool")),
    ("encoder", "channels", [10**6] * 4, ("mis-shaped",)),
    ("encoder", "blocks", [10**6] * 4, ("'blocks'",)),
    ("encoder", "blocks", [[1]], ("'blocks'", "list")),
    ("encoder", "input_size", -1, ("'input_size'",)),
    ("encoder", None, KeyError, ("'encoder'",)),
])
def test_codec_spec_is_checked_before_building(tmp_path, monkeypatch, codec_file, section, key, value, words):
    data = torch.load(codec_file[0], weights_only=True)
    if value is KeyError:
        data["spec"].pop(section)
    else:
        data["spec"][section][key] = value
    torch.save(data, tmp_path / "forged.pt")
    built = _Recorder(codec_checkpoints.build_codec)
    monkeypatch.setattr(codec_checkpoints, "build_codec", built)
    with pytest.raises(CheckpointError) as caught:
        load_codec(tmp_path / "forged.pt")
    assert set(built.devices) <= {"meta"}
    one_line(caught.value, "forged.pt", *words)


@pytest.fixture(scope="module")
def styleae_file(tmp_path_factory):
    return save_styleae(tmp_path_factory.mktemp("ae") / "ae.pt", StyleAE(8, ["smile", "age"], n_layers=2))


@pytest.mark.parametrize("key,value,words", [
    ("latent_dim", 10**7, ("mis-shaped",)),
    ("hidden_dim", 10**7, ("mis-shaped",)),
    ("n_layers", 10**6, ("'n_layers'", "in 1..")),
    ("latent_dim", "8", ("'latent_dim'", "str")),
    ("n_layers", True, ("'n_layers'", "bool")),
    ("latent_dim", KeyError, ("'latent_dim'",)),
])
def test_styleae_config_is_checked_before_building(tmp_path, monkeypatch, styleae_file, key, value, words):
    data = torch.load(styleae_file, weights_only=True)
    if value is KeyError:
        del data["config"][key]
    else:
        data["config"][key] = value
    torch.save(data, tmp_path / "forged.pt")
    built = _Recorder(StyleAE)
    monkeypatch.setattr(styleae_checkpoints, "StyleAE", built)
    with pytest.raises(CheckpointError) as caught:
        load_styleae(tmp_path / "forged.pt")
    assert set(built.devices) <= {"meta"}
    one_line(caught.value, "forged.pt", *words)


@pytest.mark.parametrize("key,value,words", [
    ("channels", [16, 16, 32, 10**6], ("mis-shaped",)),
    ("blocks", [1, 1, 1, 10**6], ("'blocks'",)),
    ("input_nc", "3", ("'input_nc'", "str")),
    ("input_nc", KeyError, ("'input_nc'",)),
])
def test_encoder_config_is_checked_before_building(tmp_path, monkeypatch, tiny_generator, key, value, words):
    from stylegan_lightning.encoders import build_inverter, load_encoder, save_encoder_checkpoint
    from stylegan_lightning.encoders import checkpoints as encoder_checkpoints

    prior = FrozenGenerator(tiny_generator(size=32), n_mean_latent=16)
    bundle = build_inverter("psp", prior, input_size=32, blocks=(1, 1, 1, 1), channels=(16, 16, 32, 32))
    path = save_encoder_checkpoint(tmp_path / "forged.pt", bundle)
    data = torch.load(path, weights_only=True)
    own = data["opts"][encoder_checkpoints.CONFIG_KEY]
    if value is KeyError:
        del own[key]
    else:
        own[key] = value
    torch.save(data, path)
    built = _Recorder(encoder_checkpoints.build_unfilled)
    monkeypatch.setattr(encoder_checkpoints, "build_unfilled", built)
    with pytest.raises(CheckpointError) as caught:
        load_encoder(path)
    assert built.devices == []
    one_line(caught.value, "forged.pt", *words)


def deep_pickle(depth: int = 100_000) -> bytes:
    """``{"g_ema": [[[...]]]}`` nested ``depth`` lists deep (protocol 2, APPENDS only: torch's reader accepts it)."""
    return b"\x80\x02}X\x05\x00\x00\x00g_emaq\x00" + b"](" * depth + b"]" + b"e" * depth + b"s."


def test_deeply_nested_pickles_are_checkpoint_errors(tmp_path, generator_file):
    import zipfile

    plain = tmp_path / "deep.pkl"
    plain.write_bytes(deep_pickle())
    zipped = tmp_path / "deep.pt"
    with zipfile.ZipFile(generator_file) as source, zipfile.ZipFile(zipped, "w") as target:
        for info in source.infolist():
            # 20,000 deep: torch's weights-only reader is pure Python and takes ~1 s per 100,000 levels
            target.writestr(info, deep_pickle(20_000) if info.filename.endswith("data.pkl") else source.read(info))
    for load in (lambda: load_generator(plain), lambda: load_generator(zipped)):
        with pytest.raises(CheckpointError) as caught:
            load()
        one_line(caught.value, "deep.p")
    # reading them is fine (the unpicklers do not recurse); using them is refused, as above
    assert isinstance(restricted_pickle_load(plain, {}, "test pickle"), dict) and safe_torch_load(zipped)


def test_recursion_errors_of_the_readers_are_checkpoint_errors(tmp_path, monkeypatch, generator_file):
    from stylegan_lightning import serialization

    def recurse(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    plain = tmp_path / "deep.pkl"
    plain.write_bytes(deep_pickle(10))
    monkeypatch.setattr(torch, "load", recurse)
    monkeypatch.setattr(serialization._AllowListUnpickler, "load", recurse)
    for load in (lambda: safe_torch_load(generator_file, "test file"),
                 lambda: restricted_pickle_load(plain, {}, "test pickle")):
        with pytest.raises(CheckpointError) as caught:
            load()
        one_line(caught.value, "nested too deeply")


# ---------------------------------------------------------------------------------------------- 4. images
def png_header(width: int, height: int) -> bytes:
    """A 60-byte PNG whose header claims ``width`` x ``height`` RGB pixels (its pixel data is cut short)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width,height", [(12000, 12000), (40000, 40000), (8193, 8192), (1, 70_000_000)])
def test_huge_image_headers_are_refused_before_decoding(tmp_path, width, height):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(width, height))
    with pytest.raises(BadImageError) as caught:
        decode_rgb(path.read_bytes(), str(path))
    one_line(caught.value, "bomb.png")
    assert f"{width} x {height}" in str(caught.value) or "too large" in str(caught.value)
    with pytest.raises(BadImageError):
        read_images(path, 32)


def test_a_real_large_palette_png_is_refused_fast(tmp_path):
    from PIL import Image

    path = tmp_path / "palette.png"
    Image.new("P", (9000, 8000)).save(path)  # 72 Mpx, a few kB on disk
    assert path.stat().st_size < 100_000
    with pytest.raises(BadImageError) as caught:
        read_images(path, 32)
    one_line(caught.value, "palette.png", "9000 x 8000", MAX_IMAGE_PIXELS_ENV)


def test_the_pixel_bound_follows_the_environment(tmp_path, monkeypatch):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "PNG")
    assert decode_rgb(buffer.getvalue(), "small.png").size == (16, 16)
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, "255")
    with pytest.raises(BadImageError) as caught:
        decode_rgb(buffer.getvalue(), "small.png")
    one_line(caught.value, "small.png", "16 x 16", "255-pixel limit")
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, "lots")
    with pytest.raises(DatasetError) as caught:
        decode_rgb(buffer.getvalue(), "small.png")
    one_line(caught.value, MAX_IMAGE_PIXELS_ENV, "lots")
    monkeypatch.setenv(MAX_IMAGE_PIXELS_ENV, str(10**12))  # Pillow's own bomb check still holds, as an error
    with pytest.raises(BadImageError) as caught:
        decode_rgb(png_header(12000, 12000), "bomb.png")
    one_line(caught.value, "bomb.png", "too large")


# ---------------------------------------------------------------------------------------------- 5. NaN weights
@pytest.mark.parametrize("key", ["convs.0.conv.weight", "style.1.weight", "latent_avg"])
def test_non_finite_generator_weights_are_named(tmp_path, generator_file, key):
    data = torch.load(generator_file, weights_only=True)
    if key == "latent_avg":
        data["latent_avg"] = torch.full((32,), float("inf"))
    else:
        data["g_ema"][key].view(-1)[0] = float("nan")
    torch.save(data, tmp_path / "nan.pt")
    for load in (lambda: load_generator(tmp_path / "nan.pt"), lambda: FrozenGenerator.from_file(tmp_path / "nan.pt")):
        with pytest.raises(CheckpointError) as caught:
            load()
        one_line(caught.value, "nan.pt", repr(key), "NaN or infinite")
    status, err = cli("inspect", tmp_path / "nan.pt")
    assert status == 2
    one_line(err, "inspect: error:", "nan.pt", repr(key))
