"""The web demo's actions and settings without a browser (no Gradio needed): the shipped demo models on a sample
face, with the numbers the page shows checked against the stream and images they come from."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_lightning.errors import UsageError
from stylegan_lightning.web import actions
from stylegan_lightning.web.arguments import serve_arguments
from stylegan_lightning.web.models import DemoModels, demo_file, settings_from_args
from stylegan_lightning.web.tools import free_port, loopback_host, offline_environment

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data/samples/celebahq/1260.jpg"

pytestmark = pytest.mark.usefixtures("single_thread")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def models():
    return DemoModels(settings_from_args(_args()))


@pytest.fixture(scope="module")
def aligned(models):
    return actions.align_photo(SAMPLE, models, models.generator.size)


@pytest.fixture(scope="module")
def inversion(models, aligned):
    return actions.invert_face(aligned, "e4e", models)


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def test_demo_settings_offer_the_shipped_models():
    settings = settings_from_args(_args())
    assert settings.codec == str(demo_file("codec"))
    assert [m.label for m in settings.methods][0] == "e4e"
    assert {Path(p).stem for p in settings.directions} == {"Smiling", "Male", "Young", "Black_Hair",
                                                          "Mouth_Slightly_Open"}
    assert settings.ganspace and settings.styleae and settings.framing == "utkface-64"


def test_user_files_replace_the_demo_ones(tmp_path):
    direction = tmp_path / "mine.pt"
    direction.write_bytes(demo_file("directions").joinpath("Smiling.pt").read_bytes())
    settings = settings_from_args(_args("--directions", str(direction), "--gradstyle", str(demo_file("e4e"))))
    assert settings.directions == (str(direction),)
    assert [m.label for m in settings.methods] == ["e4e", "GradStyle"]
    if not demo_file("hyperstyle").exists():  # no HyperStyle at all: a W-encoder has nothing to serve
        with pytest.raises(UsageError, match="applies with a HyperStyle"):
            settings_from_args(_args("--w-encoder", str(demo_file("w_encoder"))))


def test_serve_binds_loopback_only():
    assert loopback_host("127.0.0.1") == "127.0.0.1" and loopback_host("localhost") == "127.0.0.1"
    assert loopback_host("::1") == "::1"
    for host in ("0.0.0.0", "192.168.1.2", "::"):
        with pytest.raises(UsageError, match="not a loopback"):
            loopback_host(host)
    port = free_port("127.0.0.1", 0)
    assert port > 0
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(UsageError, match="cannot listen"):
            free_port("127.0.0.1", taken.getsockname()[1])


def test_offline_environment_keeps_files_in_the_workdir(tmp_path):
    environment = offline_environment(tmp_path)
    assert environment["GRADIO_ANALYTICS_ENABLED"] == "False" and environment["HF_HUB_OFFLINE"] == "1"
    for key in ("GRADIO_TEMP_DIR", "HF_HOME", "MPLCONFIGDIR"):
        assert Path(environment[key]).is_relative_to(tmp_path)


def test_inversion_reports_its_psnr(models, aligned, inversion):
    assert aligned.image.shape == (1, 3, 64, 64)
    mse = (inversion.reconstruction - aligned.image[0]).pow(2).mean()
    assert inversion.psnr == pytest.approx(float(10 * torch.log10(4 / mse)), abs=1e-4)
    assert 12 < inversion.psnr < 35
    assert inversion.w_plus.shape == (1, models.generator.n_latent, models.generator.style_dim)


def test_sliders_change_the_face_and_zero_changes_nothing(models, inversion):
    plain = actions.render_edit(inversion, {}, models)
    zero = actions.render_edit(inversion, {family: (next(iter(edits)), 0.0) for family, edits in models.edits.items()},
                               models)
    assert np.array_equal(_array(plain.face), _array(zero.face))
    assert plain.pasted.size == inversion.aligned.photo.size
    for family, edits in models.edits.items():
        label = next(iter(edits))
        moved = actions.render_edit(inversion, {family: (label, 2.0)}, models)
        assert np.abs(_array(moved.face) - _array(plain.face)).mean() > 0.5, (family, label)
        assert np.abs(_array(moved.pasted) - _array(plain.pasted)).mean() > 0.01, (family, label)
    with pytest.raises(UsageError, match="unknown ganspace edit"):
        actions.render_edit(inversion, {"ganspace": ("component 99", 1.0)}, models)


def test_latents_file_reads_back(models, inversion, tmp_path):
    from stylegan_lightning.inversion import load_latents

    codes = actions.edited_codes(inversion.w_plus, {"styleae": ("Smiling", 1.0)}, models)
    data = load_latents(actions.write_latents(inversion, tmp_path / "face.pt", codes))
    assert torch.equal(data["w_plus"], codes) and data["keys"] == ["1260_face0"]
    assert data["alignment"]["1260_face0"]["photo_size"] == list(inversion.aligned.photo.size)


def test_compression_numbers_are_the_streams(models, aligned):
    from stylegan_lightning.codec.bitstream import CodecStream

    coded = actions.compress_face(aligned, models)
    stream = CodecStream.from_bytes(coded.data)
    assert [layer.num_bytes for layer in coded.layers] == stream.sizes()
    assert coded.layers[-1].num_bytes == len(coded.data)
    for layer in coded.layers:
        assert layer.bpp == 8 * layer.num_bytes / (stream.height * stream.width)
    assert [c.codec for c in coded.classical] == ["webp", "jpeg"]
    for classical in coded.classical:  # no other quality of that codec is closer to the stream's size
        from stylegan_lightning.codec.classical import QUALITY_RANGE, encode_classical

        face = actions._pil(aligned.image[0])
        low, high = QUALITY_RANGE[classical.codec]
        best = min(abs(len(encode_classical(face, classical.codec, q)) - len(coded.data)) for q in range(low, high + 1))
        assert abs(classical.num_bytes - len(coded.data)) == best
    decoded = actions.decode_stream(coded.data, models)
    assert [_array(layer.image).tolist() for layer in decoded] == [_array(layer.image).tolist()
                                                                    for layer in coded.layers]


def test_bad_uploads_are_one_line_errors(models, aligned, tmp_path):
    from stylegan_lightning.codec.bitstream import CodecStream

    data = actions.compress_face(aligned, models).data
    foreign = CodecStream.from_bytes(data)
    foreign.fingerprint = bytes(8)
    cases = {b"GIF89a not a stream": "not a stylegan-lightning codec stream", data[:-2]: "truncated",
             foreign.to_bytes(): "written by another model"}
    for payload, words in cases.items():
        with pytest.raises(UsageError, match=words) as caught:
            actions.decode_stream(payload, models, "upload.sglc")
        assert "upload.sglc" in str(caught.value) and "\n" not in str(caught.value)
    Image.new("RGB", (160, 160), (120, 120, 120)).save(tmp_path / "wall.png")
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(UsageError, match="no face found in 'wall.png'"):
        actions.align_photo(tmp_path / "wall.png", models, 64)
    with pytest.raises(UsageError, match="cannot read the photo: notes.jpg"):
        actions.align_photo(tmp_path / "notes.jpg", models, 64)


def test_a_user_method_at_another_size(models, tmp_path):
    """A user's HyperStyle over a 32 px generator beside the 64 px demo e4e: the page aligns at its size, its PSNR
    compares like with like, and the sliders (fitted on the demo generator's W) say why they do not apply."""
    from stylegan_lightning.encoders import SMALL_BLOCKS, SMALL_CHANNELS, build_inverter
    from stylegan_lightning.hyperstyle import build_hyperstyle, save_hyperstyle
    from stylegan_lightning.stylegan2 import FrozenGenerator, Generator
    from stylegan_lightning.web.models import Method

    torch.manual_seed(0)
    generator = FrozenGenerator(Generator(32, style_dim=32, n_mlp=2, channel_max=16).eval())
    encoder = build_inverter("w", generator, input_size=32, blocks=SMALL_BLOCKS, channels=SMALL_CHANNELS).encoder
    model = build_hyperstyle(encoder, generator, layers_to_tune=[0, 2, 3], n_iters=2, input_size=32,
                             shared_layers=[0]).eval()
    checkpoint = save_hyperstyle(tmp_path / "hyperstyle.pt", model, w_encoder_path=tmp_path / "w_encoder.pt")
    settings = models.settings
    user_method = Method("HyperStyle", "hyperstyle", str(checkpoint), {"w_encoder": str(tmp_path / "w_encoder.pt")})
    mine = DemoModels(type(settings)(**{**settings.__dict__, "methods": (*settings.methods, user_method)}))
    size = mine.inversion_model("HyperStyle").decoder.size
    aligned = actions.align_photo(SAMPLE, mine, size)
    inversion = actions.invert_face(aligned, "HyperStyle", mine)
    assert inversion.reconstruction.shape == (3, 32, 32) and np.isfinite(inversion.psnr)
    assert actions.render_edit(inversion, {}, mine).face.size == (32, 32)
    with pytest.raises(UsageError, match="128-d codes"):
        actions.render_edit(inversion, {"ganspace": ("component 0", 1.0)}, mine)
