"""``PriorWarmStartModule``: a StyleGAN2 face prior trained on a CPU by reconstruction, with a fitted mapping.

A GAN needs hundreds of thousands of images before a 64 px generator draws faces, which a 2-core CPU does not
reach; a generator trained as the *decoder* of an image encoder shows faces after a few thousand. This module
trains, in one run:

1. **Reconstruction warm start.** A strided-conv :class:`PriorEncoder` maps each image to one ``w`` plus per-layer
   offsets (W+ kept close to one w); the synthesis network of a rosinality-layout :class:`Generator` (explicit
   channel table allowed) decodes ``w + offsets`` with its stored noise. Loss: L1 on pixels, MSE of
   ``coarse_size`` x ``coarse_size`` average-pooled images (layout and colour first), an optional MobileFaceNet
   identity loss (``1 - cos``), and ``offset_lambda * mean(offsets**2)``. With probability ``single_w_prob`` a
   batch is decoded from the single ``w`` alone, so that the decoder draws faces from one w per image -- what
   sampling gives it.
2. **Mapping fit (vectors only).** The generator's mapping network ``style`` learns to carry ``z ~ N(0, I)`` to
   the encoder's distribution of ``w``: every batch pushes the encoder's (detached) ``w`` into a FIFO bank and
   takes ``mapping_steps`` Adam steps of the sliced Wasserstein distance between ``style(z)`` and the bank (plus
   the squared difference of means and covariances). At the end of fit the mapping is fitted once more, for
   ``final_mapping_steps`` steps, to the codes of the whole training set under the final encoder (a fixed target:
   the online fit follows a moving one). Sampling, truncation and ``latent_avg`` then work as for an official
   generator.

The export is an ordinary rosinality ``{"g_ema", "latent_avg", "generator_config"}`` file (the trained generator,
optionally float16) that every loader and method accepts; adversarial fine-tuning continues from it with
:class:`~stylegan_lightning.stylegan2.StyleGAN2Module` (``init_generator``).

Choices the sources leave open (all constructor arguments): the encoder widths, the loss weights, the bank size
and the SWD projection count, Adam betas (0.5, 0.99) and the separate encoder learning rate, measured on the
2-core CPU machine (see ``benchmarks/prior_throughput.py``).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from ..training import ToolkitModule
from .checkpoints import save_generator
from .generator import Generator


class PriorEncoder(nn.Module):
    """Image -> ``(w [B, style_dim], offsets [B, n_latent, style_dim])``: stride-2 stages of two 3x3 convolutions
    with leaky ReLU down to 4x4, then two linear heads (the offsets head starts at zero, so training starts in W).

    Args:
        size: input resolution (a power of two, at least 8).
        style_dim, n_latent: the generator's W width and number of style inputs.
        channels: width of each stage, one per halving from ``size`` to 4 (``log2(size) - 2`` entries).
    """

    def __init__(self, size: int, style_dim: int, n_latent: int, channels: Sequence[int] = (32, 64, 128, 256)):
        super().__init__()
        stages = int(math.log2(size)) - 2
        if size < 8 or size & (size - 1) or len(channels) != stages:
            raise ValueError(f"a {size} px encoder needs {stages} stage widths (halving to 4x4), got {list(channels)}")
        layers: list[nn.Module] = []
        previous = 3
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                       nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.n_latent, self.style_dim = n_latent, style_dim
        self.to_w = nn.Linear(previous * 16, style_dim)
        self.to_offsets = nn.Linear(previous * 16, n_latent * style_dim)
        nn.init.zeros_(self.to_offsets.weight)
        nn.init.zeros_(self.to_offsets.bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(images).flatten(1)
        return self.to_w(features), self.to_offsets(features).view(-1, self.n_latent, self.style_dim)


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, projections: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Squared sliced Wasserstein-2 distance between the point sets ``x`` [N, D] and ``y`` [M, D]: the mean over
    ``projections`` random unit directions of the squared difference of sorted projections (``y`` resampled to
    N quantiles when M != N)."""
    directions = torch.randn(x.shape[1], projections, generator=generator).to(x)
    directions = directions / directions.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ directions, dim=0)
    py, _ = torch.sort(y @ directions, dim=0)
    if py.shape[0] != px.shape[0]:
        index = ((torch.arange(px.shape[0], device=x.device) + 0.5) * py.shape[0] / px.shape[0]).long()
        py = py[index.clamp_max(py.shape[0] - 1)]
    return (px - py).pow(2).mean()


def moment_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the means plus that of the covariance matrices of ``x`` and ``y``."""
    mean_x, mean_y = x.mean(0), y.mean(0)
    cov_x = torch.cov((x - mean_x).T)
    cov_y = torch.cov((y - mean_y).T)
    return (mean_x - mean_y).pow(2).mean() + (cov_x - cov_y).pow(2).mean()


class PriorWarmStartModule(ToolkitModule):
    """Train a face prior by reconstruction and fit its mapping (see the module docstring).

    Args:
        size, style_dim, n_mlp, channels, channel_multiplier, channel_max, lr_mlp: the generator
            (:class:`Generator` arguments; ``channels`` is an explicit ``{resolution: channels}`` table).
        encoder_channels: :class:`PriorEncoder` stage widths.
        lr, encoder_lr, betas: Adam for the synthesis network and the encoder.
        l1_lambda, coarse_lambda, coarse_size: pixel L1 and pooled-MSE weights, pooled resolution.
        id_lambda, id_weights, id_alignment: MobileFaceNet identity loss weight, its ``068.ckpt`` file (required
            when ``id_lambda > 0``) and the alignment of the training faces; ``id_batch``: the loss is taken on
            the first ``id_batch`` images of each batch (``None``: all), since the identity network costs more than
            the rest of the step (measured in ``benchmarks/bench_prior.py``).
        offset_lambda: weight of ``mean(offsets**2)`` (keeps W+ near one w); single_w_prob: probability that a
            batch is decoded from ``w`` alone.
        mapping_lr: the mapping network's effective learning rate (divided by ``lr_mlp`` for Adam, since the
            equalised layers scale their weights by ``lr_mlp``); mapping_steps: mapping updates per batch;
            mapping_batch: z samples per update; bank_size: encoder ``w`` kept for the fit; swd_projections:
            random directions of the sliced Wasserstein distance; moment_lambda: weight of the moment term;
            final_mapping_steps, final_mapping_lr: the end-of-fit refit on the training set's codes (0: none).
        fid_weights: MobileFaceNet file for ``val/fid_mobilefacenet`` of samples versus validation images
            (``None``: no FID).
        n_mean_latent: z samples averaged for the exported ``latent_avg``.
        export_path, export_dtype: where the generator is written at the end of fit, and as ``float32`` or
            ``float16``.
        n_sample_images, sample_seed: validation grid of samples.
    """

    def __init__(
        self,
        size: int = 64,
        style_dim: int = 128,
        n_mlp: int = 4,
        channels: dict[int, int] | None = None,
        channel_multiplier: int = 1,
        channel_max: int | None = 64,
        lr_mlp: float = 0.01,
        encoder_channels: Sequence[int] = (32, 64, 128, 256),
        lr: float = 0.002,
        encoder_lr: float = 0.0005,
        betas: tuple[float, float] = (0.5, 0.99),
        l1_lambda: float = 1.0,
        coarse_lambda: float = 1.0,
        coarse_size: int = 16,
        id_lambda: float = 0.0,
        id_weights: str | None = None,
        id_alignment: str = "ffhq",
        id_batch: int | None = 8,
        offset_lambda: float = 1.0,
        single_w_prob: float = 0.5,
        mapping_lr: float = 0.001,
        mapping_steps: int = 1,
        mapping_batch: int = 512,
        bank_size: int = 4096,
        swd_projections: int = 256,
        moment_lambda: float = 1.0,
        final_mapping_steps: int = 2000,
        final_mapping_lr: float = 0.001,
        fid_weights: str | None = None,
        n_mean_latent: int = 10000,
        export_path: str | None = None,
        export_dtype: str = "float32",
        n_sample_images: int = 16,
        sample_seed: int = 0,
    ):
        super().__init__()
        if export_dtype not in ("float32", "float16"):
            raise ValueError(f"export_dtype must be 'float32' or 'float16', got {export_dtype!r}")
        if not 0.0 <= single_w_prob <= 1.0:
            raise ValueError(f"single_w_prob must be in [0, 1], got {single_w_prob}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Generator(size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=channel_multiplier,
                                   channel_max=channel_max, lr_mlp=lr_mlp, channels=channels)
        self.encoder = PriorEncoder(size, style_dim, self.generator.n_latent, encoder_channels)
        self.identity = self._identity_network(id_weights, id_alignment) if id_lambda > 0 else None
        if id_lambda > 0 and self.identity is None:
            raise CheckpointError("PriorWarmStartModule: id_lambda > 0 needs id_weights, the MobileFaceNet "
                                  "identity network (068.ckpt)")
        self.register_buffer("bank", torch.zeros(bank_size, style_dim))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("latent_avg", torch.zeros(style_dim))
        self.fid = self._fid(fid_weights, id_alignment) if fid_weights else None
        from ..metrics.fidelity import PSNR, SSIM

        self.val_psnr, self.val_ssim, self.val_psnr_single_w = PSNR(), SSIM(), PSNR()

    @staticmethod
    def _identity_network(weights: str | None, alignment: str):
        from ..nets import build_identity_encoder

        return build_identity_encoder("mobilefacenet", weights, alignment=alignment) if weights else None

    @classmethod
    def _fid(cls, weights: str, alignment: str):
        from ..metrics.fid import FrechetDistance

        return FrechetDistance(cls._identity_network(weights, alignment))

    # ------------------------------------------------------------------ model
    def reconstruct(self, images: torch.Tensor, single_w: bool = False) -> tuple[torch.Tensor, torch.Tensor,
                                                                                torch.Tensor]:
        """``(reconstruction, w, offsets)``: the encoder's W+ (or its single ``w``) decoded with stored noise."""
        w, offsets = self.encoder(images)
        latent = w[:, None] if single_w else w[:, None] + offsets
        latent = latent.expand(-1, self.generator.n_latent, -1)
        return self.generator.synthesize(latent, self.generator.stored_noise()), w, offsets

    def reconstruction_loss(self, images: torch.Tensor, single_w: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        hp = self.hparams
        output, w, offsets = self.reconstruct(images, single_w)
        l1 = (output - images).abs().mean()
        coarse = F.mse_loss(F.adaptive_avg_pool2d(output, hp.coarse_size), F.adaptive_avg_pool2d(images, hp.coarse_size))
        offset = offsets.pow(2).mean()
        loss = hp.l1_lambda * l1 + hp.coarse_lambda * coarse + hp.offset_lambda * offset
        logs = {"l1": l1.detach(), "coarse_mse": coarse.detach(), "offsets": offset.detach()}
        if self.identity is not None:
            count = hp.id_batch or images.shape[0]
            with torch.no_grad():
                target = self.identity(images[:count])
            similarity = F.cosine_similarity(self.identity(output[:count]), target, dim=1).mean()
            loss = loss + hp.id_lambda * (1 - similarity)
            logs["id_similarity"] = similarity.detach()
        logs["loss"] = loss.detach()
        return loss, {"w": w.detach(), **logs}

    def mapping_parameters(self) -> list[nn.Parameter]:
        return list(self.generator.style.parameters())

    def synthesis_parameters(self) -> list[nn.Parameter]:
        mapping = {id(p) for p in self.mapping_parameters()}
        return [p for p in self.generator.parameters() if id(p) not in mapping]

    def configure_optimizers(self):
        hp = self.hparams
        return [torch.optim.Adam([{"params": self.synthesis_parameters(), "lr": hp.lr},
                                  {"params": self.encoder.parameters(), "lr": hp.encoder_lr}], betas=hp.betas),
                torch.optim.Adam(self.mapping_parameters(), lr=hp.mapping_lr / hp.lr_mlp, betas=(0.9, 0.99))]

    # ------------------------------------------------------------------ mapping fit
    @torch.no_grad()
    def push_to_bank(self, w: torch.Tensor) -> None:
        """Append ``w`` [B, D] to the FIFO bank of encoder codes."""
        size = self.bank.shape[0]
        start = int(self.bank_count) % size
        index = (torch.arange(w.shape[0], device=w.device) + start) % size
        self.bank[index] = w[-size:] if w.shape[0] > size else w
        self.bank_count += w.shape[0]

    def bank_codes(self) -> torch.Tensor:
        return self.bank[: min(int(self.bank_count), self.bank.shape[0])]

    def mapping_loss(self, targets: torch.Tensor) -> torch.Tensor:
        """SWD + ``moment_lambda`` x moment distance between ``style(z)`` and ``targets``."""
        hp = self.hparams
        z = torch.randn(hp.mapping_batch, hp.style_dim, device=targets.device)
        mapped = self.generator.style(z)
        return sliced_wasserstein(mapped, targets, hp.swd_projections) + hp.moment_lambda * moment_distance(mapped,
                                                                                                            targets)

    @torch.no_grad()
    def training_set_codes(self, loader) -> torch.Tensor:
        """The encoder's ``w`` of every image of ``loader`` (eval mode), [N, style_dim]."""
        was_training = self.encoder.training
        self.encoder.eval()
        codes = [self.encoder(batch["image"].to(self.latent_avg.device))[0] for batch in loader]
        self.encoder.train(was_training)
        return torch.cat(codes)

    def fit_mapping(self, codes: torch.Tensor, steps: int, lr: float) -> list[float]:
        """``steps`` Adam updates (effective rate ``lr``) of the mapping network towards the fixed ``codes``
        [N, style_dim] (each update against ``mapping_batch`` codes drawn at random); returns the losses."""
        optimizer = torch.optim.Adam(self.mapping_parameters(), lr=lr / self.hparams.lr_mlp, betas=(0.9, 0.99))
        losses = []
        with torch.enable_grad():
            for _ in range(steps):
                index = torch.randint(len(codes), (self.hparams.mapping_batch,), device=codes.device)
                loss = self.mapping_loss(codes[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        return losses

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        optimizer, mapping_optimizer = self.optimizers()
        images = batch["image"]
        single_w = bool(torch.rand(()) < hp.single_w_prob)
        loss, logs = self.reconstruction_loss(images, single_w)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        self.push_to_bank(self.all_gather(logs.pop("w")).reshape(-1, hp.style_dim))
        targets = self.bank_codes()
        if targets.shape[0] >= 2 * hp.style_dim:  # enough codes for a covariance
            for _ in range(hp.mapping_steps):
                mapping = self.mapping_loss(targets)
                mapping_optimizer.zero_grad(set_to_none=True)
                self.manual_backward(mapping)
                self.auxiliary_step(mapping_optimizer)
            logs["mapping_loss"] = mapping.detach()
        self.batches_seen += 1
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, prog_bar=False, sync_dist=True)
        self.log("train/loss_step", logs["loss"], prog_bar=True, logger=False)
        return loss.detach()

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        images = batch["image"]
        output, _, _ = self.reconstruct(images)
        single, _, _ = self.reconstruct(images, single_w=True)
        self.val_psnr.update(output.clamp(-1, 1), images)
        self.val_ssim.update(output.clamp(-1, 1), images)
        self.val_psnr_single_w.update(single.clamp(-1, 1), images)
        if self.identity is not None:
            similarity = F.cosine_similarity(self.identity(output.clamp(-1, 1)), self.identity(images), dim=1)
            self.log("val/id_similarity", similarity.mean(), sync_dist=True, batch_size=images.shape[0])
        if self.fid is not None:
            samples = self.sample(images.shape[0], self.hparams.sample_seed + 1 + batch_idx)
            self.fid.update(images, real=True)
            self.fid.update(samples.clamp(-1, 1), real=False)
        if batch_idx == 0:
            self.log_image_grid("val/reconstructions", [images, output, single])

    def on_validation_epoch_end(self) -> None:
        for name in ("psnr", "ssim", "psnr_single_w"):
            metric = getattr(self, f"val_{name}")
            self.log(f"val/{name}", metric.compute(), sync_dist=False)
            metric.reset()
        if self.fid is not None:
            if self.fid.real_count >= 2 and self.fid.fake_count >= 2:
                self.log("val/fid_mobilefacenet", self.fid.compute(), sync_dist=False)
            self.fid.reset()
        count = self.hparams.n_sample_images
        self.log_image_grid("val/samples", [self.sample(count, self.hparams.sample_seed)], max_images=count)

    @torch.no_grad()
    def sample(self, count: int, seed: int) -> torch.Tensor:
        """Images of ``count`` seeded z through the fitted mapping (stored noise)."""
        z = torch.randn(count, self.hparams.style_dim, generator=torch.Generator().manual_seed(seed))
        images, _ = self.generator([z.to(self.latent_avg)], randomize_noise=False)
        return images

    # ------------------------------------------------------------------ export
    @torch.no_grad()
    def refresh_latent_avg(self) -> torch.Tensor:
        mean = self.generator.mean_latent(self.hparams.n_mean_latent, torch.Generator().manual_seed(0))
        self.latent_avg.copy_(mean.reshape(-1))
        return self.latent_avg

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"]["latent_avg"] = self.refresh_latent_avg().detach().clone()
        super().on_save_checkpoint(checkpoint)

    def export_generator(self, path: str | Path) -> Path:
        """Write the generator as rosinality ``{"g_ema", "latent_avg", "generator_config"}`` (``export_dtype``)."""
        dtype = torch.float16 if self.hparams.export_dtype == "float16" else None
        return save_generator(path, copy.deepcopy(self.generator).cpu(), latent_avg=self.refresh_latent_avg().cpu(),
                              dtype=dtype)

    def on_train_end(self) -> None:
        trainer = self._trainer
        if self.hparams.final_mapping_steps > 0 and trainer is not None and not trainer.fast_dev_run:
            codes = self.all_gather(self.training_set_codes(trainer.train_dataloader)).reshape(-1, self.hparams.style_dim)
            losses = self.fit_mapping(codes, self.hparams.final_mapping_steps, self.hparams.final_mapping_lr)
            if trainer.is_global_zero:
                print(f"PriorWarmStartModule: mapping refitted to {len(codes)} training codes, loss "
                      f"{losses[0]:.4g} -> {sum(losses[-50:]) / len(losses[-50:]):.4g}")
        self.export_at_fit_end(self.export_generator)


PRIOR_CHECKPOINT = "prior warm-start checkpoint (a PriorWarmStartModule Lightning checkpoint)"


def load_prior_checkpoint(path: str | Path) -> tuple[PriorEncoder, Generator]:
    """``(encoder, generator)`` of a :class:`PriorWarmStartModule` Lightning checkpoint, in eval mode, read as plain
    data and loaded strictly (the architecture from the stored tensors and hyperparameters, compared on the meta
    device before anything is built); a :class:`CheckpointError` naming the file otherwise."""
    from ..serialization import check_before_building, load_state_strict, safe_torch_load
    from .checkpoints import build_generator, strip_prefix

    purpose = f"{PRIOR_CHECKPOINT} '{path}'"
    data = safe_torch_load(path, PRIOR_CHECKPOINT)
    state = data.get("state_dict") if isinstance(data, dict) else None
    hparams = data.get("hyper_parameters") if isinstance(data, dict) else None
    if not isinstance(state, dict) or not isinstance(hparams, dict) or "encoder_channels" not in hparams:
        raise CheckpointError(f"{purpose}: it is not one (no encoder_channels hyperparameter or state dict)")
    generator = build_generator(strip_prefix(state, "generator."), purpose=purpose, lr_mlp=hparams.get("lr_mlp"))
    encoder_state = strip_prefix(state, "encoder.")
    channels = hparams["encoder_channels"]

    def build() -> PriorEncoder:
        return PriorEncoder(generator.size, generator.style_dim, generator.n_latent, list(channels))

    check_before_building(build, encoder_state, purpose)
    return load_state_strict(build(), encoder_state, purpose).eval(), generator.eval()
