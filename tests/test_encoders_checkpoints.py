"""Encoder checkpoints in the official pSp / e4e / HyperStyle layout, our own exports, and the ArcFace IR-SE50
initialisation of the backbone."""

from __future__ import annotations

import argparse

import pytest
import torch

from stylegan_lightning.encoders import (SMALL_BLOCKS, SMALL_CHANNELS, Encoder4Editing, GradualStyleEncoder,
                                         WEncoder, build_encoder, build_inverter, load_e4e, load_encoder, load_psp,
                                         load_w_encoder, save_encoder_checkpoint)
from stylegan_lightning.nets.irse import ir_se50
from stylegan_lightning.serialization import CheckpointError
from stylegan_lightning.stylegan2 import FrozenGenerator
from stylegan_lightning.weights import ENV_VAR, MissingWeightError
from model_helpers import randomize_batchnorm  # noqa: E402  (test helper beside this file)

SMALL = dict(blocks=SMALL_BLOCKS, channels=SMALL_CHANNELS)
N_STYLES, STYLE_DIM, SIZE = 8, 32, 32  # tiny 32 px generator: 2 * 5 - 2 styles of 32 dims




def _source(kind, seed=0, input_nc=3):
    torch.manual_seed(seed)
    encoder = build_encoder(kind, N_STYLES, STYLE_DIM, SIZE, input_nc=input_nc, **SMALL)
    return randomize_batchnorm(encoder, seed).eval()


def _write_official(path, encoder, generator, opts, latent_avg=None, extra_encoder=None, drop=()):
    """torch.save the layout of the official Coach: {'state_dict': {encoder.*, decoder.*}, 'opts', 'latent_avg'}."""
    state = {f"encoder.{k}": v.clone() for k, v in encoder.state_dict().items()}
    state.update({f"decoder.{k}": v.clone() for k, v in generator.state_dict().items()})
    state.update({f"encoder.{k}": v for k, v in (extra_encoder or {}).items()})
    for key in drop:
        del state[key]
    payload = {"state_dict": state, "opts": opts}
    if latent_avg is not None:
        payload["latent_avg"] = latent_avg
    torch.save(payload, path)
    return path


@pytest.fixture
def images():
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3)) * 2 - 1


@pytest.fixture
def generator(tiny_generator):
    return tiny_generator(size=SIZE, seed=5)


def test_e4e_official_layout_reproduces_w_plus(tmp_path, generator, images):
    source = _source("e4e")
    latent_avg = torch.randn(STYLE_DIM).repeat(N_STYLES, 1)  # official: latent_avg repeated over the styles
    opts = {"encoder_type": "Encoder4Editing", "stylegan_size": SIZE, "start_from_latent_avg": True,
            "lpips_lambda": 0.8, "progressive_start": 20000}
    path = _write_official(tmp_path / "e4e.pt", source, generator, opts, latent_avg)
    bundle = load_e4e(path)
    assert isinstance(bundle.encoder.encoder, Encoder4Editing) and not bundle.training
    assert bundle.opts["lpips_lambda"] == 0.8 and bundle.encoder.input_size == SIZE
    w_plus, reconstruction = bundle.invert(images)
    with torch.no_grad():
        expected = source(images) + latent_avg
    assert torch.equal(w_plus, expected)
    prior = FrozenGenerator(generator, latent_avg=latent_avg[0])
    assert torch.equal(reconstruction, prior(expected))
    assert torch.equal(bundle.decoder.latent_avg, latent_avg[0])
    # the progressive stage is the caller's: stage 0 gives w0 + latent_avg everywhere
    bundle.encoder.encoder.set_progressive_stage(0)
    w0 = bundle.encode(images)
    assert torch.equal(w0, source(images)[:, :1] + latent_avg)


def test_psp_official_layout_without_latent_avg_uses_generator(tmp_path, generator, images):
    source = _source("psp", seed=1)
    opts = argparse.Namespace(encoder_type="GradualStyleEncoder", input_nc=3, label_nc=0, output_size=SIZE,
                              start_from_latent_avg=True, learn_in_w=False)
    path = _write_official(tmp_path / "psp.pt", source, generator, opts)
    bundle = load_psp(path)
    assert isinstance(bundle.encoder.encoder, GradualStyleEncoder)
    prior = FrozenGenerator(generator)  # no latent_avg anywhere: mean of 10000 mapped samples, seed 0
    assert torch.equal(bundle.decoder.latent_avg, prior.latent_avg)
    w_plus, reconstruction = bundle.invert(images)
    with torch.no_grad():
        expected = source(images) + prior.latent_avg
    assert torch.equal(w_plus, expected)
    assert torch.equal(reconstruction, prior(expected))


def test_psp_without_start_from_latent_avg(tmp_path, generator, images):
    source = _source("psp", seed=2)
    opts = {"encoder_type": "GradualStyleEncoder", "input_nc": 3, "output_size": SIZE, "start_from_latent_avg": False}
    bundle = load_encoder(_write_official(tmp_path / "psp.pt", source, generator, opts, torch.randn(N_STYLES, STYLE_DIM)))
    assert bundle.kind == "psp"
    with torch.no_grad():
        assert torch.equal(bundle.encode(images), source(images))


@pytest.mark.parametrize("encoder_type", ["WEncoder", "BackboneEncoderUsingLastLayerIntoW", "SomethingElse"])
def test_w_encoder_official_layout(tmp_path, generator, images, encoder_type):
    source = _source("w", seed=4)
    latent_avg = torch.randn(STYLE_DIM)
    opts = {"encoder_type": encoder_type, "output_size": SIZE, "input_nc": 3}
    path = _write_official(tmp_path / "w.pt", source, generator, opts, latent_avg[None])
    bundle = load_w_encoder(path, input_size=SIZE)  # HyperStyle ignores the encoder_type of its W-encoder
    assert isinstance(bundle.encoder.encoder, WEncoder)
    w_plus, reconstruction = bundle.invert(images)
    with torch.no_grad():
        expected = source.encode_w(images) + latent_avg
    assert all(torch.equal(w_plus[:, i], expected) for i in range(N_STYLES))
    assert torch.equal(reconstruction, FrozenGenerator(generator, latent_avg=latent_avg)(w_plus))


def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path, generator):
    source = _source("e4e")
    opts = {"encoder_type": "Encoder4Editing", "stylegan_size": SIZE, "start_from_latent_avg": True}
    missing = _write_official(tmp_path / "missing.pt", source, generator, opts, drop=("encoder.styles.3.linear.bias",))
    with pytest.raises(CheckpointError, match=r"1 missing: styles\.3\.linear\.bias"):
        load_e4e(missing)
    extra = {"latlayer1.weight": torch.zeros(128, 64, 3, 3), "styles.8.linear.weight": torch.zeros(32, 32)}
    bad = _write_official(tmp_path / "bad.pt", source, generator, opts, extra_encoder=extra)
    with pytest.raises(CheckpointError) as error:
        load_e4e(bad)
    assert "unexpected: styles.8.linear.weight" in str(error.value)
    assert "latlayer1.weight (file (128, 64, 3, 3), model (128, 64, 1, 1))" in str(error.value)
    # pSp's options read input_nc: a 6-channel claim for RGB weights is a mis-shaped input layer
    psp = _write_official(tmp_path / "psp6.pt", _source("psp"), generator,
                          {"encoder_type": "GradualStyleEncoder", "input_nc": 6, "output_size": SIZE})
    with pytest.raises(CheckpointError, match=r"input_layer\.0\.weight \(file \(16, 3, 3, 3\), model \(16, 6, 3, 3\)\)"):
        load_psp(psp)


def test_wrong_loader_type_and_size_mismatch(tmp_path, generator):
    source = _source("e4e")
    path = _write_official(tmp_path / "e4e.pt", source, generator, {"encoder_type": "Encoder4Editing"})
    with pytest.raises(CheckpointError, match="use load_e4e"):
        load_psp(path)
    restyle = _write_official(tmp_path / "restyle.pt", source, generator, {"encoder_type": "ProgressiveBackboneEncoder"})
    with pytest.raises(CheckpointError, match="'ProgressiveBackboneEncoder' is not supported"):
        load_e4e(restyle)
    wrong = _write_official(tmp_path / "size.pt", source, generator, {"encoder_type": "Encoder4Editing",
                                                                      "stylegan_size": 1024})
    with pytest.raises(CheckpointError, match="18 styles but the generator \\(32 px\\) takes 8"):
        load_e4e(wrong)
    torch.save({"state_dict": {f"decoder.{k}": v for k, v in generator.state_dict().items()}}, tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="no 'encoder.\\*' weights"):
        load_e4e(tmp_path / "g.pt")
    state = {f"encoder.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": state, "opts": {"encoder_type": "Encoder4Editing"}}, tmp_path / "nodec.pt")
    with pytest.raises(CheckpointError, match="no 'decoder"):
        load_e4e(tmp_path / "nodec.pt")
    assert load_e4e(tmp_path / "nodec.pt", generator=generator).kind == "e4e"  # generator supplied separately


@pytest.mark.parametrize("kind,input_nc", [("e4e", 3), ("psp", 6), ("w", 3)])
def test_save_encoder_checkpoint_round_trip(tmp_path, tiny_generator, kind, input_nc):
    prior = FrozenGenerator(tiny_generator(size=64), n_mean_latent=256)
    torch.manual_seed(7)
    bundle = build_inverter(kind, prior, input_size=64, input_nc=input_nc, blocks=(1, 2, 1, 1),
                            channels=(16, 32, 64, 128)).eval()
    randomize_batchnorm(bundle.encoder)
    path = save_encoder_checkpoint(tmp_path / "out" / "encoder.pt", bundle, opts={"lpips_lambda": 0.8})
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "opts", "latent_avg"}
    assert all(k.startswith(("encoder.", "decoder.")) for k in raw["state_dict"])
    assert "decoder.conv1.conv.weight" in raw["state_dict"] and "encoder.body.1.res_layer.1.weight" in raw["state_dict"]
    official_name = {"e4e": "Encoder4Editing", "psp": "GradualStyleEncoder", "w": "WEncoder"}[kind]
    assert raw["opts"]["encoder_type"] == official_name and raw["opts"]["output_size"] == 64
    assert raw["opts"]["n_styles"] == 10 and raw["opts"]["input_nc"] == input_nc and raw["opts"]["lpips_lambda"] == 0.8
    assert raw["latent_avg"].shape == (10, 32)
    loaded = load_encoder(path)
    assert loaded.kind == kind and loaded.encoder.encoder.config == bundle.encoder.encoder.config
    x = torch.rand(2, input_nc, 64, 64) * 2 - 1
    w_plus, reconstruction = bundle.invert(x)
    w_loaded, reconstruction_loaded = loaded.invert(x)
    assert torch.equal(w_plus, w_loaded) and torch.equal(reconstruction, reconstruction_loaded)
    with pytest.raises(ValueError, match="contradicts"):
        save_encoder_checkpoint(tmp_path / "x.pt", bundle, opts={"output_size": 1024})
    other = {"e4e": load_w_encoder, "psp": load_e4e, "w": load_psp}[kind]
    with pytest.raises(CheckpointError, match=f"holds a {official_name} encoder"):
        other(path)


# ------------------------------------------------------------------------------------- ArcFace initialisation
@pytest.fixture(scope="module")
def arcface_file(tmp_path_factory):
    """A random IR-SE50 in the ArcFace ``model_ir_se50.pth`` layout (nets.irse Backbone), saved as a state dict."""
    torch.manual_seed(11)
    net = randomize_batchnorm(ir_se50(), seed=11)
    folder = tmp_path_factory.mktemp("weights")
    path = folder / "model_ir_se50.pth"
    torch.save(net.state_dict(), path)
    return path


def test_irse_path_initialises_backbone_exactly(arcface_file, monkeypatch):
    arcface = torch.load(arcface_file, weights_only=True)
    torch.manual_seed(0)
    encoder = build_encoder("w", n_styles=2, style_dim=16, irse_path=str(arcface_file))
    torch.manual_seed(0)
    reference = build_encoder("w", n_styles=2, style_dim=16)
    state = encoder.state_dict()
    backbone = [k for k in state if k.startswith(("input_layer.", "body."))]
    assert len(backbone) == len([k for k in arcface if not k.startswith("output_layer.")])
    assert all(torch.equal(state[k], arcface[k]) for k in backbone)
    assert torch.equal(state["linear.weight"], reference.state_dict()["linear.weight"])  # head keeps its init
    # ReStyle-style 6-channel input, through the registry key and the weights folder
    monkeypatch.setenv(ENV_VAR, str(arcface_file.parent))
    torch.manual_seed(0)
    wide = build_encoder("w", n_styles=2, style_dim=16, input_nc=6, irse_path="arcface_ir_se50")
    first = wide.state_dict()["input_layer.0.weight"]
    assert first.shape == (64, 6, 3, 3) and torch.equal(first[:, :3], arcface["input_layer.0.weight"])
    assert not torch.equal(first[:, 3:], torch.zeros_like(first[:, 3:]))
    assert torch.equal(wide.state_dict()["body.23.res_layer.5.fc2.weight"], arcface["body.23.res_layer.5.fc2.weight"])


def test_irse_path_errors(tmp_path):
    with pytest.raises(ValueError, match="official IR-SE50 backbone"):
        build_encoder("psp", 8, 32, 32, irse_path="anything.pth", **SMALL)
    with pytest.raises(MissingWeightError, match="model_ir_se50.pth"):
        build_encoder("w", 2, 16, irse_path=str(tmp_path / "absent.pth"))
    torch.save({"input_layer.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="missing: body.0.res_layer.0.bias"):
        build_encoder("w", 2, 16, irse_path=str(tmp_path / "partial.pth"))
