"""DDP from the command line: each LightningModule trains under ``strategy=ddp`` with 2 CPU processes (gloo), and
the validation that ends the 2-process fit logs the same metrics as validating its checkpoint with 1 process (synced
metric states, the DistributedSampler's shards, nothing rank-local in what is logged).

Each case writes a small config (a 16 px generator, a few steps), runs ``stylegan-lightning fit`` with 2 processes
(validating after the last step, into a CSV logger), then ``stylegan-lightning validate`` on the last checkpoint with
1 process, and compares every ``val/`` metric. Modules that train batch-norm layers (encoder, codec, HyperStyle,
GradStyle's residual modules) run ``validate`` with 2 processes as well and compare that instead (see
:func:`check_ddp`). The validation split has a multiple of 2 x the batch size, so the DistributedSampler pads nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from cli_runs import logged_val_metrics, run_cli, save_generator_16, synthetic_data

pytestmark = pytest.mark.slow


def trainer_section(root: Path, max_steps: int) -> dict:
    return {"accelerator": "cpu", "max_steps": max_steps, "num_sanity_val_steps": 0, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(root), "limit_val_batches": 1.0,
            "val_check_interval": max_steps, "check_val_every_n_epoch": None, "log_every_n_steps": 1}


def check_ddp(root: Path, config: dict, strategy: str = "ddp", expect_metrics: bool = True,
              batch_norm: bool = False) -> dict[str, float]:
    """fit with 2 processes, validating after the last step; validate the checkpoint with 1 process: the val
    metrics must agree. Modules that train batch-norm layers (``batch_norm``) keep per-rank running statistics
    under DDP (each rank's own last batches; SyncBatchNorm needs GPUs), so the fit's validation on rank 1 is not
    the checkpoint's (rank 0's): their checkpoint is validated with 2 processes instead. Modules that leave
    parameters without gradient in some steps (e4e's progressive styles, discriminators stepped on their own)
    need ``strategy="ddp_find_unused_parameters_true"``."""
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    csv_logger = "--trainer.logger=lightning.pytorch.loggers.CSVLogger"
    check(run_cli(["fit", "--config", str(path), f"--trainer.strategy={strategy}", "--trainer.devices=2",
                   csv_logger, f"--trainer.logger.save_dir={root / 'run'}"], root))
    checkpoint = sorted((root / "run").rglob("*.ckpt"))[-1]
    two = logged_val_metrics(root / "run")  # 2 processes, at the end of fit
    results = {}
    for devices in (1, 2) if batch_norm else (1,):
        save_dir = root / f"validate{devices}"
        distributed = [f"--trainer.strategy={strategy}"] if devices == 2 else []
        check(run_cli(["validate", "--config", str(path), "--ckpt_path", str(checkpoint),
                       f"--trainer.devices={devices}", *distributed, csv_logger, f"--trainer.logger.save_dir={save_dir}"],
                      root))
        results[devices] = logged_val_metrics(save_dir)
    one, two = results[1], results.get(2, two)
    assert (bool(one) or not expect_metrics) and set(one) == set(two), (sorted(one), sorted(two))
    for key in one:
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key
    return one


def check(result) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> str:
    return save_generator_16(tmp_path_factory.mktemp("ddp"))


def test_encoder_module_under_ddp(generator, tmp_path):
    metrics = check_ddp(tmp_path, {
        "seed_everything": 0, "trainer": trainer_section(tmp_path / "run", 2),
        "model": {"class_path": "stylegan_lightning.encoders.EncoderModule",
                  "init_args": {"generator": generator, "encoder_type": "e4e", "backbone_blocks": [1, 1, 1, 1],
                                "backbone_channels": [16, 16, 16, 16], "input_size": 32, "lpips_lambda": 0.0,
                                "id_lambda": 0.0, "w_discriminator_lambda": 0.1, "optimizer": "adam"}},
        "data": synthetic_data(generator)}, strategy="ddp_find_unused_parameters_true", batch_norm=True)
    assert "val/l2" in metrics or any(k.startswith("val/") for k in metrics)


def test_codec_module_under_ddp(generator, tmp_path):
    metrics = check_ddp(tmp_path, {
        "seed_everything": 0, "trainer": trainer_section(tmp_path / "run", 2),
        "model": {"class_path": "stylegan_lightning.codec.CodecModule",
                  "init_args": {"generator": generator, "hyper_channels": 4, "dim": 16, "depth": 1, "heads": 2,
                                "input_size": 32, "backbone_blocks": [1, 1, 1, 1],
                                "backbone_channels": [16, 16, 16, 16], "distortions": [{"mse": 1.0}] * 3}},
        "data": synthetic_data(generator)}, strategy="ddp_find_unused_parameters_true", batch_norm=True)
    assert any(k.startswith("val/layer3/") for k in metrics)


def test_styleae_module_under_ddp(generator, tmp_path):
    from stylegan_lightning.data import LatentAttributes
    from stylegan_lightning.stylegan2 import FrozenGenerator

    frozen = FrozenGenerator.from_file(generator)
    w = frozen.sample_w(40, generator=torch.Generator().manual_seed(0))
    labels = torch.sigmoid(w[:, :2] * 3)
    pairs = LatentAttributes(w, labels, ["a", "b"]).save(tmp_path / "pairs.pt")
    metrics = check_ddp(tmp_path, {
        "seed_everything": 0, "trainer": trainer_section(tmp_path / "run", 3),
        "model": {"class_path": "stylegan_lightning.styleae.StyleAEModule",
                  "init_args": {"generator": generator, "attribute_names": ["a", "b"], "n_layers": 2, "lr": 1e-3}},
        "data": {"class_path": "stylegan_lightning.data.LatentAttributeDataModule",
                 "init_args": {"latents": str(pairs), "holdout": 8, "batch_size": 4, "eval_batch_size": 2}}})
    assert {"val/recon/w_mse", "val/attr/a/corr"} <= set(metrics)


def encoder_file(generator: str, kind: str, root: Path) -> str:
    """An untrained official-layout encoder file (W-encoder or e4e) for ``generator``."""
    from stylegan_lightning.encoders import build_inverter, save_encoder_checkpoint
    from stylegan_lightning.stylegan2 import FrozenGenerator

    torch.manual_seed(1)
    inverter = build_inverter(kind, FrozenGenerator.from_file(generator), input_size=32, blocks=(1, 1, 1, 1),
                              channels=(16, 16, 16, 16))
    return str(save_encoder_checkpoint(root / f"{kind}.pt", inverter))


def test_hyperstyle_module_under_ddp(generator, tmp_path):
    metrics = check_ddp(tmp_path, {
        "seed_everything": 0, "trainer": trainer_section(tmp_path / "run", 2),
        "model": {"class_path": "stylegan_lightning.hyperstyle.HyperStyleModule",
                  "init_args": {"generator": generator, "w_encoder_checkpoint": encoder_file(generator, "w", tmp_path),
                                "n_iters": 2, "input_size": 16, "lpips_lambda": 0.0, "id_lambda": 0.0,
                                "optimizer": "adam", "lr": 1e-3, "image_log_every": 0}},
        "data": synthetic_data(generator)}, batch_norm=True)
    assert {"val/iter0/l2", "val/iter2/l2"} <= set(metrics)


def test_gradstyle_module_under_ddp(generator, tmp_path):
    metrics = check_ddp(tmp_path, {
        "seed_everything": 0, "trainer": trainer_section(tmp_path / "run", 2),
        "model": {"class_path": "stylegan_lightning.gradstyle.GradStyleModule",
                  "init_args": {"generator": generator, "e4e_checkpoint": encoder_file(generator, "e4e", tmp_path),
                                "refine_layers": [2, 3], "aligner_head_dim": 16, "aligner_heads": 2,
                                "lpips_lambda": 0.0, "id_lambda": 0.0, "image_log_every": 0, "lr": 1e-3}},
        "data": synthetic_data(generator)}, strategy="ddp_find_unused_parameters_true", batch_norm=True)
    assert any(k.startswith("val/") for k in metrics)


def test_stylegan2_module_under_ddp(generator, tmp_path):
    """Adversarial training with lazy R1 / path-length steps and the EMA generator; no validation metric without
    the FID network's weights, so this checks that the run trains and validates under DDP."""
    check_ddp(tmp_path, {
        "seed_everything": 0, "trainer": trainer_section(tmp_path / "run", 2),
        "model": {"class_path": "stylegan_lightning.stylegan2.StyleGAN2Module",
                  "init_args": {"size": 16, "style_dim": 16, "n_mlp": 2, "channel_max": 8, "fid_features": None,
                                "n_mean_latent": 64, "image_log_every": 0, "n_sample_images": 4, "d_reg_every": 2,
                                "g_reg_every": 2}},
        "data": sample_faces(16, [0.5, 0.5, 0.0])}, strategy="ddp_find_unused_parameters_true",
        expect_metrics=False)


def sample_faces(resolution: int, fractions: list[float], **options) -> dict:
    """A ``FaceDataModule`` config over the 16 CelebA-HQ faces bundled in ``data/samples``."""
    repo = Path(__file__).resolve().parents[1]
    return {"class_path": "stylegan_lightning.data.FaceDataModule",
            "init_args": {"root": str(repo / "data/samples/celebahq"), "resolution": resolution, "max_items": 16,
                          "split_fractions": fractions, "batch_size": 2, "eval_batch_size": 2, **options}}


def test_attribute_classifier_under_ddp(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    metrics = check_ddp(tmp_path, {
        "seed_everything": 0, "trainer": trainer_section(tmp_path / "run", 2),
        "model": {"class_path": "stylegan_lightning.editing.AttributeClassifierModule",
                  "init_args": {"attribute_names": ["Smiling", "Male"], "resolution": 16, "width": 8,
                                "max_width": 16, "lr_schedule": "none"}},
        "data": sample_faces(16, [0.5, 0.5, 0.0], attributes=str(repo / "data/samples/celebahq_attributes.csv"),
                             attribute_names=["Smiling", "Male"])})
    assert {"val/acc_Smiling", "val/loss"} <= set(metrics)
