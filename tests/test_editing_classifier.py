"""Attribute classifier: network, LightningModule training on real sample faces, export / load, configs."""

from __future__ import annotations

import pickle
from pathlib import Path

import stylegan_lightning  # noqa: F401  (first: it must precede anything that may import torchvision)
import lightning.pytorch as pl
import pytest
import torch

from stylegan_lightning.data import FaceDataModule
from stylegan_lightning.editing import (AttributeClassifier, AttributeClassifierModule, export_classifier,
                                        load_attribute_classifier)
from stylegan_lightning.serialization import CheckpointError, UnsafeCheckpointError

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples"
ATTRIBUTES = ["Smiling", "Male", "Young", "Eyeglasses", "Wearing_Lipstick"]


def _trainer(**kwargs) -> pl.Trainer:
    options = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0)
    return pl.Trainer(**{**options, **kwargs})


@torch.no_grad()
def _mean_loss(module: AttributeClassifierModule, datamodule: FaceDataModule) -> float:
    """Eval-mode loss over the (unflipped) training images."""
    module.eval()
    dataset = datamodule.train_dataset
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    targets = torch.stack([dataset[i]["attributes"] for i in range(len(dataset))])
    loss = module._losses({"image": images, "attributes": targets})[0]
    module.train()
    return float(loss)


@pytest.fixture(scope="module")
def trained():
    """100 training steps on the 12 + 4 CelebA-HQ sample faces at 32x32."""
    pl.seed_everything(0, verbose=False)
    datamodule = FaceDataModule(str(SAMPLES / "celebahq"), resolution=32,
                                attributes=str(SAMPLES / "celebahq_attributes.csv"),
                                attribute_names=ATTRIBUTES, split_fractions=(0.75, 0.25, 0.0), batch_size=4)
    datamodule.setup("fit")
    module = AttributeClassifierModule(ATTRIBUTES, resolution=32, width=8, max_width=32, lr=3e-3)
    before = _mean_loss(module, datamodule)
    trainer = _trainer(max_steps=100, check_val_every_n_epoch=10)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer, datamodule, before, _mean_loss(module, datamodule)


def test_classifier_network_shapes_and_outputs():
    torch.manual_seed(0)
    classifier = AttributeClassifier(3, resolution=16, width=4, max_width=8,
                                     output_kinds=["binary", "binary", "regression"],
                                     attribute_names=["smile", "glasses", "age"], target_offsets=[0, 0, 40],
                                     target_scales=[1, 1, 20]).eval()
    assert len(classifier.stages) == 2  # 16 -> 8 -> 4
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    raw = classifier(images)
    assert raw.shape == (2, 3)
    values = classifier.predict(images)
    assert torch.allclose(values[:, :2], torch.sigmoid(raw[:, :2]))
    assert torch.allclose(values[:, 2], raw[:, 2] * 20 + 40)
    large = torch.nn.functional.interpolate(images, size=64, mode="nearest")
    assert classifier.predict(large).shape == (2, 3)  # any size is resized
    with pytest.raises(ValueError, match=r"\[B, 3, 16, 16\]"):
        classifier(large)
    with pytest.raises(ValueError, match="power of two"):
        AttributeClassifier(1, resolution=48)
    with pytest.raises(ValueError, match="output_kinds"):
        AttributeClassifier(2, output_kinds=["binary", "ordinal"])


def test_module_training_loss_goes_down(trained):
    module, trainer, _, before, after = trained
    assert trainer.global_step == 100
    assert before > 0.6 and after < 0.5 * before, (before, after)
    metrics = trainer.callback_metrics
    for name in ATTRIBUTES:
        assert 0.0 <= float(metrics[f"val/acc_{name}"]) <= 1.0
        assert 0.0 <= float(metrics[f"val/balanced_acc_{name}"]) <= 1.0
    assert "val/acc_mean" in metrics and "train/loss" in metrics and "val/loss" in metrics
    assert module.hparams.attribute_names == ATTRIBUTES  # save_hyperparameters


def test_export_and_checkpoint_round_trip(trained, tmp_path):
    module, trainer, datamodule, _, _ = trained
    module.eval()
    images = torch.stack([datamodule.val_dataset[i]["image"] for i in range(4)])
    expected = module(images)
    export_classifier(module, tmp_path / "classifier.pt")
    loaded = load_attribute_classifier(tmp_path / "classifier.pt")
    assert loaded.attribute_names == ATTRIBUTES and not loaded.training
    assert torch.allclose(loaded.predict(images), expected, atol=1e-6)
    content = torch.load(tmp_path / "classifier.pt", weights_only=True)
    assert set(content) >= {"state_dict", "config", "attribute_names"}
    trainer.save_checkpoint(tmp_path / "last.ckpt")  # a Lightning checkpoint also loads, safely
    assert torch.allclose(load_attribute_classifier(tmp_path / "last.ckpt").predict(images), expected, atol=1e-6)

    content["state_dict"].pop("head.bias")
    torch.save(content, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="head.bias"):
        load_attribute_classifier(tmp_path / "broken.pt")
    with open(tmp_path / "evil.pt", "wb") as handle:
        pickle.dump({"state_dict": {}, "config": Path("x")}, handle, protocol=2)
    with pytest.raises(UnsafeCheckpointError):
        load_attribute_classifier(tmp_path / "evil.pt")


class _Synthetic(torch.utils.data.Dataset):
    """Images whose brightness sets a binary label and a regression value (30 + 20 * brightness)."""

    def __init__(self, n: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.brightness = torch.rand(n, generator=generator) * 2 - 1
        self.noise = 0.1 * torch.randn(n, 3, 16, 16, generator=generator)

    def __len__(self):
        return len(self.brightness)

    def __getitem__(self, i):
        b = self.brightness[i]
        return {"image": (self.noise[i] + b).clamp(-1, 1),
                "attributes": torch.stack([(b > 0).float(), 30 + 20 * b])}


def test_regression_outputs_and_metrics():
    pl.seed_everything(0, verbose=False)
    module = AttributeClassifierModule(["bright", "age"], output_kinds=["binary", "regression"], resolution=16, width=4,
                                       max_width=8, target_offsets=[0.0, 30.0], target_scales=[1.0, 20.0], lr=1e-2)
    loaders = [torch.utils.data.DataLoader(_Synthetic(n, seed), batch_size=16, shuffle=shuffle)
               for n, seed, shuffle in ((64, 0, True), (32, 1, False))]
    trainer = _trainer(max_steps=60, check_val_every_n_epoch=15)
    trainer.fit(module, *loaders)
    metrics = trainer.callback_metrics
    assert float(metrics["val/acc_bright"]) > 0.8
    assert float(metrics["val/mae_age"]) < 6.0  # years; the values spread over 10..50
    result = trainer.test(module, loaders[1], verbose=False)[0]
    assert result["test/acc_bright"] == pytest.approx(float(metrics["val/acc_bright"]), abs=1e-6)
    with pytest.raises(ValueError, match="attribute_names"):
        module._losses({"image": torch.zeros(2, 3, 16, 16), "attributes": torch.zeros(2, 3)})


def _cli(config: Path):
    from lightning.pytorch.cli import LightningCLI

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", ["stylegan-lightning"])  # parse `args` only, not pytest's command line
        patch.setenv("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # Lightning's own use of jsonargparse
        return LightningCLI(None, None, run=False, args=["--config", str(config)], save_config_callback=None)


def test_demo_config_trains_on_celeba64(shared_dir, monkeypatch, tmp_path):
    """configs/demo/classifier.yaml builds (LightningCLI format), its data feeds the module, and the classifier is
    exported at the end of fit (here into tmp_path, not over the demo's outputs/demo/classifier.pt)."""
    monkeypatch.chdir(REPO)
    cli = _cli(REPO / "configs" / "demo" / "classifier.yaml")
    assert cli.model.hparams.export_path == "outputs/demo/classifier.pt"
    cli.model.hparams.export_path = str(tmp_path / "classifier.pt")
    assert isinstance(cli.model, AttributeClassifierModule) and isinstance(cli.datamodule, FaceDataModule)
    assert cli.model.attribute_names == cli.datamodule.hparams.attribute_names
    options = {k: v for k, v in cli.datamodule.hparams.items() if not k.startswith("_")}
    datamodule = FaceDataModule(**{**options, "max_items": 64, "batch_size": 8})
    trainer = _trainer(max_steps=2, limit_val_batches=1)
    trainer.fit(cli.model, datamodule=datamodule)
    result = trainer.validate(cli.model, datamodule=datamodule, verbose=False)[0]
    assert trainer.global_step == 2 and result["val/loss"] > 0
    assert {f"val/acc_{name}" for name in cli.model.attribute_names} <= set(result)
    exported = load_attribute_classifier(tmp_path / "classifier.pt")
    assert exported.attribute_names == cli.model.attribute_names


def test_full_config_builds(monkeypatch):
    monkeypatch.chdir(REPO)
    cli = _cli(REPO / "configs" / "classifier.yaml")
    assert isinstance(cli.model, AttributeClassifierModule) and len(cli.model.attribute_names) == 40
    assert cli.model.attribute_names == cli.datamodule.hparams.attribute_names
