"""StyleGAN2Module (training recipe, EMA, export), DiffAugment and the Fréchet-distance metric."""

from __future__ import annotations

import warnings

import stylegan_lightning  # noqa: F401  (before anything that imports torchvision)
import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from stylegan_lightning.metrics.fid import FrechetDistance, frechet_distance
from stylegan_lightning.stylegan2 import load_discriminator, load_generator
from stylegan_lightning.stylegan2.augment import DiffAugment, diff_augment
from stylegan_lightning.stylegan2.module import StyleGAN2Module, lazy_regularization_ratio

SIZE = 32


class RandomImages(Dataset):
    def __init__(self, n: int = 32, size: int = SIZE, seed: int = 0):
        self.images = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i]}


def make_module(**kwargs) -> StyleGAN2Module:
    options = dict(size=SIZE, style_dim=16, n_mlp=2, channel_max=8, fid_features=None, n_mean_latent=64,
                   image_log_every=0, n_sample_images=4)
    options.update(kwargs)
    torch.manual_seed(0)
    return StyleGAN2Module(**options)


class Recorder(pl.Callback):
    """Keeps the log keys and a few values of every training step."""

    def __init__(self):
        self.keys: list[set[str]] = []
        self.logs: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.keys.append(set(module._last_logs))
        self.logs.append({k: float(v) for k, v in module._last_logs.items()})


def fit(module: StyleGAN2Module, max_steps: int, batch_size: int = 4, callbacks=(), val: bool = False, **kwargs):
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=2 if val else 0, callbacks=list(callbacks), **kwargs)
    loader = DataLoader(RandomImages(), batch_size=batch_size, shuffle=False, drop_last=True)
    val_loader = DataLoader(RandomImages(8, seed=1), batch_size=4) if val else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, loader, val_loader)
    return trainer


# ---------------------------------------------------------------------------------------------- training
def test_one_step_updates_both_players_and_counts_generator_steps():
    module = make_module(d_reg_every=0, g_reg_every=0)
    g_before = [p.detach().clone() for p in module.generator.parameters()]
    d_before = [p.detach().clone() for p in module.discriminator.parameters()]
    recorder = Recorder()
    trainer = fit(module, 1, callbacks=[recorder])
    assert trainer.global_step == 1
    g_changed = sum(not torch.equal(a, b) for a, b in zip(g_before, module.generator.parameters()))
    d_changed = sum(not torch.equal(a, b) for a, b in zip(d_before, module.discriminator.parameters()))
    assert g_changed >= len(g_before) - 2  # everything but possibly untouched noise strengths
    assert d_changed == len(d_before)
    logs = recorder.logs[0]
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert logs["d_loss"] > 0 and logs["g_loss"] > 0
    # softplus(f) + softplus(-r) >= softplus of the mean scores (Jensen), with the logged mean scores
    softplus = torch.nn.functional.softplus
    bound = softplus(torch.tensor(logs["fake_score"])) + softplus(torch.tensor(-logs["real_score"]))
    assert logs["d_loss"] >= float(bound) - 1e-6
    assert int(module.batches_seen) == 1 and int(module.images_seen) == 4


def test_lazy_regularisation_intervals_and_step_count():
    module = make_module(d_reg_every=3, g_reg_every=2)
    recorder = Recorder()
    trainer = fit(module, 6, callbacks=[recorder])
    assert trainer.global_step == 6  # R1 / path-length / D steps do not advance global_step
    r1_steps = [i for i, keys in enumerate(recorder.keys) if "r1" in keys]
    path_steps = [i for i, keys in enumerate(recorder.keys) if "path_penalty" in keys]
    assert r1_steps == [0, 3]
    assert path_steps == [0, 2, 4]
    assert all(recorder.logs[i]["r1"] >= 0 for i in r1_steps)
    # running mean of path lengths: m <- m + 0.01 (mean(lengths) - m), starting from 0
    expected = 0.0
    for i in path_steps:
        expected += 0.01 * (recorder.logs[i]["path_length"] - expected)
    assert float(module.mean_path_length) == pytest.approx(expected, rel=1e-5)
    assert float(module.mean_path_length) > 0


def test_optimizer_lazy_regularisation_correction():
    module = make_module(lr=0.002, d_reg_every=16, g_reg_every=4)
    g_optimizer, d_optimizer = module.configure_optimizers()
    assert lazy_regularization_ratio(16) == pytest.approx(16 / 17)
    assert g_optimizer.defaults["lr"] == pytest.approx(0.002 * 4 / 5)
    assert g_optimizer.defaults["betas"] == pytest.approx((0.0, 0.99 ** 0.8))
    assert d_optimizer.defaults["lr"] == pytest.approx(0.002 * 16 / 17)
    assert d_optimizer.defaults["betas"][1] == pytest.approx(0.99 ** (16 / 17))


def test_ema_update_formula_exact():
    module = make_module(d_reg_every=0, g_reg_every=0, ema_half_life_kimg=0.01)  # 10 images: visible decay
    ema_before = module.generator_ema.conv1.conv.weight.detach().clone()
    assert torch.equal(ema_before, module.generator.conv1.conv.weight)  # the EMA starts as a copy
    fit(module, 1, batch_size=4)
    decay = 0.5 ** (4 / 10)
    assert module.ema_decay(4) == pytest.approx(decay)
    g_after = module.generator.conv1.conv.weight.detach()
    assert not torch.equal(g_after, ema_before)
    expected = ema_before.double() * decay + g_after.double() * (1 - decay)
    assert (expected - ema_before.double()).abs().max() > 1e-4  # the step is far above the tolerance
    # exact up to float32 rounding of the two multiply-adds
    torch.testing.assert_close(module.generator_ema.conv1.conv.weight.double(), expected, rtol=5e-7, atol=1e-8)
    assert not any(p.requires_grad for p in module.generator_ema.parameters())
    # rosinality's constant at batch 32 and the default 10 kimg half-life
    assert make_module().ema_decay(32) == pytest.approx(0.5 ** (32 / (10 * 1000)))


def test_ema_rampup_and_auto_r1_gamma():
    module = make_module(ema_rampup=0.05, r1_gamma=None)
    assert module.ema_decay(32, images_seen=0) == 0.0  # no history: the EMA copies G
    assert module.ema_decay(32, images_seen=6400) == pytest.approx(0.5 ** (32 / 320))
    assert module.r1_gamma_for(32) == pytest.approx(0.0002 * SIZE**2 / 32)
    assert make_module(r1_gamma=10.0).r1_gamma_for(32) == 10.0


def test_diffaugment_training_and_validation_runs_with_fid_disabled(tmp_path):
    with pytest.warns(RuntimeWarning, match="FID disabled"):
        module = make_module(augment="diffaugment", fid_features="mobilefacenet",
                             fid_weights=str(tmp_path / "missing.ckpt"), image_log_every=1)
    assert module.fid is None
    trainer = fit(module, 2, val=True, val_check_interval=2)
    assert trainer.global_step == 2
    assert trainer.validate(module, DataLoader(RandomImages(8, seed=1), batch_size=4), verbose=False) == [{}]


# ---------------------------------------------------------------------------------------------- export / checkpoints
def test_export_loads_as_official_generator(tmp_path):
    module = make_module(d_reg_every=2, g_reg_every=2, ema_half_life_kimg=0.01)
    fit(module, 2)
    path = module.export_generator(tmp_path / "prior.pt")
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"g_ema", "latent_avg", "d", "generator_config"}
    loaded = load_generator(path).eval()
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    expected, _ = module.generator_ema.eval()([z], randomize_noise=False)
    images, _ = loaded([z], randomize_noise=False)
    torch.testing.assert_close(images, expected, rtol=0, atol=0)
    torch.testing.assert_close(loaded.latent_avg, module.generator_ema.mean_latent(
        64, torch.Generator().manual_seed(0)).reshape(-1), rtol=0, atol=1e-6)
    discriminator = load_discriminator(path)
    x = torch.rand(2, 3, SIZE, SIZE)
    torch.testing.assert_close(discriminator(x), module.discriminator(x), rtol=0, atol=0)
    # the training generator differs from the EMA one (the export holds the EMA weights)
    assert not torch.equal(module.generator.conv1.conv.weight, loaded.conv1.conv.weight)


def test_checkpoint_round_trip_and_direct_generator_load(tmp_path):
    module = make_module(d_reg_every=2, g_reg_every=2)
    trainer = fit(module, 3)
    assert trainer.global_step == 3
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    restored = StyleGAN2Module.load_from_checkpoint(path)
    state, restored_state = module.state_dict(), restored.state_dict()
    assert set(state) == set(restored_state)
    for key in state:
        torch.testing.assert_close(restored_state[key], state[key], rtol=0, atol=0, msg=key)
    assert int(restored.batches_seen) == 3 and float(restored.mean_path_length) > 0
    checkpoint = torch.load(path, weights_only=False)
    assert len(checkpoint["optimizer_states"]) == 2
    # a Lightning checkpoint loads as the EMA generator (with latent_avg) through load_generator
    generator = load_generator(path)
    torch.testing.assert_close(generator.conv1.conv.weight, module.generator_ema.conv1.conv.weight, rtol=0, atol=0)
    torch.testing.assert_close(generator.latent_avg, module.latent_avg, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- DiffAugment
def test_diffaugment_shapes_gradients_identity():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    y = diff_augment(x, "color,translation,cutout", torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.equal(DiffAugment("")(x), x)
    assert torch.equal(diff_augment(x, ""), x)
    with pytest.raises(ValueError, match="unknown DiffAugment"):
        DiffAugment("colour")


def test_diffaugment_ops_values():
    x = torch.ones(2, 3, 16, 16)
    shifted = diff_augment(x, "translation", torch.Generator().manual_seed(3))
    zeros_per_image = (shifted == 0).flatten(1).sum(1)
    assert set(shifted.unique().tolist()) <= {0.0, 1.0}
    assert zeros_per_image.max() <= 3 * (16 * 16 - 14 * 14)  # shifts of at most 2 px per axis
    cut = diff_augment(x, "cutout", torch.Generator().manual_seed(0))
    assert ((cut == 0).flatten(1).sum(1) <= 3 * 8 * 8).all() and (cut == 0).any()
    # colour ops: brightness adds an offset in [-0.5, 0.5); the others keep a constant image constant
    colour = diff_augment(x, "color", torch.Generator().manual_seed(0))
    per_image = colour.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image))
    assert ((per_image[:, 0] >= 0.5) & (per_image[:, 0] < 1.5)).all()


# ---------------------------------------------------------------------------------------------- Fréchet distance
def exact_gaussian_sample(n: int, mean: torch.Tensor, cov: torch.Tensor, seed: int) -> torch.Tensor:
    """n samples whose empirical mean and (unbiased) covariance are exactly ``mean`` and ``cov``."""
    x = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x = x - x.mean(0)
    whitening = torch.linalg.cholesky(x.T @ x / (n - 1))
    x = torch.linalg.solve_triangular(whitening, x.T, upper=False).T  # empirical covariance I
    return x @ torch.linalg.cholesky(cov).T + mean


def test_fid_identical_features_is_zero():
    metric = FrechetDistance(num_features=5)
    features = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    metric.update(features[:120], real=True)
    metric.update(features[120:], real=True)
    metric.update(features, real=False)
    assert abs(float(metric.compute())) < 1e-4


def test_fid_known_gaussians():
    mean1, cov1 = torch.tensor([0.0, 0.0]), torch.diag(torch.tensor([1.0, 4.0]))
    mean2, cov2 = torch.tensor([1.0, 2.0]), torch.diag(torch.tensor([9.0, 1.0]))
    # |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2 = (1 + 4) + ((1 - 3)^2 + (2 - 1)^2) = 10
    metric = FrechetDistance(num_features=2)
    metric.update(exact_gaussian_sample(500, mean1.double(), cov1.double(), 0), real=True)
    metric.update(exact_gaussian_sample(300, mean2.double(), cov2.double(), 1), real=False)
    assert float(metric.compute()) == pytest.approx(10.0, abs=1e-4)
    # non-commuting covariances: tr sqrt(C1^1/2 C2 C1^1/2) by hand for C1 = I, C2 = [[2, 1], [1, 2]] (eig 1, 3)
    value = frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(2), torch.tensor([[2.0, 1.0], [1.0, 2.0]]))
    assert float(value) == pytest.approx(2 + 4 - 2 * (1 + 3**0.5), abs=1e-9)


def test_fid_with_feature_network_and_reset():
    feature = torch.nn.Flatten()
    metric = FrechetDistance(feature, num_features=12, reset_real_features=False)
    real = torch.randn(40, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    metric.update(real, real=True)
    metric.update(real + 1.0, real=False)  # shifted by 1 in each of 12 dims: FD = 12
    assert float(metric.compute()) == pytest.approx(12.0, abs=1e-3)
    metric.reset()
    assert int(metric.real_count) == 40 and int(metric.fake_count) == 0
    with pytest.raises(RuntimeError, match="needs >= 2"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric.compute()


def test_validation_logs_mobilefacenet_fid(shared_dir, tmp_path):
    weights = shared_dir / "weights" / "mobilefacenet" / "068.ckpt"
    if not weights.is_file():
        pytest.skip("MobileFaceNet weights are not available")
    from lightning.pytorch.loggers import TensorBoardLogger

    module = make_module(fid_features="mobilefacenet", fid_weights=str(weights))
    assert module.fid is not None and module.fid.num_features == 128
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=1, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         logger=TensorBoardLogger(tmp_path, name="tb"), limit_val_batches=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(RandomImages(8), batch_size=4, drop_last=True))
        first = trainer.validate(module, DataLoader(RandomImages(8, seed=1), batch_size=4), verbose=False)
        second = trainer.validate(module, DataLoader(RandomImages(8, seed=1), batch_size=4), verbose=False)
    assert first[0]["val/fid_mobilefacenet"] == second[0]["val/fid_mobilefacenet"]  # fixed seeds: repeatable
    fid = float(trainer.callback_metrics["val/fid_mobilefacenet"])
    assert torch.isfinite(torch.tensor(fid)) and fid > 0
    assert int(module.fid.real_count) == 0  # reset after logging
    # the identity network is a frozen auxiliary: not in checkpoints
    path = tmp_path / "fid.ckpt"
    trainer.save_checkpoint(path)
    assert not any(k.startswith("fid.") for k in torch.load(path, weights_only=False)["state_dict"])
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_trains_on_synthetic_faces_with_a_logger(tmp_path):
    """Module and DataModule both have ``mixing_prob`` (different values): the logger gets the module's
    hyperparameters and the run does not stop on Lightning's merge of the two."""
    from lightning.pytorch.loggers import CSVLogger

    from stylegan_lightning.data import SyntheticDataModule
    from stylegan_lightning.stylegan2 import FrozenGenerator, Generator

    torch.manual_seed(1)
    teacher = FrozenGenerator(Generator(SIZE, 16, 2, channel_max=8), latent_avg=torch.zeros(16))
    data = SyntheticDataModule.from_generator(teacher, lengths=(8, 0, 0), batch_size=4, seed=0)
    module = make_module(mixing_prob=0.9)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=2, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         logger=CSVLogger(tmp_path, name="csv"), limit_val_batches=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, datamodule=data)
    assert trainer.global_step == 2 and int(module.images_seen) == 8
    logged = (tmp_path / "csv" / "version_0" / "hparams.yaml").read_text()
    assert "mixing_prob: 0.9" in logged
    trainer.save_checkpoint(tmp_path / "run.ckpt")
    saved = torch.load(tmp_path / "run.ckpt", weights_only=False)
    assert saved["hyper_parameters"]["mixing_prob"] == 0.9
    assert saved["datamodule_hyper_parameters"]["mixing_prob"] == 0.0  # the DataModule's own values are kept
