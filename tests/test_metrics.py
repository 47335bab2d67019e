"""Metrics against hand-computed values; collections leave out metrics whose weights are missing."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylegan_lightning.metrics import (
    LPIPS,
    MSSSIM,
    PSNR,
    SSIM,
    BitsPerPixel,
    IdentitySimilarity,
    LandmarkNME,
    LikelihoodBitsPerPixel,
    MeanSquaredError,
    ParsingMIoU,
    codec_metrics,
    inversion_metrics,
)


def test_bpp_from_known_byte_counts():
    metric = BitsPerPixel()
    metric.update([100, 50], 256 * 256)
    metric.update(torch.tensor([300]), torch.tensor([128 * 128]))
    expected = (800 / 65536 + 400 / 65536 + 2400 / 16384) / 3
    assert metric.compute().item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError):
        metric.update([10, 20], [100, 0])


def test_bpp_from_likelihoods():
    metric = LikelihoodBitsPerPixel()
    half = torch.full((2, 4, 8), 0.5)  # 32 symbols of 1 bit per image
    quarter = torch.full((2, 3), 0.25)  # 3 symbols of 2 bits per image
    metric.update({"y": half, "z": quarter}, 16)
    assert metric.compute().item() == pytest.approx((32 + 6) / 16)
    single = LikelihoodBitsPerPixel()
    single.update(half, 64)
    assert single.compute().item() == pytest.approx(0.5)


def test_mse_psnr_hand_values():
    preds, target = torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)
    target[1] = 0.5  # MSE 0.25
    mse, psnr = MeanSquaredError(), PSNR()
    mse.update(preds, target)
    psnr.update(preds, target)
    assert mse.compute().item() == pytest.approx((1 + 0.25) / 2)
    # peak = the [-1, 1] range: 10 log10(4 / mse), averaged over images
    assert psnr.compute().item() == pytest.approx((10 * math.log10(4) + 10 * math.log10(16)) / 2, rel=1e-6)


def test_ssim_of_constant_images_matches_formula():
    """For constant images a, b: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * range)^2."""
    a, b = 0.5, 0.0
    metric = SSIM()
    metric.update(torch.full((1, 3, 32, 32), a), torch.full((1, 3, 32, 32), b))
    c1 = (0.01 * 2.0) ** 2
    assert metric.compute().item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)
    same = SSIM()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    same.update(x, x)
    assert same.compute().item() == pytest.approx(1.0, abs=1e-5)


def test_ms_ssim_scales_and_identity():
    metric = MSSSIM()
    kernel, betas = metric.scales_for(64)
    assert kernel == 11 and len(betas) == 3 and sum(betas) == pytest.approx(1.0)
    assert metric.scales_for(256)[1] == pytest.approx((0.0448, 0.2856, 0.3001, 0.2363, 0.1333))
    assert len(metric.scales_for(12)[1]) == 1
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with pytest.warns(RuntimeWarning, match="3 of 5 scales") as caught:
        metric.update(x, x)
    assert caught[0].filename == __file__  # the caller's line, not torchmetrics' update wrapper
    assert metric.compute().item() == pytest.approx(1.0, abs=1e-4)
    noisy = MSSSIM()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        noisy.update((x + 0.5 * torch.randn_like(x)).clamp(-1, 1), x)
        tiny = MSSSIM()
        tiny.update(torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12))  # does not crash on tiny images
    assert 0 < noisy.compute().item() < 0.9


def test_parsing_miou_constructed_case():
    metric = ParsingMIoU(num_classes=19)
    predicted = torch.tensor([[[0, 0], [1, 1]]])
    labels = torch.tensor([[[0, 1], [1, 1]]])
    metric.update(predicted, labels)
    # class 0: TP 1, union 2 -> 1/2; class 1: TP 2, union 3 -> 2/3; absent classes do not count
    assert metric.compute().item() == pytest.approx((0.5 + 2 / 3) / 2)
    assert torch.isnan(metric.per_class_iou()[5])
    with pytest.raises(ValueError):
        metric.update(torch.tensor([[[19]]]), torch.tensor([[[0]]]))


class ArgmaxParser(nn.Module):
    """A 'parser' whose logits are one-hot of a fixed channel rule: label = (R > 0) + 2 * (G > 0)."""

    def forward(self, images):
        labels = (images[:, 0] > 0).long() + 2 * (images[:, 1] > 0).long()
        return F.one_hot(labels, 19).permute(0, 3, 1, 2).float()


def test_parsing_miou_with_parser_masks_and_mapping():
    images = torch.zeros(1, 3, 4, 4) - 1
    images[:, 0, :2] = 1  # top half label 1
    metric = ParsingMIoU(ArgmaxParser())
    metric.update(images, images)
    assert metric.compute().item() == pytest.approx(1.0)
    mapping = (torch.arange(19) + 1) % 19  # mask index i -> parser class i + 1
    masked = ParsingMIoU(ArgmaxParser(), target_mapping=mapping)
    masks = torch.zeros(1, 4, 4, dtype=torch.long)  # mapped to 1 everywhere
    masked.update(images, target_masks=masks)
    # predicted: top 8 px class 1, bottom 8 px class 0; truth: class 1 everywhere
    assert masked.compute().item() == pytest.approx((8 / 16 + 0) / 2)


def test_landmark_nme_constructed_case():
    reference = torch.zeros(3, 68, 2)
    reference[:, 45] = torch.tensor([10.0, 0.0])  # inter-ocular distance 10
    predicted = reference + torch.tensor([3.0, 4.0])  # every point off by 5 px
    predicted[2] = float("nan")  # no face found
    metric = LandmarkNME()
    metric.update(predicted, reference)
    assert metric.compute().item() == pytest.approx(0.5)
    assert metric.failure_rate().item() == pytest.approx(1 / 3)


def test_identity_similarity_and_network_distance():
    encoder = lambda x: F.normalize(x.flatten(1), dim=1)  # noqa: E731
    a = torch.tensor([[[[1.0, 0.0]]]])
    b = torch.tensor([[[[1.0, 1.0]]]])
    metric = IdentitySimilarity(encoder)
    metric.update(a, b)
    assert metric.compute().item() == pytest.approx(1 / math.sqrt(2))
    lpips = LPIPS(lambda x, y: (x - y).abs().flatten(1).mean(1))
    lpips.update(torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 2, 2))
    assert lpips.compute().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="non-finite"):
        lpips.update(torch.full((1, 3, 2, 2), float("nan")), torch.ones(1, 3, 2, 2))


def test_collections_leave_out_missing_weights_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN_LIGHTNING_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        collection = inversion_metrics(prefix="val/")
    messages = [str(w.message) for w in caught if "left out" in str(w.message)]
    assert len(messages) == 1
    assert [w.filename for w in caught if "left out" in str(w.message)] == [__file__]
    assert "alexnet-owt-7be5be79.pth" in messages[0] and "model_ir_se50.pth" in messages[0]
    assert set(collection.keys()) == {"val/l2", "val/psnr", "val/ssim", "val/ms_ssim"}
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collection.update(preds=x, target=x)
        values = collection.compute()
    assert values["val/l2"].item() == 0 and values["val/ssim"].item() == pytest.approx(1.0, abs=1e-5)
    from stylegan_lightning.weights import MissingWeightError

    with pytest.raises(MissingWeightError):
        inversion_metrics(strict=True)


def test_codec_collection_routes_keyword_arguments(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN_LIGHTNING_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    encoder = lambda x: F.normalize(x.flatten(1), dim=1)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        collection = codec_metrics(networks={"identity": encoder, "parser": ArgmaxParser()})
        x = torch.rand(2, 3, 32, 32) * 2 - 1
        collection.update(preds=x, target=x, num_bytes=[64, 32], num_pixels=32 * 32,
                          likelihoods=torch.full((2, 10), 0.5))
        values = collection.compute()
    assert values["bpp"].item() == pytest.approx((512 + 256) / 1024 / 2)
    assert values["bpp_likelihood"].item() == pytest.approx(10 / 1024)
    assert values["id_similarity"].item() == pytest.approx(1.0)
    assert values["parsing_miou"].item() == pytest.approx(1.0)
