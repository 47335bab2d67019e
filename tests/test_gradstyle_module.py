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
import torch.nn.functional as F
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


def _module(files, **overrides):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        return GradStyleModule(files["generator"], files["e4e"], **{**SMALL, "adv_lambda": 0.0, **overrides})


def _images(count: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_forward_detaches_the_residuals_before_the_editing_stream(files):
    """Section 3.4: the GRMs learn from the reconstruction error only, "with the gradient from GAMs detached"."""
    module = _module(files)
    images = _images()
    _, reconstruction, editing = module(images)
    grms = [p for p in module.model.grms.parameters()]
    aligners = [p for p in module.model.aligners.parameters()]
    editing_loss = (editing.image - images).pow(2).mean() + sum(
        F.l1_loss(a, r.detach()) for a, r in zip(editing.residuals, reconstruction.residuals))
    grads = torch.autograd.grad(editing_loss, grms + aligners, allow_unused=True)
    assert all(g is None for g in grads[:len(grms)])  # nothing of the editing stream reaches a GRM
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads[len(grms):])
    grads = torch.autograd.grad((reconstruction.image - images).pow(2).mean(), grms)
    assert all(float(g.abs().sum()) > 0 for g in grads)  # the reconstruction stream trains them


def test_feature_losses_enter_the_total_with_the_paper_weights(files, tmp_path):
    """L_f (0.01) and L_aligner (0.1) of Eq. 15: the defaults, their values, and their place in the total."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        defaults = GradStyleModule(files["generator"], files["e4e"], **{**SMALL, "adv_lambda": 0.0})
    assert (defaults.hparams.f_lambda, defaults.hparams.aligner_lambda) == (0.01, 0.1)
    assert (defaults.hparams.l2_lambda, defaults.hparams.lpips_net) == (1.0, "vgg")
    module = _module(files)
    with torch.no_grad():
        _, reconstruction, editing = module(_images())
        losses = module.feature_losses(reconstruction, editing)
    l_f = sum((g * r).abs().mean() for g, r in zip(reconstruction.gates, reconstruction.residuals))
    l_aligner = sum((a - r).abs().mean() for a, r in zip(editing.residuals, reconstruction.residuals))
    assert float(l_f) > 1e-3 and float(l_aligner) > 1e-3
    torch.testing.assert_close(losses["f"], 0.01 * l_f, rtol=1e-6, atol=0)
    torch.testing.assert_close(losses["aligner"], 0.1 * l_aligner, rtol=1e-6, atol=0)
    # one training step: the logged total is exactly L2 (both streams) + L_f + L_aligner
    data = SyntheticDataModule(files["generator"], lengths=(4, 0, 0), batch_size=4, seed=0)
    trainer = _trainer(tmp_path, 1, limit_val_batches=0, enable_checkpointing=False, log_every_n_steps=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, data)
    metrics = trainer.callback_metrics
    parts = [float(metrics[f"train/loss_{key}"]) for key in ("l2", "f", "aligner")]
    assert parts[1] > 0 and parts[2] > 0 and "train/loss_adv" not in metrics
    assert abs(float(metrics["train/loss_total"]) - sum(parts)) < 1e-6 * max(1.0, sum(parts))


def test_missing_vgg_lpips_backbone_is_a_clear_error(files, tmp_path, monkeypatch):
    from stylegan_lightning.weights import ENV_VAR, MissingWeightError

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-hub"))
    with pytest.raises(MissingWeightError) as info:
        GradStyleModule(files["generator"], files["e4e"], **{**SMALL, "lpips_lambda": 0.8})
    message = str(info.value)
    assert "vgg16-397923af.pth" in message and "LPIPS-vgg" in message and "Nothing is downloaded" in message


def test_evaluation_identity_is_its_own_network(files, shared_dir, tmp_path):
    """The identity of the metrics is ``eval_id_backend`` (CurricularFace by default), not the loss's network: a
    missing CurricularFace file leaves the ID metrics out rather than scoring with the training network."""
    weights = {"mobilefacenet": str(shared_dir / "weights/mobilefacenet/068.ckpt")}
    common = dict(id_lambda=0.1, id_backend="mobilefacenet", weights=weights, ganspace_components=[0],
                  ganspace_samples=200, edit_strengths=(-2.0, 2.0))
    with pytest.warns(RuntimeWarning, match="CurricularFace_Backbone.pth"):
        separate = GradStyleModule(files["generator"], files["e4e"],
                                   **{**SMALL, "adv_lambda": 0.0, **common, "weights": {**weights,
                                                                  "curricularface": str(tmp_path / "none.pth")}})
    assert separate.hparams.eval_id_backend == "curricularface"
    assert separate.inversion_losses.identity is not None  # the loss has its network...
    assert "id_similarity" not in separate.val_metrics and len(separate.edit_id) == 0  # ...the metrics do not use it
    same = _module(files, **common, eval_id_backend=None)  # None: the loss's network (the old behaviour)
    assert same.val_metrics["id_similarity"].encoder is same.inversion_losses.identity.encoder
    # an evaluation network other than the loss's: MobileFaceNet for the metrics, no identity loss
    module = _module(files, **{**common, "id_lambda": 0.0}, eval_id_backend="mobilefacenet")
    assert module.inversion_losses.identity is None and module.val_metrics["id_similarity"].encoder.name == \
        "mobilefacenet"
    data = SyntheticDataModule(files["generator"], lengths=(0, 4, 0), batch_size=4, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = _trainer(tmp_path, 1).validate(module, data, verbose=False)[0]
    for label in ("pc0_-2", "pc0_2"):  # Table 2: ID of the edited image to the source, per edit and strength
        assert -1.0 <= metrics[f"val/edit_id/{label}"] < 1.0, label
    assert 0.0 < metrics["val/id_similarity"] <= 1.0 + 1e-6
