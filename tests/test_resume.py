"""Exact resume: a fit killed with SIGKILL in the middle of an epoch, resumed from its last checkpoint with
``--ckpt_path``, ends with the same weights and validation metrics as an uninterrupted run of the same length.

What must survive the kill: optimiser and scheduler states, the entropy models' CDF tables (codec), discriminator
and progressive-stage state (e4e), the random generators' states (saved by ToolkitModule) and the position in the
epoch's shuffled order (saved by the DataModule, replayed by ResumableSampler).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
import yaml
from cli_runs import logged_val_metrics, run_cli, save_generator_16, synthetic_data

pytestmark = pytest.mark.slow
MAX_STEPS, KILL_AFTER = 6, 3


def run_config(root: Path, model: dict, data: dict, kill: bool) -> dict:
    callbacks = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"dirpath": str(root / "checkpoints"), "every_n_train_steps": 2, "save_last": True,
                                "save_top_k": -1}}]
    if kill:
        callbacks.insert(0, {"class_path": "kill_callback.KillAfterStep", "init_args": {"step": KILL_AFTER}})
    return {"seed_everything": 0, "model": model, "data": data,
            "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": MAX_STEPS, "num_sanity_val_steps": 0,
                        "val_check_interval": MAX_STEPS, "check_val_every_n_epoch": None, "log_every_n_steps": 1,
                        "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(root),
                        "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                                   "init_args": {"save_dir": str(root / "logs")}},
                        "callbacks": callbacks}}


def check_exact_resume(tmp_path: Path, model: dict, data: dict) -> dict[str, float]:
    # 1. uninterrupted
    straight = tmp_path / "straight"
    straight.mkdir()
    (straight / "config.yaml").write_text(yaml.safe_dump(run_config(straight, model, data, kill=False)))
    result = run_cli(["fit", "--config", str(straight / "config.yaml")], straight)
    assert result.returncode == 0, result.stderr[-3000:]
    # 2. killed after step KILL_AFTER (SIGKILL: no cleanup, no final checkpoint)
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "config.yaml").write_text(yaml.safe_dump(run_config(crashed, model, data, kill=True)))
    result = run_cli(["fit", "--config", str(crashed / "config.yaml")], crashed)
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr[-3000:])
    last = crashed / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 2  # mid-epoch: 8 batches per epoch
    # 3. resumed from the last checkpoint, without the kill
    (crashed / "resume.yaml").write_text(yaml.safe_dump(run_config(crashed, model, data, kill=False)))
    result = run_cli(["fit", "--config", str(crashed / "resume.yaml"), "--ckpt_path", str(last)], crashed)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    resumed = torch.load(crashed / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == reference["global_step"] == MAX_STEPS
    derived = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")  # CDF tables, rebuilt by update()
    for key, value in reference["state_dict"].items():
        if key.endswith(derived):
            continue
        assert torch.allclose(resumed["state_dict"][key].float(), value.float(), rtol=1e-5, atol=1e-6), key
    expected, got = logged_val_metrics(straight / "logs"), logged_val_metrics(crashed / "logs")
    assert expected and set(expected) <= set(got)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    return expected


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> str:
    return save_generator_16(tmp_path_factory.mktemp("resume"))


def test_codec_resumes_exactly_after_sigkill(generator, tmp_path):
    metrics = check_exact_resume(tmp_path, {
        "class_path": "stylegan_lightning.codec.CodecModule",
        "init_args": {"generator": generator, "hyper_channels": 4, "dim": 16, "depth": 1, "heads": 2,
                      "input_size": 32, "backbone_blocks": [1, 1, 1, 1], "backbone_channels": [16, 16, 16, 16],
                      "distortions": [{"mse": 1.0}] * 3, "lr": 1e-3, "aux_lr": 1e-3}}, synthetic_data(generator))
    assert any(key.startswith("val/layer3/bpp") for key in metrics)


def test_e4e_resumes_exactly_after_sigkill(generator, tmp_path):
    """e4e with its latent discriminator (its own optimiser, a pool of random codes) and progressive stages."""
    check_exact_resume(tmp_path, {
        "class_path": "stylegan_lightning.encoders.EncoderModule",
        "init_args": {"generator": generator, "encoder_type": "e4e", "backbone_blocks": [1, 1, 1, 1],
                      "backbone_channels": [16, 16, 16, 16], "input_size": 32, "lpips_lambda": 0.0, "id_lambda": 0.0,
                      "w_discriminator_lambda": 0.1, "progressive_start": 2, "progressive_step_every": 2,
                      "optimizer": "ranger", "lr": 1e-3}}, synthetic_data(generator, held_out=4))
