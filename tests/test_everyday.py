"""Everyday behaviour around training runs and the environment: tables that fit a terminal, exports that never
replace another run's model silently, dev runs that leave nothing behind, a checkpoint of the last step, and the
environment working for any import order."""

from __future__ import annotations

import subprocess
import sys
import warnings

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from stylegan_lightning.cli import save_final_checkpoint
from stylegan_lightning.training import ToolkitModule
from stylegan_lightning.utils import format_table

pytestmark = pytest.mark.usefixtures("single_thread")


class Tiny(ToolkitModule):
    """One linear layer whose export writes its weight."""

    def __init__(self, export_path: str | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def export(self, path: str) -> None:
        torch.save({"weight": self.layer.weight.detach().clone()}, path)

    def on_train_end(self) -> None:
        self.export_at_fit_end()


def fit(tmp_path, module: Tiny, **trainer_options) -> pl.Trainer:
    options = dict(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, default_root_dir=tmp_path)
    trainer = pl.Trainer(**{**options, **trainer_options})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2))
    return trainer


def test_tables_wrap_to_the_width_asked_for():
    rows = [["a" * 30, "b " * 100], ["short", "value"]]
    table = format_table(rows, ["name", "what"], max_width=60)
    assert max(len(line) for line in table.splitlines()) <= 60
    assert "".join(table.split()).count("b") == 100  # wrapped, nothing cut


def test_an_export_keeps_the_file_it_would_replace(tmp_path, capsys):
    target = tmp_path / "model.pt"
    target.write_bytes(b"another run's model")
    fit(tmp_path, Tiny(str(target)), enable_checkpointing=False)
    assert (tmp_path / "model.previous.pt").read_bytes() == b"another run's model"
    assert "weight" in torch.load(target, weights_only=True)
    assert "kept it as" in capsys.readouterr().out


def test_a_dev_run_writes_no_export(tmp_path):
    fit(tmp_path, Tiny(str(tmp_path / "model.pt")), fast_dev_run=True)
    assert not (tmp_path / "model.pt").exists() and not list(tmp_path.rglob("*.ckpt"))


def test_the_last_step_gets_a_checkpoint(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    every_two = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_on_train_epoch_end=False)
    trainer = fit(tmp_path, Tiny(), max_steps=3, callbacks=[every_two])  # the callback wrote step 2 only
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["epoch=0-step=2.ckpt"]
    path = save_final_checkpoint(trainer)
    assert path is not None and path.name == "last-step=3.ckpt" and path.is_file()
    assert torch.load(path, weights_only=True)["global_step"] == 3
    assert save_final_checkpoint(fit(tmp_path / "dev", Tiny(), fast_dev_run=True)) is None


@pytest.mark.parametrize("first", ["lightning.pytorch", "torchmetrics", "compressai", "torchvision.ops"])
def test_any_import_order_works_in_the_environment(first):
    """The environment's import hook makes torchvision usable whichever package a script imports first."""
    result = subprocess.run([sys.executable, "-c", f"import {first}; import torchvision.ops; print('ok')"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
