"""BiSeNet face parser: state-dict layout, strict loading, shapes, normalisation, and the two class orders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import stylegan_lightning  # noqa: F401  (before anything that might import torchvision)
from stylegan_lightning.nets import (CELEBAMASK_CLASSES, PARSER_CLASSES, BiSeNet, FaceParser, build_face_parser,
                                     celebamask_to_parser, parser_to_celebamask)
from stylegan_lightning.nets.parsing import CELEBAMASK_TO_PARSER, IMAGENET_MEAN, IMAGENET_STD, PARSER_TO_CELEBAMASK
from stylegan_lightning.serialization import CheckpointError
from stylegan_lightning.weights import ENV_VAR, MissingWeightError

EXPECTED_SHAPES = {
    "cp.resnet.conv1.weight": (64, 3, 7, 7),
    "cp.resnet.bn1.running_mean": (64,),
    "cp.resnet.layer1.0.conv1.weight": (64, 64, 3, 3),
    "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "cp.resnet.layer2.0.downsample.1.running_var": (128,),
    "cp.resnet.layer4.1.bn2.weight": (512,),
    "cp.arm16.conv.conv.weight": (128, 256, 3, 3),
    "cp.arm16.conv_atten.weight": (128, 128, 1, 1),
    "cp.arm32.bn_atten.bias": (128,),
    "cp.conv_head32.conv.weight": (128, 128, 3, 3),
    "cp.conv_avg.conv.weight": (128, 512, 1, 1),
    "ffm.convblk.conv.weight": (256, 256, 1, 1),
    "ffm.conv1.weight": (64, 256, 1, 1),
    "ffm.conv2.weight": (256, 64, 1, 1),
    "conv_out.conv.conv.weight": (256, 256, 3, 3),
    "conv_out.conv_out.weight": (19, 256, 1, 1),
    "conv_out16.conv.conv.weight": (64, 128, 3, 3),
    "conv_out32.conv_out.weight": (19, 64, 1, 1),
}


def _randomised(seed: int = 0) -> BiSeNet:
    torch.manual_seed(seed)
    net = BiSeNet(19)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    return net.eval()


@pytest.fixture(scope="module")
def parser_file(tmp_path_factory):
    net = _randomised()
    path = tmp_path_factory.mktemp("bisenet") / "79999_iter.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_state_dict_layout(parser_file):
    net, _ = parser_file
    state = net.state_dict()
    for key, shape in EXPECTED_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.startswith("sp.") or ".fc." in k or k.startswith("cp.resnet.fc") for k in state)
    assert len(state) == 191
    # 53.25 MB of float32, the size of the released 79999_iter.pth
    assert sum(v.numel() for v in state.values()) == 13_313_119


def test_strict_round_trip_through_factory(parser_file):
    net, path = parser_file
    parser = build_face_parser(path, size=64)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        got = parser(images)
        normalised = ((images + 1) / 2 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / \
            torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        expected, aux16, aux32 = net(normalised)  # the reference's three outputs
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert aux16.shape == aux32.shape == (2, 19, 64, 64)
    assert got.std() > 1e-3


def test_mismatch_and_missing_file_errors(parser_file, tmp_path, monkeypatch):
    net, _ = parser_file
    state = dict(net.state_dict())
    del state["cp.arm16.conv_atten.weight"]
    state["conv_out.conv_out.weight"] = torch.zeros(11, 256, 1, 1)  # an 11-class head
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        build_face_parser(tmp_path / "bad.pth")
    assert "cp.arm16.conv_atten.weight" in str(info.value)
    assert "conv_out.conv_out.weight" in str(info.value) and "(11, 256, 1, 1)" in str(info.value)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(MissingWeightError, match="79999_iter.pth"):
        build_face_parser()


@pytest.fixture(scope="module")
def parser(parser_file):
    net, _ = parser_file
    return FaceParser(net)  # default working size 512, like the reference


@pytest.mark.parametrize("size", [256, 64])
def test_output_shapes(parser, size):
    images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size)) * 2 - 1
    logits = parser(images)
    labels = parser.labels(images)
    assert logits.shape == (1, 19, size, size) and logits.dtype == torch.float32
    assert labels.shape == (1, size, size) and labels.dtype == torch.long
    assert int(labels.min()) >= 0 and int(labels.max()) <= 18
    assert torch.equal(labels, logits.argmax(1))


def test_frozen_and_differentiable(parser_file):
    net, _ = parser_file
    parser = FaceParser(net, size=32)
    parser.train()
    assert not any(m.training for m in parser.modules())
    assert not any(p.requires_grad for p in parser.parameters())
    assert set(parser.state_dict()) == {f"net.{k}" for k in net.state_dict()}  # mean / std are not saved
    images = (torch.rand(1, 3, 48, 48) * 2 - 1).requires_grad_()
    F.cross_entropy(parser(images), torch.zeros(1, 48, 48, dtype=torch.long)).backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        parser(torch.zeros(1, 1, 32, 32))


def test_class_tables():
    assert len(PARSER_CLASSES) == len(CELEBAMASK_CLASSES) == 19
    assert sorted(PARSER_CLASSES) == sorted(CELEBAMASK_CLASSES)
    assert sorted(CELEBAMASK_TO_PARSER) == list(range(19)) and sorted(PARSER_TO_CELEBAMASK) == list(range(19))
    assert [PARSER_CLASSES[i] for i in (0, 1, 2, 10, 13, 17, 18)] == \
        ["background", "skin", "l_brow", "nose", "l_lip", "hair", "hat"]
    assert [CELEBAMASK_CLASSES[i] for i in (0, 1, 2, 10, 13, 17, 18)] == \
        ["background", "skin", "nose", "mouth", "hair", "neck", "cloth"]
    for index, name in enumerate(CELEBAMASK_CLASSES):
        assert PARSER_CLASSES[CELEBAMASK_TO_PARSER[index]] == name
    with pytest.raises(ValueError, match=r"\[0, 18\]"):
        celebamask_to_parser(torch.tensor([19]))
    with pytest.raises(ValueError, match="integer"):
        parser_to_celebamask(torch.tensor([1.0]))


def test_mapping_round_trip_on_celebamask_samples(shared_dir):
    folder = shared_dir / "data/faces-real/celebamask-hq"
    masks = torch.stack([torch.from_numpy(np.array(Image.open(folder / f"{i}_mask.png"))) for i in range(4)])
    assert masks.shape == (4, 512, 512) and masks.dtype == torch.uint8 and int(masks.max()) <= 18
    parsed = celebamask_to_parser(masks)
    assert parsed.dtype == torch.uint8
    assert torch.equal(parser_to_celebamask(parsed), masks)
    for index, name in enumerate(CELEBAMASK_CLASSES):  # every pixel keeps its class name
        assert int((masks == index).sum()) == int((parsed == PARSER_CLASSES.index(name)).sum())
    nose = masks == CELEBAMASK_CLASSES.index("nose")
    assert nose.sum() > 4000 and torch.all(parsed[nose] == 10)
    # "l_" is the subject's left: l_eye lies on the image's right half, r_eye on the left half
    columns = torch.arange(512).float()
    for sample in parsed:
        l_eye_x = columns[(sample == PARSER_CLASSES.index("l_eye")).nonzero()[:, 1]].mean()
        r_eye_x = columns[(sample == PARSER_CLASSES.index("r_eye")).nonzero()[:, 1]].mean()
        assert l_eye_x > 256 > r_eye_x


@pytest.mark.cuda
@pytest.mark.usefixtures("no_tf32")
def test_parser_on_cuda_matches_cpu(parser_file):
    net, _ = parser_file
    parser = FaceParser(net, size=128)
    images = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        cpu = parser(images)
        gpu = FaceParser(_randomised(), size=128).cuda()(images.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-3)
