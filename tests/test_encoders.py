"""Encoders: official layouts (checked against key lists written from the official code), pSp / e4e / W
semantics, any resolution, latent_avg, gradients through the frozen generator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylegan_lightning.encoders import (SMALL_BLOCKS, SMALL_CHANNELS, BackboneConfig, Encoder4Editing,
                                         GradualStyleEncoder, Inverter, LatentEncoder, WEncoder, build_encoder,
                                         build_inverter, infer_backbone_config)
from stylegan_lightning.nets.irse import Backbone
from stylegan_lightning.stylegan2 import FrozenGenerator
from model_helpers import randomize_batchnorm  # noqa: E402  (test helper beside this file)

SMALL = dict(blocks=SMALL_BLOCKS, channels=SMALL_CHANNELS)


# ------------------------------------------------------------------------------------- official key lists
def _bn(prefix: str, n: int) -> dict:
    shapes = {f"{prefix}.{name}": (n,) for name in ("weight", "bias", "running_mean", "running_var")}
    shapes[f"{prefix}.num_batches_tracked"] = ()
    return shapes


def official_irse50_backbone() -> dict:
    """``input_layer`` + ``body`` of pSp's ``GradualStyleEncoder(50, 'ir_se')``, written from helpers.py:
    get_blocks(50) = 3 / 4 / 14 / 3 ``bottleneck_IR_SE`` units of 64 / 128 / 256 / 512 channels, stride 2 first."""
    shapes = {"input_layer.0.weight": (64, 3, 3, 3), **_bn("input_layer.1", 64), "input_layer.2.weight": (64,)}
    units = []
    for in_c, depth, count in ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)):
        units += [(in_c, depth)] + [(depth, depth)] * (count - 1)
    for n, (in_c, depth) in enumerate(units):
        p = f"body.{n}"
        if in_c != depth:  # Conv 1x1 + BN shortcut; otherwise MaxPool2d(1, stride), no parameters
            shapes[f"{p}.shortcut_layer.0.weight"] = (depth, in_c, 1, 1)
            shapes.update(_bn(f"{p}.shortcut_layer.1", depth))
        shapes.update(_bn(f"{p}.res_layer.0", in_c))
        shapes[f"{p}.res_layer.1.weight"] = (depth, in_c, 3, 3)
        shapes[f"{p}.res_layer.2.weight"] = (depth,)
        shapes[f"{p}.res_layer.3.weight"] = (depth, depth, 3, 3)
        shapes.update(_bn(f"{p}.res_layer.4", depth))
        shapes[f"{p}.res_layer.5.fc1.weight"] = (depth // 16, depth, 1, 1)
        shapes[f"{p}.res_layer.5.fc2.weight"] = (depth, depth // 16, 1, 1)
    return shapes


def official_gradual_style_encoder(n_styles: int = 18) -> dict:
    """pSp / e4e encoder keys: styles 0-2 GradualStyleBlock(512, 512, 16) (4 convs), 3-6 spatial 32 (5 convs),
    the rest spatial 64 (6 convs); Sequential(conv, LeakyReLU, ...) puts the convs at even indices."""
    shapes = official_irse50_backbone()
    for i in range(n_styles):
        n_convs = 4 if i < 3 else 5 if i < 7 else 6
        for j in range(n_convs):
            shapes[f"styles.{i}.convs.{2 * j}.weight"] = (512, 512, 3, 3)
            shapes[f"styles.{i}.convs.{2 * j}.bias"] = (512,)
        shapes[f"styles.{i}.linear.weight"] = (512, 512)
        shapes[f"styles.{i}.linear.bias"] = (512,)
    shapes.update({"latlayer1.weight": (512, 256, 1, 1), "latlayer1.bias": (512,),
                   "latlayer2.weight": (512, 128, 1, 1), "latlayer2.bias": (512,)})
    return shapes


def _shapes(module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("kind", ["psp", "e4e"])
def test_official_pyramid_encoder_layout(kind):
    with torch.device("meta"):
        encoder = build_encoder(kind, n_styles=18)
    assert _shapes(encoder) == official_gradual_style_encoder(18)
    assert len(encoder.styles) == 18 and encoder.style_count == 18
    assert encoder.config.taps == (6, 20, 23) and len(encoder.body) == 24
    shapes = _shapes(encoder)
    assert shapes["styles.0.convs.0.weight"] == (512, 512, 3, 3)
    assert shapes["styles.17.convs.10.weight"] == (512, 512, 3, 3) and "styles.17.convs.12.weight" not in shapes
    assert shapes["body.23.res_layer.5.fc2.weight"] == (512, 32, 1, 1)
    assert shapes["body.21.shortcut_layer.0.weight"] == (512, 256, 1, 1)
    assert "body.0.shortcut_layer.0.weight" not in shapes  # 64 -> 64: MaxPool2d(1, 2)
    assert sum(p.numel() for p in encoder.parameters()) == 267_136_704


def test_official_layout_at_256_and_w_encoder():
    with torch.device("meta"):
        e4e = build_encoder("e4e", n_styles=14)  # 256 px generator: 2 * 8 - 2 styles
        w = build_encoder("w", n_styles=18)
    assert _shapes(e4e) == official_gradual_style_encoder(14)
    expected_w = {**official_irse50_backbone(), "linear.weight": (512, 512), "linear.bias": (512,)}
    assert _shapes(w) == expected_w  # HyperStyle WEncoder: output_pool has no parameters


def test_backbone_matches_arcface_ir_se50():
    with torch.device("meta"):
        arcface = Backbone(112, 50, "ir_se")
        encoder = build_encoder("w", n_styles=1)
    arcface_shapes = {k: v for k, v in _shapes(arcface).items() if not k.startswith("output_layer.")}
    encoder_shapes = {k: v for k, v in _shapes(encoder).items() if not k.startswith("linear.")}
    assert arcface_shapes == encoder_shapes
    assert infer_backbone_config(encoder.state_dict()) == BackboneConfig()


def test_backbone_config_validation_and_inference():
    small = BackboneConfig(SMALL_BLOCKS, SMALL_CHANNELS, "ir", 6)
    assert small.taps == (1, 2, 3) and small.reduction == 16 and small.width == 128 and not small.is_official()
    with torch.device("meta"):
        encoder = build_encoder("psp", 8, 32, 32, blocks=(2, 1, 3, 1), channels=(16, 32, 64, 128), input_nc=6,
                                mode="ir")
    assert infer_backbone_config(encoder.state_dict()) == BackboneConfig((2, 1, 3, 1), (16, 32, 64, 128), "ir", 6)
    with pytest.raises(ValueError, match="length >= 3"):
        BackboneConfig((1, 1), (16, 32))
    with pytest.raises(ValueError, match="channels must be >= 16"):
        BackboneConfig(SMALL_BLOCKS, (8, 16, 32, 64))
    with pytest.raises(ValueError, match="power of two"):
        build_encoder("psp", 8, 32, 48, **SMALL)
    with pytest.raises(ValueError, match="unknown encoder kind"):
        build_encoder("restyle", 8)


# ------------------------------------------------------------------------------------------- semantics
@pytest.fixture
def images():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1




def _small(kind, n_styles=8, style_dim=32, input_size=32, seed=0, **kwargs):
    torch.manual_seed(seed)
    return randomize_batchnorm(build_encoder(kind, n_styles, style_dim, input_size, **SMALL, **kwargs), seed).eval()


def test_psp_pyramid_and_styles(images):
    encoder = _small("psp")
    w, features = encoder(images, return_features=True)
    assert w.shape == (2, 8, 32)
    assert [tuple(f.shape) for f in features] == [(2, 32, 8, 8), (2, 64, 4, 4), (2, 128, 2, 2), (2, 128, 4, 4),
                                                   (2, 128, 8, 8)]
    p2 = F.interpolate(features.c3, size=(4, 4), mode="bilinear", align_corners=True) + encoder.latlayer1(features.c2)
    p1 = F.interpolate(p2, size=(8, 8), mode="bilinear", align_corners=True) + encoder.latlayer2(features.c1)
    assert torch.equal(features.p2, p2) and torch.equal(features.p1, p1)
    levels = [features.c3] * 3 + [features.p2] * 4 + [features.p1]  # coarse_ind 3, middle_ind 7
    for i in range(8):
        assert torch.equal(w[:, i], encoder.styles[i](levels[i]))
    assert torch.equal(encoder(images), w)
    # styles differ from each other (independent heads)
    assert (w[:, 1] - w[:, 0]).abs().max() > 1e-3


def test_e4e_progressive_stages(images):
    encoder = _small("e4e")
    assert encoder.progressive_stage == 7 and encoder.is_inference_stage
    full, features = encoder(images, return_features=True)
    w0 = full[:, 0]
    levels = [features.c3] * 3 + [features.p2] * 4 + [features.p1]
    assert torch.equal(w0, encoder.styles[0](features.c3))
    for i in range(1, 8):
        assert torch.equal(full[:, i], w0 + encoder.styles[i](levels[i]))
        assert (full[:, i] - w0).abs().max() > 1e-4
    for stage in (0, 1, 3, 6):
        encoder.set_progressive_stage(stage)
        w = encoder(images)
        assert torch.equal(w[:, : stage + 1], full[:, : stage + 1])
        for i in range(stage + 1, 8):
            assert torch.equal(w[:, i], w0)
    encoder.set_progressive_stage(0)
    w = encoder(images)
    assert all(torch.equal(w[:, i], w[:, 0]) for i in range(8))
    assert encoder.set_progressive_stage("inference") == 7
    wrapped = LatentEncoder(encoder, 8, torch.zeros(8, 32))
    assert wrapped.set_progressive_stage(2) == 2 and encoder.progressive_stage == 2
    coded, pyramid = wrapped(images, return_features=True)
    assert torch.equal(coded, encoder(images)) and all(torch.equal(a, b) for a, b in zip(pyramid, features))
    with pytest.raises(TypeError, match="only e4e"):
        LatentEncoder(_small("w"), 8, torch.zeros(32)).set_progressive_stage(1)
    assert encoder.set_progressive_stage(18) == 7  # official ProgressiveStage.Inference
    assert torch.equal(encoder(images), full)
    with pytest.raises(ValueError):
        encoder.set_progressive_stage(-1)


def test_w_encoder_identical_styles(images):
    encoder = _small("w")
    w = encoder(images)
    assert w.shape == (2, 8, 32)
    single = encoder.linear(encoder.backbone_output(images).mean(dim=(2, 3)))
    assert torch.allclose(encoder.encode_w(images), single, atol=1e-6)
    assert all(torch.equal(w[:, i], w[:, 0]) for i in range(8))
    latent_avg = torch.randn(32)
    coded = LatentEncoder(encoder, 8, latent_avg)(images)
    assert all(torch.equal(coded[:, i], coded[:, 0]) for i in range(8))
    assert torch.equal(coded, w + latent_avg)
    assert encoder(torch.rand(1, 3, 48, 40)).shape == (1, 8, 32)  # pooling: any size


def test_latent_encoder_latent_avg_and_resizing(images):
    encoder = _small("psp")
    per_style = torch.randn(8, 32)
    wrapped = LatentEncoder(encoder, 8, per_style)
    assert torch.equal(wrapped(images), encoder(images) + per_style)
    assert torch.equal(LatentEncoder(encoder, 8, per_style, start_from_latent_avg=False)(images), encoder(images))
    large = torch.rand(2, 3, 128, 96) * 2 - 1
    assert torch.equal(wrapped(large), encoder(F.interpolate(large, size=(32, 32), mode="area")) + per_style)
    small = torch.rand(2, 3, 16, 16) * 2 - 1
    expected = encoder(F.interpolate(small, size=(32, 32), mode="bilinear", align_corners=False)) + per_style
    assert torch.equal(wrapped(small), expected)
    with pytest.raises(ValueError, match="needs latent_avg"):
        LatentEncoder(encoder, 8)
    with pytest.raises(ValueError, match="latent_avg has shape"):
        LatentEncoder(encoder, 8, torch.randn(3, 32))
    with pytest.raises(ValueError, match="n_styles=10"):
        LatentEncoder(encoder, 10, torch.randn(32))
    with pytest.raises(ValueError, match=r"\[B, 3, 32, 32\]"):
        encoder(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize("kind", ["psp", "e4e", "w"])
def test_any_resolution_generator(kind, tiny_generator):
    prior = FrozenGenerator(tiny_generator(size=64), n_mean_latent=256)
    torch.manual_seed(0)
    inverter = build_inverter(kind, prior, input_size=64, **SMALL).eval()
    assert inverter.encoder.n_styles == 10
    encoder = inverter.encoder.encoder
    if kind != "w":
        assert [len(encoder.styles[i].convs) // 2 for i in (0, 3, 7)] == [2, 3, 4]  # c3 4x4, p2 8x8, p1 16x16
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    w_plus, reconstruction = inverter.invert(x)
    assert w_plus.shape == (2, 10, 32) and reconstruction.shape == (2, 3, 64, 64)
    assert torch.equal(w_plus, encoder(x) + prior.latent_avg)
    assert torch.equal(reconstruction, prior(w_plus))  # stored noise: randomize_noise=False
    again = inverter.invert(x)[1]
    assert torch.equal(reconstruction, again)


@pytest.mark.parametrize("kind", ["e4e", "w"])
def test_gradients_reach_encoder_through_frozen_generator(kind, tiny_generator):
    prior = FrozenGenerator(tiny_generator(size=32), n_mean_latent=256)
    torch.manual_seed(0)
    inverter = build_inverter(kind, prior, input_size=32, **SMALL).train()
    assert not prior.training and not any(p.requires_grad for p in prior.parameters())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    w_plus, reconstruction = inverter.invert(x)
    F.mse_loss(reconstruction, x).backward()
    encoder_params = dict(inverter.encoder.named_parameters())
    assert encoder_params and all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder_params.values())
    assert encoder_params["encoder.input_layer.0.weight"].grad.abs().sum() > 0
    assert all(p.grad is None for p in prior.parameters())


def test_inverter_checks(tiny_generator):
    prior = FrozenGenerator(tiny_generator(size=32), n_mean_latent=256)
    encoder = build_encoder("w", 10, 32, 32, **SMALL)
    with pytest.raises(ValueError, match="W\\+ \\[8, 32\\]"):
        Inverter(encoder, prior)
    bundle = Inverter(build_encoder("psp", 8, 32, 32, **SMALL), prior)
    assert isinstance(bundle.encoder, LatentEncoder) and bundle.kind == "psp"
    assert torch.equal(bundle.latent_avg, prior.latent_avg.expand(8, 32))
    assert isinstance(build_encoder("e4e", 8, 32, 32, **SMALL), Encoder4Editing)
    assert isinstance(build_encoder("GradualStyleEncoder", 8, 32, 32, **SMALL), GradualStyleEncoder)
    assert isinstance(build_encoder("BackboneEncoderUsingLastLayerIntoW", 8, 32, 32, **SMALL), WEncoder)
