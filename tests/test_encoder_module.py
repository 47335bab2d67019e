"""EncoderModule: schedule, a real short fit with the latent discriminator, exact checkpoints, export, the
LightningCLI entry point, and learning on synthetic data."""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import pytest
import torch

from stylegan_lightning.cli import main
from stylegan_lightning.data import SyntheticDataModule
from stylegan_lightning.encoders import load_e4e
from stylegan_lightning.encoders.module import EncoderModule
from stylegan_lightning.nets._state import FrozenModule
from stylegan_lightning.stylegan2 import FrozenGenerator, Generator, save_generator
from stylegan_lightning.training import ToolkitModule

SMALL = dict(backbone_blocks=(1, 1, 1, 1), backbone_channels=(16, 16, 32, 32), input_size=32, lpips_lambda=0.0,
             id_lambda=0.0, image_log_every=0)


@pytest.fixture
def generator_file(tmp_path, tiny_generator):
    return str(save_generator(tmp_path / "g32.pt", tiny_generator(size=32, style_dim=32, channel_max=16)))


def _trainer(tmp_path, max_steps, **kwargs):
    return pl.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=str(tmp_path), num_sanity_val_steps=0, **kwargs)


def test_progressive_schedule(generator_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = EncoderModule(generator_file, progressive_start=10, progressive_step_every=3, **SMALL)
    stages = [module.progressive_stage(i) for i in (0, 9, 10, 12, 13, 100)]
    assert stages == [0, 0, 1, 1, 2, 7]  # n_latent 8 at 32 px -> last stage 7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psp = EncoderModule(generator_file, encoder_type="psp", w_discriminator_lambda=0.0, **SMALL)
    assert psp.progressive_stage(0) == 7 and psp.configure_optimizers().__class__.__name__ == "Ranger"


def test_short_fit_checkpoint_and_export(tmp_path, generator_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = EncoderModule(generator_file, progressive_start=2, progressive_step_every=1, d_reg_every=2, **SMALL)
        data = SyntheticDataModule(generator_file, lengths=(24, 4, 4), batch_size=4, seed=0)
        trainer = _trainer(tmp_path, max_steps=5, limit_val_batches=1, val_check_interval=5)
        trainer.fit(module, data)
    # discriminator and R1 steps do not count: max_steps counts batches
    assert int(module.batches_seen) == 5 and trainer.global_step == 5
    assert module.inverter.encoder.encoder.progressive_stage == module.progressive_stage(4) == 3
    metrics = trainer.callback_metrics
    for key in ("train/loss_l2", "train/loss_w_adversarial", "train/d_loss", "train/d_r1", "val/l2", "val/latent_mse"):
        assert torch.isfinite(metrics[key]), key
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        restored = EncoderModule.load_from_checkpoint(path)
    for (name, a), b in zip(module.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name
    from stylegan_lightning.inversion import load_inversion_model

    from_lightning = load_inversion_model(str(path))  # the invert / edit tools read Lightning checkpoints too
    exported = module.export(str(tmp_path / "e4e.pt"))
    bundle = load_e4e(exported)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    module.inverter.encoder.encoder.set_progressive_stage("inference")
    module.eval(), bundle.eval()  # batch-norm statistics, not batch statistics
    from_lightning.encoder.encoder.set_progressive_stage("inference")
    with torch.no_grad():
        assert torch.allclose(bundle.encode(images), module.inverter.encode(images), atol=1e-6)
        assert torch.allclose(from_lightning.encode(images), module.inverter.encode(images), atol=1e-6)


class _Auxiliary(FrozenModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(3))
        self.freeze()


class _WithAuxiliary(ToolkitModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.auxiliary = _Auxiliary()


def test_frozen_auxiliary_networks_stay_out_of_checkpoints(tmp_path):
    module = _WithAuxiliary()
    trainer = _trainer(tmp_path, max_steps=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    saved = torch.load(tmp_path / "m.ckpt", weights_only=False)
    assert set(saved["state_dict"]) == {"layer.weight", "layer.bias"}
    assert saved["frozen_auxiliary_prefixes"] == ["auxiliary."]
    restored = _WithAuxiliary.load_from_checkpoint(tmp_path / "m.ckpt")  # strict load still works
    assert torch.equal(restored.layer.weight, module.layer.weight)


def test_fit_through_the_command_line(tmp_path, generator_file):
    config = tmp_path / "encoder.yaml"
    config.write_text(f"""
seed_everything: 0
trainer:
  accelerator: cpu
  max_steps: 4
  logger: false
  enable_progress_bar: false
  num_sanity_val_steps: 0
  limit_val_batches: 1
  default_root_dir: {tmp_path / "run"}
model:
  class_path: EncoderModule
  init_args:
    generator: {generator_file}
    backbone_blocks: [1, 1, 1, 1]
    backbone_channels: [16, 16, 32, 32]
    input_size: 32
    lpips_lambda: 0.0
    id_lambda: 0.0
    image_log_every: 0
data:
  class_path: SyntheticDataModule
  init_args:
    generator: {generator_file}
    lengths: [16, 4, 4]
    batch_size: 4
""")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", "--config", str(config)]) == 0
    checkpoints = list((tmp_path / "run").rglob("*.ckpt"))
    assert len(checkpoints) == 1
    assert (tmp_path / "run" / "config.yaml").exists() or list((tmp_path / "run").rglob("config.yaml"))


@pytest.mark.slow
def test_encoder_learns_on_synthetic_data(tmp_path):
    """300 CPU batches lower latent and image error versus the untrained encoder and versus latent_avg.

    A W-encoder on a generator whose every layer sees all of w (style_dim <= channels): pixel losses can then
    identify w. (Per-layer W+ codes trained on pixels alone lower the image error but drift off the w
    distribution: the latent error rises -- the problem e4e's W-first progressive training addresses.)
    """
    torch.manual_seed(0)
    generator_file = str(save_generator(tmp_path / "g.pt", Generator(32, style_dim=16, n_mlp=2, channel_max=32)))
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = EncoderModule(generator_file, encoder_type="w", w_discriminator_lambda=0.0, optimizer="adam",
                               lr=2e-3, **SMALL)
        data = SyntheticDataModule(generator_file, lengths=(2400, 32, 0), batch_size=8, seed=1)
        data.setup("fit")
    frozen: FrozenGenerator = module.generator
    test_batch = next(iter(data.val_dataloader()))
    images, true_w = test_batch["image"], test_batch["w"][:, None].expand(-1, frozen.n_latent, -1)

    def errors():
        module.eval()
        with torch.no_grad():
            w_plus = module.inverter.encode(images)
            return (w_plus - true_w).pow(2).mean().item(), (frozen(w_plus) - images).pow(2).mean().item()

    initial = errors()
    with torch.no_grad():
        average_w = module.inverter.latent_avg.expand(len(images), -1, -1)
        average = (average_w - true_w).pow(2).mean().item(), (frozen(average_w) - images).pow(2).mean().item()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(tmp_path, max_steps=300, limit_val_batches=0, enable_checkpointing=False).fit(module, data)
    trained = errors()
    print(f"\nlatent MSE / image MSE: latent_avg {average}, initial {initial}, trained {trained}")
    assert trained[0] < 0.95 * min(initial[0], average[0])
    assert trained[1] < 0.5 * min(initial[1], average[1])


def test_fit_with_a_missing_generator_is_one_line(tmp_path, capsys):
    config = tmp_path / "missing.yaml"
    config.write_text(f"""
trainer:
  accelerator: cpu
  logger: false
model:
  class_path: EncoderModule
  init_args:
    generator: {tmp_path / "nowhere.pt"}
data:
  class_path: SyntheticDataModule
  init_args:
    generator: {tmp_path / "nowhere.pt"}
""")
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "stylegan-lightning fit: error:" in err and "nowhere.pt" in err and "does not exist" in err


def test_identity_loss_takes_the_weight_file_of_its_backend(generator_file, shared_dir):
    """``weights`` is keyed by registry key: the MobileFaceNet backend reads ``weights["mobilefacenet"]``."""
    path = shared_dir / "weights" / "mobilefacenet" / "068.ckpt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = EncoderModule(generator_file, w_discriminator_lambda=0.0, progressive_start=None,
                               **{**SMALL, "id_lambda": 0.1, "id_backend": "mobilefacenet",
                                  "weights": {"mobilefacenet": str(path)}})
    assert module.inversion_losses.identity is not None and "id_similarity" in module.val_metrics
