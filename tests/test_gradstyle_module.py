"""GradStyleModule: a short fit with the discriminator (steps counted per batch), the discriminator taken from the
generator file, learning beyond the e4e base, ``--method gradstyle`` in `invert` / `edit`, and the EncoderModule
export that provides the e4e file."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_lightning.cli import main
from stylegan_lightning.data import SyntheticDataModule
from stylegan_lightning.editing import Direction
from stylegan_lightning.encoders import load_e4e, load_encoder
from stylegan_lightning.encoders.module import EncoderModule
from stylegan_lightning.gradstyle import GradStyleModule
from stylegan_lightning.inversion import INVERSION_METHODS, load_inversion_model, load_latents, read_images
from stylegan_lightning.stylegan2 import Discriminator, FrozenGenerator, Generator, save_generator

pytestmark = pytest.mark.usefixtures("single_thread")

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "ffhq"
# refinement at 8 and 16 px: the 32 x 32 aligner (1024 tokens) costs seconds per batch on CPU
SMALL = dict(refine_layers=[2, 3], aligner_head_dim=16, aligner_heads=2, lpips_lambda=0.0, id_lambda=0.0,
             image_log_every=0)


def _trainer(root, max_steps, **kwargs):
    return pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(root), num_sanity_val_steps=0, **kwargs)


def _generator(size: int = 32) -> Generator:
    torch.manual_seed(0)
    return Generator(size, style_dim=32, n_mlp=2, channel_max=32).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 32 px generator file (no discriminator) and an e4e file written by ``EncoderModule(export_path=...)``
    after a 2-batch fit."""
    root = tmp_path_factory.mktemp("gradstyle")
    generator = str(save_generator(root / "g32.pt", _generator()))
    e4e = root / "e4e.pt"
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = EncoderModule(generator, backbone_blocks=(1, 1, 1, 1), backbone_channels=(16, 16, 32, 32),
                                input_size=32, lpips_lambda=0.0, id_lambda=0.0, w_discriminator_lambda=0.0,
                                progressive_start=None, image_log_every=0, export_path=str(e4e))
        data = SyntheticDataModule(generator, lengths=(8, 0, 0), batch_size=4, seed=0)
        _trainer(root / "encoder", 2, limit_val_batches=0, enable_checkpointing=False).fit(encoder, data)
    return {"root": root, "generator": generator, "e4e": str(e4e), "encoder": encoder}


def test_encoder_module_export_path_writes_a_loadable_e4e_file(files):
    assert Path(files["e4e"]).is_file()
    encoder = files["encoder"].eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = encoder.inverter.encode(images)
        for bundle in (load_e4e(files["e4e"]), load_encoder(files["e4e"])):
            assert bundle.kind == "e4e"
            assert torch.allclose(bundle.eval().encode(images), expected, atol=1e-6)


def test_discriminator_from_the_generator_file_or_new(files, tmp_path):
    torch.manual_seed(5)
    stored = Discriminator(32, channel_max=32)
    with_d = str(save_generator(tmp_path / "gd.pt", _generator(), discriminator=stored))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = GradStyleModule(with_d, files["e4e"], **SMALL)
        fresh = GradStyleModule(files["generator"], files["e4e"], **SMALL)
        none = GradStyleModule(files["generator"], files["e4e"], adv_lambda=0.0, **SMALL)
    assert module.discriminator_from_file and not fresh.discriminator_from_file
    for key, value in stored.state_dict().items():
        assert torch.equal(module.discriminator.state_dict()[key], value), key
    assert fresh.discriminator.config["size"] == 32 and fresh.discriminator.config["channel_max"] == 32
    assert fresh.discriminator.state_dict().keys() == stored.state_dict().keys()
    fresh_weights = dict(fresh.discriminator.named_parameters())
    assert not any(torch.equal(fresh_weights[k], v) for k, v in stored.named_parameters() if k.endswith("weight"))
    assert not hasattr(none, "discriminator") and not isinstance(none.configure_optimizers(), list)
    opt, d_opt = module.configure_optimizers()
    assert type(opt).__name__ == "AdamLookahead" and opt.param_groups[0]["lr"] == 1e-4
    assert d_opt.param_groups[0]["lr"] == 1e-4
    model_params = {id(p) for p in module.model.parameters() if p.requires_grad}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == model_params


def test_short_fit_then_invert_and_edit_with_method_gradstyle(files, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = GradStyleModule(files["generator"], files["e4e"], d_reg_every=4, lr=1e-3, ganspace_components=[0],
                                 ganspace_samples=200, edit_strengths=(-2.0, 2.0), **SMALL)
        data = SyntheticDataModule(files["generator"], lengths=(40, 4, 0), batch_size=4, seed=0)
        trainer = _trainer(tmp_path, 10, limit_val_batches=1, val_check_interval=10)
        trainer.fit(module, data)
    assert trainer.global_step == 10 and int(module.batches_seen) == 10  # D and R1 steps do not count
    metrics = trainer.callback_metrics
    for key in ("train/loss_l2", "train/loss_lpips", "train/loss_id"):
        assert (key in metrics) == (key == "train/loss_l2")
    for key in ("train/loss_adv", "train/loss_f", "train/loss_aligner", "train/d_loss", "train/d_r1", "val/l2",
                "val/psnr", "val/ssim", "val/e4e_l2", "val/edit_l2/pc0_-2", "val/edit_l2/pc0_2"):
        assert torch.isfinite(metrics[key]), key
    assert float(metrics["val/edit_l2/pc0_2"]) > 0 and "val/edit_id/pc0_2" not in metrics  # no identity weights
    checkpoint = tmp_path / "gradstyle.ckpt"
    trainer.save_checkpoint(checkpoint)

    assert "gradstyle" in INVERSION_METHODS
    loaded = load_inversion_model(str(checkpoint), "gradstyle")
    for (name, a), b in zip(module.model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a.cpu(), b), name
    moved = [Path(files["e4e"]), Path(files["generator"])]  # the checkpoint needs no other file
    for path in moved:
        path.rename(path.with_suffix(".moved"))
    try:
        alone = load_inversion_model(str(checkpoint), "gradstyle")
    finally:
        for path in moved:
            path.with_suffix(".moved").rename(path)
    for (name, a), b in zip(loaded.state_dict().items(), alone.state_dict().values()):
        assert torch.equal(a, b), name
    keys, images = read_images(SAMPLES, 32)
    with torch.no_grad():
        w_expected, rec_expected = loaded.invert(images)
    out = tmp_path / "inv"
    assert main(["invert", "--checkpoint", str(checkpoint), "--method", "gradstyle", "--images", str(SAMPLES),
                 "--out", str(out), "--device", "cpu"]) == 0
    latents = load_latents(out / "latents.pt")
    assert latents["keys"] == keys and torch.allclose(latents["w_plus"], w_expected, atol=1e-4)
    png = np.asarray(Image.open(out / "reconstructions" / Path(keys[0]).with_suffix(".png"))).astype(np.int16)
    expected = ((rec_expected[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    assert np.abs(png - expected).max() <= 1
    assert "mean PSNR" in capsys.readouterr().out

    Direction(torch.randn(32, generator=torch.Generator().manual_seed(0)), name="d").save(tmp_path / "d.pt")
    edit_out = tmp_path / "edit"
    assert main(["edit", "--images", str(SAMPLES / keys[0]), "--checkpoint", str(checkpoint), "--method",
                 "gradstyle", "--direction", str(tmp_path / "d.pt"), "--strengths", "-2", "0", "2", "--out",
                 str(edit_out), "--device", "cpu"]) == 0
    strip = np.asarray(Image.open(edit_out / "edit_grid.png")).astype(np.int16)
    assert strip.shape == (2 + 34, 2 + 3 * 34, 3)
    tiles = [strip[2:34, 2 + 34 * i: 34 + 34 * i] for i in range(3)]
    assert np.abs(tiles[1] - expected).max() <= 1  # strength 0: the reconstruction stream
    assert np.abs(tiles[0] - tiles[1]).mean() > 1 and np.abs(tiles[2] - tiles[1]).mean() > 1


@pytest.mark.slow
def test_gradstyle_beats_the_e4e_base_on_held_out_samples(files, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        module = GradStyleModule(files["generator"], files["e4e"], adv_lambda=0.0, lr=1e-3, optimizer="adam", **SMALL)
        data = SyntheticDataModule(files["generator"], lengths=(8, 16, 0), batch_size=8, seed=3)
        data.setup("fit")
    held_out = next(iter(data.val_dataloader()))["image"]
    model = module.model

    def errors():
        model.eval()
        with torch.no_grad():
            w_plus, features = model.encode(held_out)
            base = (model.generator(w_plus) - held_out).pow(2).mean().item()
            return base, (model.reconstruct(w_plus, features).image - held_out).pow(2).mean().item()

    base, initial = errors()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(tmp_path, 60, limit_val_batches=0, enable_checkpointing=False).fit(module, data)
    _, trained = errors()
    print(f"\nheld-out MSE: e4e base {base:.4f}, GradStyle initial {initial:.4f}, after 60 steps {trained:.4f}")
    assert trained < 0.8 * base and trained < 0.8 * initial
