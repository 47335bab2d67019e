"""The CPU face-prior recipe: reconstruction warm start with a fitted mapping (PriorWarmStartModule), its export,
and the GAN fine-tuning that starts from it (StyleGAN2Module(init_generator=...))."""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from stylegan_lightning.stylegan2 import Generator, load_generator
from stylegan_lightning.stylegan2.module import StyleGAN2Module
from stylegan_lightning.stylegan2.prior import PriorWarmStartModule, moment_distance, sliced_wasserstein
from model_helpers import ImageBatches  # noqa: E402  (test helper beside this file)

pytestmark = pytest.mark.usefixtures("single_thread")
SMALL = dict(size=16, style_dim=16, n_mlp=2, channels={4: 32, 8: 16, 16: 8}, encoder_channels=[8, 16],
             mapping_batch=64, bank_size=256, swd_projections=32, n_mean_latent=100, n_sample_images=4,
             final_mapping_steps=100)


def faces(count: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [-1, 1] (a low-resolution pattern upsampled: learnable in a few steps)."""
    coarse = torch.rand(count, 3, 4, 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=16, mode="bilinear", align_corners=False)


def trainer(tmp_path, steps: int) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                      limit_val_batches=0)


def test_sliced_wasserstein_is_the_sorted_projection_distance():
    x, y = torch.randn(50, 1), torch.randn(50, 1) + 2
    expected = (x.sort(0).values - y.sort(0).values).pow(2).mean()
    assert sliced_wasserstein(x, y, 5) == pytest.approx(float(expected), rel=1e-5)  # every 1-d direction is +-1
    assert float(sliced_wasserstein(x, x, 8)) == 0.0
    shifted = torch.randn(400, 6) + torch.tensor([3.0, 0, 0, 0, 0, 0])
    assert float(sliced_wasserstein(torch.randn(400, 6), shifted, 64)) > 10 * float(
        sliced_wasserstein(torch.randn(400, 6), torch.randn(200, 6), 64))


def test_moment_distance_is_zero_for_the_same_points_and_counts_means_and_covariances():
    x = torch.randn(100, 4)
    assert float(moment_distance(x, x)) == pytest.approx(0.0, abs=1e-12)
    expected = 1.0 + float((torch.cov(x.T) - torch.cov((2 * x).T)).pow(2).mean())
    assert float(moment_distance(x, 2 * x - 2 * x.mean(0) + x.mean(0) + 1)) == pytest.approx(expected, rel=1e-4)


def test_the_bank_is_a_fifo_of_the_latest_codes():
    module = PriorWarmStartModule(**{**SMALL, "bank_size": 5})
    module.push_to_bank(torch.arange(3.0)[:, None].expand(-1, 16))
    assert module.bank_codes()[:, 0].tolist() == [0, 1, 2]
    module.push_to_bank(torch.arange(3.0, 7.0)[:, None].expand(-1, 16))
    assert sorted(module.bank_codes()[:, 0].tolist()) == [2, 3, 4, 5, 6]


def test_the_encoder_starts_in_w_and_single_w_decodes_one_code_per_image():
    module = PriorWarmStartModule(**SMALL)
    images = faces(2)
    with torch.no_grad():
        both, w, offsets = module.reconstruct(images)
        single, _, _ = module.reconstruct(images, single_w=True)
        direct = module.generator.synthesize(w[:, None].expand(-1, module.generator.n_latent, -1),
                                             module.generator.stored_noise())
    assert float(offsets.abs().max()) == 0.0 and torch.equal(both, single) and torch.equal(single, direct)


def test_training_lowers_the_reconstruction_error_and_fits_the_mapping(tmp_path):
    torch.manual_seed(0)
    data = faces(64)
    module = PriorWarmStartModule(**SMALL, lr=0.005, encoder_lr=0.002, mapping_lr=0.01, mapping_steps=2,
                                  export_path=str(tmp_path / "prior.pt"), export_dtype="float16")

    def errors():
        with torch.no_grad():
            reconstruction = float((module.reconstruct(data)[0] - data).pow(2).mean())
            codes = module.encoder(data)[0]
            mapped = module.generator.style(torch.randn(512, 16, generator=torch.Generator().manual_seed(1)))
            return reconstruction, float(sliced_wasserstein(mapped, codes, 64, torch.Generator().manual_seed(2)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module.push_to_bank(module.encoder(data)[0].detach())
        start = errors()
        trainer(tmp_path, 120).fit(module, DataLoader(ImageBatches(data), batch_size=16, shuffle=True))
    end = errors()
    print("reconstruction MSE, mapping SWD before", start, "after", end)
    assert end[0] < 0.5 * start[0]
    assert end[1] < 0.5 * start[1]
    exported = load_generator(tmp_path / "prior.pt")
    assert exported.channels == SMALL["channels"] and exported.latent_avg is not None
    assert all(v.dtype == torch.float16 for v in torch.load(tmp_path / "prior.pt", weights_only=True)["g_ema"].values())
    with torch.no_grad():
        expected = module.generator.half().float().style(torch.ones(1, 16))
        assert torch.allclose(exported.style(torch.ones(1, 16)), expected, atol=1e-6)


def test_the_final_refit_carries_z_to_a_fixed_code_distribution():
    torch.manual_seed(0)
    module = PriorWarmStartModule(**SMALL)
    codes = torch.randn(2000, 16) * torch.linspace(0.1, 0.5, 16) + torch.linspace(-1, 1, 16)
    probe = torch.Generator().manual_seed(5)

    def distance():
        with torch.no_grad():
            mapped = module.generator.style(torch.randn(2000, 16, generator=probe))
        return float(sliced_wasserstein(mapped, codes, 64, torch.Generator().manual_seed(2)))

    start = distance()
    losses = module.fit_mapping(codes, 300, 0.003)
    print("SWD before / after", start, distance(), "loss", losses[0], losses[-1])
    assert distance() < 0.05 * start and losses[-1] < 0.1 * losses[0]


def test_gan_fine_tuning_starts_from_the_warm_start(tmp_path):
    module = PriorWarmStartModule(**SMALL, export_path=str(tmp_path / "warm.pt"))
    path = module.export_generator(tmp_path / "warm.pt")
    gan = StyleGAN2Module(size=16, style_dim=16, n_mlp=2, channels=SMALL["channels"], init_generator=str(path),
                          fid_features=None)
    for name, value in module.generator.state_dict().items():
        assert torch.equal(gan.generator.state_dict()[name], value), name
        assert torch.equal(gan.generator_ema.state_dict()[name], value), name
    assert gan.discriminator.config["channels"] == SMALL["channels"]
    with pytest.raises(Exception, match="init_generator"):
        StyleGAN2Module(size=16, style_dim=16, n_mlp=2, channel_max=8, init_generator=str(path), fid_features=None)


def test_id_loss_without_its_file_is_a_clear_error():
    with pytest.raises(Exception, match="068.ckpt"):
        PriorWarmStartModule(**SMALL, id_lambda=0.1)


def test_it_builds_the_shipped_architecture():
    module = PriorWarmStartModule(channels={4: 256, 8: 256, 16: 128, 32: 96, 64: 48})
    assert isinstance(module.generator, Generator) and module.generator.n_latent == 10
    assert module.encoder(torch.zeros(1, 3, 64, 64))[1].shape == (1, 10, 128)
