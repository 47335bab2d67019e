"""Identity nets: IR-SE50 layout and loading, MobileFaceNet on real faces, the ONNX backend, fixed face crops.

``pytest -s`` prints the measured same-person / different-person similarities (module-level ``RESULTS``).
"""

from __future__ import annotations

import collections
import copy
import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import stylegan_lightning  # noqa: F401  (before anything that might import torchvision)
from stylegan_lightning.nets import (ARCFACE_112x112, FFHQ_FIVE_POINTS, PSP_ID_BOX, SPHEREFACE_96x112, BoxCrop,
                                     IdentityEncoder, SimilarityCrop, build_identity_encoder, ir_se50,
                                     load_mobilefacenet, similarity_transform)
from stylegan_lightning.nets.identity import arcface_crop
from stylegan_lightning.nets.mobilefacenet import MobileFaceNet
from stylegan_lightning.serialization import CheckpointError
from stylegan_lightning.weights import ENV_VAR, MissingWeightError

RESULTS: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_results():
    yield
    if RESULTS:
        print("\n\nidentity verification (cosine similarity of unit embeddings):")
        for name, row in RESULTS.items():
            print(f"  {name}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in row.items()))


def _image(path) -> torch.Tensor:
    """An RGB file as a [3, H, W] tensor in [-1, 1]."""
    array = np.array(Image.open(path).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1


def _randomise_norm_stats(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and PReLU slopes, so loading them actually matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                if module.affine:
                    module.weight.uniform_(0.5, 1.5, generator=generator)
                    module.bias.normal_(0, 0.1, generator=generator)
            elif isinstance(module, torch.nn.PReLU):
                module.weight.uniform_(0.1, 0.3, generator=generator)
    return net.eval()


# --------------------------------------------------------------------------------------------------- IR-SE50
@pytest.fixture(scope="module")
def irse_file(tmp_path_factory):
    """A randomly initialised IR-SE50 saved as a raw state dict (the format of model_ir_se50.pth)."""
    torch.manual_seed(0)
    net = _randomise_norm_stats(ir_se50())
    path = tmp_path_factory.mktemp("irse") / "model_ir_se50.pth"
    torch.save(net.state_dict(), path)
    return net, path


EXPECTED_IRSE_SHAPES = {
    "input_layer.0.weight": (64, 3, 3, 3),
    "input_layer.1.running_var": (64,),
    "input_layer.2.weight": (64,),
    "body.0.res_layer.0.weight": (64,),
    "body.0.res_layer.1.weight": (64, 64, 3, 3),
    "body.0.res_layer.2.weight": (64,),
    "body.0.res_layer.3.weight": (64, 64, 3, 3),
    "body.0.res_layer.5.fc1.weight": (4, 64, 1, 1),
    "body.0.res_layer.5.fc2.weight": (64, 4, 1, 1),
    "body.3.shortcut_layer.0.weight": (128, 64, 1, 1),
    "body.3.shortcut_layer.1.running_mean": (128,),
    "body.3.res_layer.3.weight": (128, 128, 3, 3),
    "body.7.shortcut_layer.0.weight": (256, 128, 1, 1),
    "body.21.shortcut_layer.0.weight": (512, 256, 1, 1),
    "body.23.res_layer.5.fc1.weight": (32, 512, 1, 1),
    "body.23.res_layer.5.fc2.weight": (512, 32, 1, 1),
    "output_layer.0.weight": (512,),
    "output_layer.3.weight": (512, 25088),
    "output_layer.3.bias": (512,),
    "output_layer.4.weight": (512,),
    "output_layer.4.running_mean": (512,),
}


def test_irse_state_dict_layout(irse_file):
    net, _ = irse_file
    state = net.state_dict()
    for key, shape in EXPECTED_IRSE_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    assert len(net.body) == 24
    # identity shortcuts (in == depth) are parameter-free MaxPool2d(1, stride): no shortcut keys at all
    assert not any(k.startswith("body.0.shortcut_layer") or k.startswith("body.4.shortcut_layer") for k in state)
    assert sum(p.numel() for p in net.parameters()) == 43_797_696
    assert len(state) == 397


def test_irse_body_feature_pyramid(irse_file):
    """pSp takes c1 / c2 / c3 from body[6] / body[20] / body[23]: 128, 256, 512 channels at 1/4, 1/8, 1/16."""
    net, _ = irse_file
    x = torch.randn(1, 3, 64, 64)
    shapes = {}
    with torch.no_grad():
        feature = net.input_layer(x)
        for index, unit in enumerate(net.body):
            feature = unit(feature)
            shapes[index] = tuple(feature.shape[1:])
    assert shapes[6] == (128, 16, 16)
    assert shapes[20] == (256, 8, 8)
    assert shapes[23] == (512, 4, 4)


def test_arcface_strict_round_trip(irse_file):
    """Random IR-SE50 weights saved as a raw state dict, loaded through the factory: the embeddings equal pSp's
    ID-loss path (slice rows 35:223, cols 32:220, AdaptiveAvgPool2d(112), IR-SE50) with the original net."""
    net, path = irse_file
    encoder = build_identity_encoder("arcface", path)
    images = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        got = encoder(images)
        expected = net(F.adaptive_avg_pool2d(images[:, :, 35:223, 32:220], 112))
    assert got.shape == (2, 512) and encoder.embedding_dim == 512 and encoder.differentiable
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.norm(dim=1), torch.ones(2), rtol=0, atol=1e-5)
    assert (got[0] - got[1]).abs().max() > 1e-3  # different images, different embeddings


def test_arcface_mismatched_state_dict_names_keys(irse_file, tmp_path):
    net, _ = irse_file
    state = dict(net.state_dict())
    del state["body.5.res_layer.5.fc1.weight"]
    state["output_layer.3.weight"] = torch.zeros(512, 100)
    state["extra.head.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        build_identity_encoder("arcface", path)
    message = str(info.value)
    assert "body.5.res_layer.5.fc1.weight" in message and "missing" in message
    assert "output_layer.3.weight" in message and "(512, 100)" in message
    assert "extra.head.weight" in message and "unexpected" in message


@pytest.mark.parametrize("backend, filename", [("arcface", "model_ir_se50.pth"), ("mobilefacenet", "068.ckpt"),
                                               ("curricularface", "CurricularFace_Backbone.pth"),
                                               ("onnx", "w600k_r50.onnx")])
def test_missing_weights_name_the_file(backend, filename, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "empty"))
    with pytest.raises(MissingWeightError) as info:
        build_identity_encoder(backend)
    assert filename in str(info.value) and "Nothing is downloaded" in str(info.value)
    with pytest.raises(MissingWeightError) as info:
        build_identity_encoder(backend, tmp_path / "elsewhere.bin")
    assert "elsewhere.bin" in str(info.value)


@pytest.mark.parametrize("affine", [True, False])
def test_curricularface_ir101_layout_round_trip(affine, tmp_path):
    """A CurricularFace-layout file (IR-101, plain IR units, DataParallel prefix) loads strictly through the
    factory, whichever the last BatchNorm1d is; the embeddings are the net's on the ArcFace-template crop."""
    from stylegan_lightning.nets.alignment import ARCFACE_112x112
    from stylegan_lightning.nets.irse import ir101

    torch.manual_seed(0)
    net = ir101(affine=affine).eval()
    assert len(net.body) == 49 and not any("fc1" in k for k in net.state_dict())  # 3 + 13 + 30 + 3 IR units
    path = tmp_path / "CurricularFace_Backbone.pth"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, path)
    encoder = build_identity_encoder("curricularface", path)
    assert encoder.name == "curricularface-ir101" and encoder.embedding_dim == 512 and encoder.differentiable
    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        got = encoder(images)
        expected = net(SimilarityCrop("ffhq", ARCFACE_112x112, (112, 112))(images))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert (got[0] - got[1]).abs().max() > 1e-3


def test_unknown_backend_and_bad_images():
    with pytest.raises(ValueError, match="mobilefacenet"):
        build_identity_encoder("facenet")
    encoder = IdentityEncoder(MobileFaceNet(), SimilarityCrop("ffhq", SPHEREFACE_96x112, (112, 96)), 128)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        encoder(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="floating"):
        encoder(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


# --------------------------------------------------------------------------------------------------- geometry
def test_similarity_transform_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 1, (5, 2))
    angle, scale, shift = 0.3, 2.5, np.array([4.0, -1.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    target = source @ (scale * rotation).T + shift
    matrix = similarity_transform(source, target)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-10)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-10)
    mirrored = target * np.array([-1.0, 1.0])  # a reflection is never fitted: determinant stays positive
    assert np.linalg.det(similarity_transform(source, mirrored)[:, :2]) > 0


def test_psp_box_at_256_is_slicing_and_area_resize():
    images = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    crop = BoxCrop(PSP_ID_BOX, (112, 112))
    expected = F.interpolate(images[:, :, 35:223, 32:220], size=(112, 112), mode="area")
    assert crop.pixel_box(256, 256) == (35.0, 223.0, 32.0, 220.0)
    torch.testing.assert_close(crop(images), expected, rtol=0, atol=1e-6)
    assert crop.pixel_box(1024, 1024) == (140.0, 892.0, 128.0, 880.0)


def test_measured_ffhq_template_agrees_with_the_psp_box():
    """Two independent references: pSp's box puts the measured FFHQ landmarks within 3 px of ArcFace's template."""
    mapped = BoxCrop(PSP_ID_BOX, (112, 112)).map_points(FFHQ_FIVE_POINTS)
    error = np.abs(mapped - np.array(ARCFACE_112x112))
    assert error.max() < 3.0, mapped
    assert error.mean() < 1.5


def _blob_images(size: int, points) -> torch.Tensor:
    """One image per landmark: a Gaussian blob (sigma 1.5 % of the size) centred on that fractional point."""
    coords = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    sigma = 0.015
    blobs = [torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)) for x, y in points]
    return torch.stack(blobs)[:, None].expand(-1, 3, -1, -1).float()


@pytest.mark.parametrize("size", [256, 1024])
@pytest.mark.parametrize("template, output", [(SPHEREFACE_96x112, (112, 96)), (ARCFACE_112x112, (112, 112))])
def test_similarity_crop_moves_landmarks_onto_the_template(size, template, output):
    """Warp blobs drawn at the FFHQ landmarks; their centroids land on the least-squares template fit (OpenCV pixel
    convention) to a tenth of a pixel, at any input resolution."""
    crops = SimilarityCrop("ffhq", template, output)(_blob_images(size, FFHQ_FIVE_POINTS))[:, 0].double()
    ys, xs = torch.meshgrid(torch.arange(output[0]).double(), torch.arange(output[1]).double(), indexing="ij")
    weights = crops / crops.sum((1, 2), keepdim=True)
    centroids = torch.stack([(weights * xs).sum((1, 2)), (weights * ys).sum((1, 2))], 1).numpy()
    source = np.array(FFHQ_FIVE_POINTS) * 256  # the fit is scale-free: any reference size gives the same points
    fitted = similarity_transform(source, np.array(template) + 0.5)
    expected = source @ fitted[:, :2].T + fitted[:, 2] - 0.5
    np.testing.assert_allclose(centroids, expected, atol=0.1)
    assert np.abs(expected - np.array(template)).max() < 3.0  # the average FFHQ face fits the template well


def test_crops_agree_across_resolutions(shared_dir):
    """The crop of a 1024-px (or 320-px) version of a face equals the crop of the 256-px original."""
    images = torch.stack([_image(shared_dir / "data/faces-real/ffhq/00000.jpg"),
                          _image(shared_dir / "data/faces-real/celebahq/1260.jpg")])
    crops = [BoxCrop(PSP_ID_BOX, (112, 112)), SimilarityCrop("ffhq", SPHEREFACE_96x112, (112, 96)),
             SimilarityCrop("ffhq", ARCFACE_112x112, (112, 112))]
    for resolution in (1024, 320):  # 320: the pSp box is not on whole pixels -> resampling path
        upsampled = F.interpolate(images, size=resolution, mode="bilinear", align_corners=False)
        for crop in crops:
            low, high = crop(images), crop(upsampled)
            difference = (low - high).abs()
            assert difference.mean() < 0.015, (resolution, crop, difference.mean())
            assert difference.max() < 0.3, (resolution, crop, difference.max())


def test_other_alignment_gives_similarity_crop():
    crop = arcface_crop("celeba-64")
    assert isinstance(crop, SimilarityCrop) and crop.output_size == (112, 112)
    with pytest.raises(ValueError, match="known"):
        arcface_crop("lfw")


# --------------------------------------------------------------------------------------------------- MobileFaceNet
@pytest.fixture(scope="module")
def mobilefacenet_path():
    path = Path(__file__).resolve().parents[1].parent / "shared/weights/mobilefacenet/068.ckpt"
    if not path.is_file():
        pytest.skip("../shared/weights/mobilefacenet/068.ckpt is not available")
    return path


def test_mobilefacenet_loads_real_weights_strictly(mobilefacenet_path, tmp_path):
    net = load_mobilefacenet(mobilefacenet_path)
    assert sum(p.numel() for p in net.parameters()) == 999_552
    state = net.state_dict()
    assert tuple(state["linear7.conv.weight"].shape) == (512, 1, 7, 6)
    assert tuple(state["blocks.12.conv.0.weight"].shape) == (512, 128, 1, 1)
    # files without BatchNorm counters (older PyTorch) still load; anything else missing is named
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, tmp_path / "old.ckpt")
    old = load_mobilefacenet(tmp_path / "old.ckpt")
    torch.testing.assert_close(old.state_dict()["conv1.conv.weight"], state["conv1.conv.weight"])
    torch.save({"epoch": 1, "net_state_dict": {k: v for k, v in state.items() if k != "conv1.prelu.weight"}},
               tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match=r"missing: conv1\.prelu\.weight"):
        load_mobilefacenet(tmp_path / "bad.ckpt")


@pytest.fixture(scope="module")
def mobilefacenet(mobilefacenet_path):
    return build_identity_encoder("mobilefacenet", mobilefacenet_path)


def test_encoder_is_frozen_unit_norm_and_differentiable(mobilefacenet):
    encoder = mobilefacenet
    assert encoder.embedding_dim == 128 and encoder.differentiable
    encoder.train()
    assert not encoder.training and not any(m.training for m in encoder.modules())
    assert not any(p.requires_grad for p in encoder.parameters())
    images = (torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_()
    embeddings = encoder(images)
    assert embeddings.dtype == torch.float32 and embeddings.shape == (2, 128)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(2), rtol=0, atol=1e-5)
    (1 - encoder.similarity(embeddings, embeddings.flip(0).detach())).sum().backward()
    grad = images.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # only the cropped face region receives gradient: the corners of the image are outside the crop
    assert grad[..., :8, :8].abs().sum() == 0 and grad[..., 48:80, 48:80].abs().sum() > 0


def test_embeddings_do_not_depend_on_resolution(mobilefacenet, shared_dir):
    """The same FFHQ faces at 1024 px (upsampled) or 128 px (downsampled) embed like the 256-px originals."""
    folder = shared_dir / "data/faces-real/ffhq"
    images = torch.stack([_image(folder / f"0000{i}.jpg") for i in range(3)])
    with torch.no_grad():
        reference = mobilefacenet(images)
        for size, floor in ((1024, 0.999), (128, 0.99)):
            resized = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=size < 256)
            similarity = IdentityEncoder.similarity(mobilefacenet(resized.clamp(-1, 1)), reference)
            assert similarity.min() > floor, (size, similarity)


def test_arcface_gradient_reaches_images(irse_file):
    net, _ = irse_file
    encoder = IdentityEncoder(net, arcface_crop(), 512)
    images = (torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(2)) * 2 - 1).requires_grad_()
    target = F.normalize(torch.randn(1, 512, generator=torch.Generator().manual_seed(3)), dim=1)
    (1 - encoder.similarity(encoder(images), target)).sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad[..., 40:220, 40:220].abs().sum() > 0
    assert images.grad[..., :30, :].abs().sum() == 0  # rows above the pSp box (35:223)


def _roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a same-person pair scores above a different-person pair (ties count half)."""
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + 0.5 * ties)


def _pair_scores(embeddings: torch.Tensor, identities: list[str]) -> tuple[np.ndarray, np.ndarray]:
    similarity = (embeddings @ embeddings.T).numpy()
    upper = np.triu_indices(len(identities), 1)
    ids = np.array(identities)
    same = (ids[:, None] == ids[None, :])[upper]
    return similarity[upper][same], similarity[upper][~same]


def _embed(encoder, images: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([encoder(images[i:i + chunk]) for i in range(0, len(images), chunk)])


def _record(name: str, same: np.ndarray, different: np.ndarray) -> float:
    auc = _roc_auc(same, different)
    RESULTS[name] = {"same_pairs": len(same), "different_pairs": len(different), "mean_same": float(same.mean()),
                     "mean_different": float(different.mean()), "auc": auc}
    print(f"\n{name}: {RESULTS[name]}")
    return auc


def test_mobilefacenet_separates_identities_celebahq(mobilefacenet, shared_dir):
    """56 real CelebA-HQ faces (FFHQ-style aligned, 256 px): the two identities with 2 images give the same-person
    pairs, all other pairs are different people."""
    root = shared_dir / "data/faces-real"
    with open(root / "celebahq_attributes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    counts = collections.Counter(row["celeba_identity"] for row in rows)
    assert sorted(k for k, n in counts.items() if n >= 2) == ["3705", "59"]
    images = torch.stack([_image(root / row["path"]) for row in rows])
    same, different = _pair_scores(_embed(mobilefacenet, images), [row["celeba_identity"] for row in rows])
    auc = _record("celebahq (56 images, FFHQ alignment)", same, different)
    assert len(same) == 2 and len(different) == 56 * 55 // 2 - 2
    assert same.mean() > different.mean() + 0.4
    assert same.min() > 0.5 and abs(different.mean()) < 0.1
    assert auc > 0.99


def test_mobilefacenet_separates_identities_celeba64(mobilefacenet_path, shared_dir):
    """More same-person pairs: 80 CelebA identities x 2 images from the 64-px CelebA set (its own alignment)."""
    identity_of = dict(line.split() for line in (shared_dir / "data/celeba-64_identity.txt").read_text().splitlines()
                       if line.strip())
    by_identity = collections.defaultdict(list)
    with zipfile.ZipFile(shared_dir / "data/celeba-64.zip") as archive:
        for name in sorted(archive.namelist()):
            by_identity[identity_of[name]].append(name)
        chosen = [k for k in sorted(by_identity, key=int) if len(by_identity[k]) >= 2][:80]
        names = [name for k in chosen for name in by_identity[k][:2]]
        images = torch.stack([_image(io.BytesIO(archive.read(name))) for name in names])
    encoder = build_identity_encoder("mobilefacenet", mobilefacenet_path, alignment="celeba-64")
    same, different = _pair_scores(_embed(encoder, images), [identity_of[name] for name in names])
    auc = _record("celeba-64 (80 identities x 2, celeba-64 alignment)", same, different)
    assert len(same) == 80
    assert same.mean() > different.mean() + 0.3
    assert auc > 0.9


# --------------------------------------------------------------------------------------------------- ONNX
class _TinyFaceNet(torch.nn.Module):
    """A small conv net standing in for an ArcFace ONNX model (optionally normalising inside, like MXNet exports)."""

    def __init__(self, normalise_inside: bool = False):
        super().__init__()
        self.normalise_inside = normalise_inside
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.head = torch.nn.Linear(8 * 4 * 4, 16)

    def forward(self, x):
        if self.normalise_inside:
            x = (x - 127.5) * 0.0078125
        x = F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        return self.head(x.flatten(1))


def _export(net: torch.nn.Module, path, dynamic_batch: bool) -> None:
    kwargs = dict(input_names=["data"], output_names=["fc1"], opset_version=17)
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"data": {0: "batch"}, "fc1": {0: "batch"}}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (torch.randn(1, 3, 112, 112),), str(path), dynamo=False, **kwargs)
        except Exception as error:  # pragma: no cover - exporter unavailable
            pytest.skip(f"torch.onnx.export (TorchScript exporter) unavailable: {error}")


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    folder = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    plain, inside = _TinyFaceNet().eval(), _TinyFaceNet(normalise_inside=True).eval()
    _export(plain, folder / "plain.onnx", dynamic_batch=True)
    _export(inside, folder / "inside.onnx", dynamic_batch=False)  # fixed batch 1
    return {"plain": (plain, folder / "plain.onnx"), "inside": (inside, folder / "inside.onnx")}


def _faces(n: int, size: int = 160, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_onnx_backend_matches_torch_reference(onnx_models):
    net, path = onnx_models["plain"]
    encoder = build_identity_encoder("onnx", path)
    assert not encoder.differentiable and encoder.embedding_dim == 16
    assert (encoder.net.input_mean, encoder.net.input_std) == (127.5, 127.5) and encoder.net.batch_size is None
    images = _faces(5)
    crops = SimilarityCrop("ffhq", ARCFACE_112x112, (112, 112))(images)
    with torch.no_grad():
        expected = F.normalize(net(crops), dim=1)  # (pixel - 127.5) / 127.5 of a [-1, 1] image is the image itself
        got = encoder(images)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert got.device == images.device and not got.requires_grad


def test_onnx_backend_inside_normalisation_and_fixed_batch(onnx_models):
    net, path = onnx_models["inside"]
    encoder = build_identity_encoder("onnx", path)
    assert (encoder.net.input_mean, encoder.net.input_std) == (0.0, 1.0) and encoder.net.batch_size == 1
    images = _faces(3, size=256, seed=1)
    crops = SimilarityCrop("ffhq", ARCFACE_112x112, (112, 112))(images)
    with torch.no_grad():
        expected = F.normalize(net((crops + 1) * 127.5), dim=1)  # raw pixels 0..255 go in
        got = encoder(images)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_onnx_backend_is_not_differentiable_and_copies(onnx_models):
    _, path = onnx_models["plain"]
    encoder = build_identity_encoder("onnx", path)
    images = _faces(2).requires_grad_()
    with pytest.raises(RuntimeError, match="not differentiable"):
        encoder(images)
    with torch.no_grad():
        reference = encoder(images)
    clone = copy.deepcopy(encoder)  # onnxruntime sessions are reopened, not copied
    torch.testing.assert_close(clone(images.detach()), reference, rtol=0, atol=0)


def test_onnx_backend_rejects_a_corrupt_file(tmp_path):
    pytest.importorskip("onnxruntime")
    path = tmp_path / "w600k_r50.onnx"
    path.write_bytes(b"not an onnx model" * 10)
    with pytest.raises(CheckpointError, match="w600k_r50.onnx"):
        build_identity_encoder("onnx", path)


@pytest.mark.cuda
def test_encoders_on_cuda_match_cpu(mobilefacenet, onnx_models):
    images = _faces(2, size=256, seed=4)
    with torch.no_grad():
        cpu = mobilefacenet(images)
        gpu = copy.deepcopy(mobilefacenet).cuda()(images.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-3)
    onnx = build_identity_encoder("onnx", onnx_models["plain"][1])
    with torch.no_grad():
        out = onnx(images.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), onnx(images), rtol=0, atol=1e-4)
