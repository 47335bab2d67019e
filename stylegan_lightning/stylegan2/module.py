"""``StyleGAN2Module``: trains a StyleGAN2 generator (the prior every method loads) with the paper's recipe.

Recipe (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"; constants as in
rosinality/stylegan2-pytorch ``train.py`` and NVlabs ``training/loss.py``):

- non-saturating logistic loss for G and D;
- lazy R1 on real images every ``d_reg_every`` = 16 batches, weighted ``gamma / 2 * d_reg_every``
  (``r1_gamma=None`` picks NVlabs' per-resolution heuristic ``0.0002 * size**2 / global_batch``);
- lazy path-length regularisation every ``g_reg_every`` = 4 batches on ``batch // path_batch_shrink`` samples,
  weight ``path_length_weight * g_reg_every`` (2 * 4), running mean of path lengths with decay 0.01;
- style mixing with probability 0.9; equalised learning rate (the layers' runtime weight scaling) and mapping
  lr multiplier 0.01 (``lr_mlp``);
- Adam, lr 0.002, betas (0, 0.99), both corrected for lazy regularisation: ``c = k / (k + 1)`` for interval k,
  ``lr * c`` and ``betas ** c``;
- EMA generator with a half-life of ``ema_half_life_kimg`` thousand images (10: rosinality's
  ``0.5 ** (32 / 10000)`` at batch 32), optional NVlabs ramp-up;
- optional DiffAugment of real and fake images before D (small datasets).

Manual optimisation. One training step = one batch = one D update, lazily one R1 update, one G update, lazily one
path-length update, one EMA update. Only the main G update advances ``global_step`` (the others go through
:meth:`ToolkitModule.auxiliary_step`), so ``trainer.max_steps`` counts batches. Schedules use the ``batches_seen``
buffer (saved in checkpoints, so a resumed run regularises on the same batches).

Export: :meth:`StyleGAN2Module.export_generator` writes the EMA generator as rosinality ``{"g_ema", "latent_avg",
"d", "generator_config"}``. Lightning checkpoints of this module also load directly with
:func:`~stylegan_lightning.stylegan2.load_generator` (EMA weights, ``latent_avg`` refreshed at every save).
"""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path
from typing import Any

import torch

from ..losses import d_logistic_loss, g_nonsaturating_loss, r1_penalty
from ..serialization import CheckpointError, load_state_strict
from ..training import ToolkitModule
from ..utils.warn import warn_caller
from .augment import DiffAugment
from .checkpoints import read_checkpoint, save_generator
from .discriminator import Discriminator
from .generator import Generator

AUGMENT_CHOICES = ("none", "diffaugment")


def lazy_regularization_ratio(interval: int) -> float:
    """``c = k / (k + 1)`` for a regulariser applied every ``k`` steps (1 when there is none)."""
    return interval / (interval + 1) if interval and interval > 0 else 1.0


def path_length_penalty(images: torch.Tensor, latents: torch.Tensor, mean_path_length: torch.Tensor,
                        decay: float = 0.01) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Path-length regulariser: ``J_w^T y`` for ``y ~ N(0, I) / sqrt(H W)``, lengths ``sqrt(mean_layers |.|^2)``.

    Returns ``(penalty, new_mean, lengths)``: ``penalty = mean((lengths - new_mean)^2)`` (differentiable, create
    graph), ``new_mean = mean + decay * (mean(lengths) - mean)`` (detached) and the per-sample lengths."""
    noise = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
    (gradient,) = torch.autograd.grad((images * noise).sum(), latents, create_graph=True)
    lengths = torch.sqrt(gradient.pow(2).sum(2).mean(1))
    new_mean = mean_path_length + decay * (lengths.mean() - mean_path_length)
    penalty = (lengths - new_mean).pow(2).mean()
    return penalty, new_mean.detach(), lengths


class StyleGAN2Module(ToolkitModule):
    """Train a StyleGAN2 generator / discriminator pair (see the module docstring).

    Args:
        size, style_dim, n_mlp, channel_multiplier, channel_max, channels, lr_mlp: architecture (``Generator``
            arguments; ``channels`` is an explicit ``{resolution: channels}`` table); the discriminator uses the same
            size and channel layout unless ``d_channels`` gives its own table.
        init_generator: a generator file (any format :func:`load_generator` reads, e.g. the reconstruction warm
            start of :class:`~stylegan_lightning.stylegan2.PriorWarmStartModule`) whose weights start G and its
            EMA; its architecture must be the one configured here.
        lr, betas: Adam settings before the lazy-regularisation correction (0.002, (0, 0.99)).
        r1_gamma: R1 weight; ``None`` = ``0.0002 * size**2 / global_batch`` (NVlabs auto config).
        d_reg_every, g_reg_every: lazy intervals (16, 4); 0 disables the regulariser.
        path_length_weight, path_length_decay, path_batch_shrink: 2, 0.01, 2.
        mixing_prob: style-mixing probability (0.9).
        ema_half_life_kimg: EMA half-life in thousands of images (10); ``ema_rampup`` (e.g. 0.05) limits the
            half-life to ``rampup * images_seen`` early on (NVlabs), ``None`` = off (the paper's config-f).
        augment, diffaugment_policy: ``"none"`` or ``"diffaugment"`` with a policy such as
            ``"color,translation,cutout"``.
        fid_features: ``"mobilefacenet"`` to log ``val/fid_mobilefacenet`` (Fréchet distance of identity-net
            features, EMA samples vs validation images) or ``None``. Missing weights give one warning, no FID.
        fid_weights, fid_alignment: the MobileFaceNet file (``068.ckpt``; ``None`` searches the weights folder) and
            the alignment of the training faces (``"ffhq"`` or ``"celeba-64"``).
        n_mean_latent: z samples averaged for the exported ``latent_avg`` (10000, as ``FrozenGenerator``).
        image_log_every: batches between TensorBoard grids of fixed-seed EMA samples (0: only at validation).
        n_sample_images, sample_seed: size and seed of that grid (validation samples use ``sample_seed + 1 + i``).
        export_path: when set, the EMA generator is exported there at the end of training.
    """

    def __init__(
        self,
        size: int = 256,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        channel_max: int | None = None,
        channels: dict[int, int] | None = None,
        d_channels: dict[int, int] | None = None,
        init_generator: str | None = None,
        lr_mlp: float = 0.01,
        lr: float = 0.002,
        betas: tuple[float, float] = (0.0, 0.99),
        r1_gamma: float | None = 10.0,
        d_reg_every: int = 16,
        g_reg_every: int = 4,
        path_length_weight: float = 2.0,
        path_length_decay: float = 0.01,
        path_batch_shrink: int = 2,
        mixing_prob: float = 0.9,
        ema_half_life_kimg: float = 10.0,
        ema_rampup: float | None = None,
        augment: str = "none",
        diffaugment_policy: str = "color,translation,cutout",
        fid_features: str | None = "mobilefacenet",
        fid_weights: str | None = None,
        fid_alignment: str = "ffhq",
        n_mean_latent: int = 10000,
        image_log_every: int = 1000,
        n_sample_images: int = 16,
        sample_seed: int = 0,
        export_path: str | None = None,
    ):
        super().__init__()
        if augment not in AUGMENT_CHOICES:
            raise ValueError(f"augment must be one of {AUGMENT_CHOICES}, got {augment!r}")
        if fid_features not in (None, "mobilefacenet"):
            raise ValueError(f"fid_features must be 'mobilefacenet' or None, got {fid_features!r}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator = Generator(size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=channel_multiplier,
                                   lr_mlp=lr_mlp, channel_max=channel_max, channels=channels)
        if init_generator is not None:
            self._start_from(init_generator)
        self.discriminator = Discriminator(size, channel_multiplier=channel_multiplier, channel_max=channel_max,
                                           channels=d_channels if d_channels is not None else channels)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
        self.augment = DiffAugment(diffaugment_policy) if augment == "diffaugment" else None
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("mean_path_length", torch.zeros(()))
        # mean w of the EMA generator (refreshed at every checkpoint save and export), so Lightning checkpoints
        # load through load_generator with a latent_avg
        self.register_buffer("latent_avg", torch.zeros(style_dim))
        self.fid = self._build_fid(fid_features, fid_weights, fid_alignment)
        self._last_logs: dict[str, torch.Tensor] = {}

    def _start_from(self, path: str) -> None:
        """Copy the weights (and noise maps) of the generator file ``path`` into G; refuses another layout."""
        state = {k: v.float() if v.is_floating_point() else v for k, v in read_checkpoint(path)["generator"].items()}
        load_state_strict(self.generator, state,
                          f"init_generator '{path}' for this StyleGAN2Module ({self.generator.config})")

    @staticmethod
    def _build_fid(features: str | None, weights: str | None, alignment: str):
        if features is None:
            return None
        from ..metrics.fid import FrechetDistance
        from ..nets import build_identity_encoder

        try:
            network = build_identity_encoder(features, weights, alignment=alignment)
        except (CheckpointError, OSError) as error:
            warn_caller(f"StyleGAN2Module: FID disabled, the {features} weights are not available ({error})",
                        RuntimeWarning)
            return None
        return FrechetDistance(network)

    @property
    def fid_name(self) -> str:
        return f"val/fid_{self.hparams.fid_features}"

    # ------------------------------------------------------------------ schedules and helpers
    def global_batch(self, batch_size: int) -> int:
        """Images per step over all processes."""
        trainer = self._trainer
        return batch_size * (trainer.world_size if trainer is not None else 1)

    def r1_gamma_for(self, global_batch: int) -> float:
        """R1 weight: the configured one, else ``0.0002 * size**2 / global_batch``."""
        gamma = self.hparams.r1_gamma
        return float(gamma) if gamma is not None else 0.0002 * self.hparams.size**2 / global_batch

    def ema_decay(self, global_batch: int, images_seen: int | None = None) -> float:
        """``0.5 ** (global_batch / half_life_images)``; with ``ema_rampup`` the half life is at most
        ``rampup * images_seen``."""
        half_life = self.hparams.ema_half_life_kimg * 1000
        if self.hparams.ema_rampup is not None:
            seen = int(self.images_seen) if images_seen is None else images_seen
            half_life = min(half_life, seen * self.hparams.ema_rampup)
        return 0.5 ** (global_batch / max(half_life, 1e-8))

    def is_d_reg_step(self, index: int) -> bool:
        return self.hparams.d_reg_every > 0 and index % self.hparams.d_reg_every == 0

    def is_g_reg_step(self, index: int) -> bool:
        hp = self.hparams
        return hp.g_reg_every > 0 and hp.path_length_weight > 0 and index % hp.g_reg_every == 0

    def mixing_noise(self, batch: int) -> list[torch.Tensor]:
        """``[z]`` or, with probability ``mixing_prob``, ``[z1, z2]`` (crossover drawn by the generator)."""
        device = self.generator.input.input.device
        count = 2 if self.hparams.mixing_prob > 0 and random.random() < self.hparams.mixing_prob else 1
        return list(torch.randn(count, batch, self.hparams.style_dim, device=device).unbind(0))

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        """D logits of (augmented, when enabled) images."""
        return self.discriminator(self.augment(images) if self.augment is not None else images)

    def fixed_latents(self, count: int, seed: int) -> torch.Tensor:
        """Seeded z on the module's device (the same on every call and every device)."""
        z = torch.randn(count, self.hparams.style_dim, generator=torch.Generator().manual_seed(seed))
        return z.to(self.generator.input.input.device)

    @torch.no_grad()
    def sample(self, count: int, seed: int, randomize_noise: bool = False) -> torch.Tensor:
        """EMA-generator images for ``count`` seeded z: with the stored noise maps, or with ``randomize_noise``
        per-image noise drawn from the same seed (so validation samples repeat exactly)."""
        noise = None
        if randomize_noise:
            rng = torch.Generator().manual_seed(seed + 1_000_003)
            noise = [torch.randn((count, 1, *n.shape[-2:]), generator=rng).to(n)
                     for n in self.generator_ema.stored_noise()]
        images, _ = self.generator_ema([self.fixed_latents(count, seed)], noise=noise, randomize_noise=False)
        return images

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """``ema = decay * ema + (1 - decay) * g`` for every parameter; buffers (noise maps) are copied."""
        for ema_param, param in zip(self.generator_ema.parameters(), self.generator.parameters()):
            ema_param.mul_(decay).add_(param.detach(), alpha=1 - decay)
        for ema_buffer, buffer in zip(self.generator_ema.buffers(), self.generator.buffers()):
            ema_buffer.copy_(buffer)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        hp = self.hparams

        def adam(parameters, interval):
            c = lazy_regularization_ratio(interval)
            return torch.optim.Adam(parameters, lr=hp.lr * c, betas=(hp.betas[0] ** c, hp.betas[1] ** c))

        g_interval = hp.g_reg_every if hp.path_length_weight > 0 else 0
        return [adam(self.generator.parameters(), g_interval), adam(self.discriminator.parameters(), hp.d_reg_every)]

    def discriminator_step(self, real: torch.Tensor, optimizer, index: int) -> dict[str, torch.Tensor]:
        """D update on real vs fake, then lazy R1 (``gamma / 2 * d_reg_every * E|grad|^2 + 0 * logits``)."""
        self.generator.requires_grad_(False)
        self.discriminator.requires_grad_(True)
        with torch.no_grad():
            fake, _ = self.generator(self.mixing_noise(real.shape[0]))
        real_logits, fake_logits = self.discriminate(real), self.discriminate(fake)
        loss = d_logistic_loss(real_logits, fake_logits)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        self.auxiliary_step(optimizer)
        logs = {"d_loss": loss.detach(), "real_score": real_logits.detach().mean(),
                "fake_score": fake_logits.detach().mean()}
        if self.is_d_reg_step(index):
            real_input = real.detach().requires_grad_(True)
            logits = self.discriminate(real_input)
            r1 = r1_penalty(logits, real_input)
            gamma = self.r1_gamma_for(self.global_batch(real.shape[0]))
            weighted = gamma / 2 * r1 * self.hparams.d_reg_every + 0 * logits[0, 0]
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(weighted)
            self.auxiliary_step(optimizer)
            logs["r1"] = r1.detach()
        return logs

    def generator_step(self, batch_size: int, optimizer, index: int) -> dict[str, torch.Tensor]:
        """G update (non-saturating loss), then lazy path-length regularisation on a shrunk batch."""
        hp = self.hparams
        self.generator.requires_grad_(True)
        self.discriminator.requires_grad_(False)
        fake, _ = self.generator(self.mixing_noise(batch_size))
        loss = g_nonsaturating_loss(self.discriminate(fake))
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        logs = {"g_loss": loss.detach()}
        if self.is_g_reg_step(index):
            path_batch = max(1, batch_size // hp.path_batch_shrink)
            fake, latents = self.generator(self.mixing_noise(path_batch), return_latents=True)
            penalty, new_mean, lengths = path_length_penalty(fake, latents, self.mean_path_length,
                                                             hp.path_length_decay)
            weighted = hp.path_length_weight * hp.g_reg_every * penalty + 0 * fake[0, 0, 0, 0]
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(weighted)
            self.auxiliary_step(optimizer)
            if self._trainer is not None and self.trainer.world_size > 1:
                new_mean = self.trainer.strategy.reduce(new_mean, reduce_op="mean")
            self.mean_path_length.copy_(new_mean)
            logs.update(path_penalty=penalty.detach(), path_length=lengths.detach().mean(),
                        mean_path_length=self.mean_path_length.clone())
        self.discriminator.requires_grad_(True)
        return logs

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        g_optimizer, d_optimizer = self.optimizers()
        real = batch["image"]
        index = int(self.batches_seen)
        logs = self.discriminator_step(real, d_optimizer, index)
        logs.update(self.generator_step(real.shape[0], g_optimizer, index))
        global_batch = self.global_batch(real.shape[0])
        decay = self.ema_decay(global_batch)
        self.update_ema(decay)
        self.batches_seen += 1
        self.images_seen += global_batch
        logs.update(ema_decay=torch.tensor(decay, device=real.device), kimg=self.images_seen.float() / 1000)
        self._last_logs = logs
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, sync_dist=True)
        every = self.hparams.image_log_every
        if every and index % every == 0:
            self._log_samples("train/ema_samples")
        return logs["g_loss"]

    # ------------------------------------------------------------------ validation
    def _log_samples(self, tag: str) -> None:
        count = self.hparams.n_sample_images
        images = self.sample(count, self.hparams.sample_seed)
        columns = max(1, int(math.sqrt(count)))
        rows = [images[i::columns] for i in range(columns)]
        rows = [r[: rows[-1].shape[0]] for r in rows]
        self.log_image_grid(tag, rows, max_images=count)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        if self.fid is None:
            return
        real = batch["image"]
        fake = self.sample(real.shape[0], self.hparams.sample_seed + 1 + batch_idx, randomize_noise=True)
        self.fid.update(real, real=True)
        self.fid.update(fake.clamp(-1, 1), real=False)

    def on_validation_epoch_end(self) -> None:
        self._log_samples("val/ema_samples")
        if self.fid is not None:
            if self.fid.real_count >= 2 and self.fid.fake_count >= 2:
                self.log(self.fid_name, self.fid.compute(), sync_dist=False)
            self.fid.reset()

    # ------------------------------------------------------------------ export
    @torch.no_grad()
    def refresh_latent_avg(self) -> torch.Tensor:
        """Recompute ``latent_avg`` = mean of the EMA mapping over ``n_mean_latent`` seeded z."""
        mean = self.generator_ema.mean_latent(self.hparams.n_mean_latent, torch.Generator().manual_seed(0))
        self.latent_avg.copy_(mean.reshape(-1))
        return self.latent_avg

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"]["latent_avg"] = self.refresh_latent_avg().detach().clone()
        super().on_save_checkpoint(checkpoint)

    def export_generator(self, path: str | Path, with_discriminator: bool = True) -> Path:
        """Write the EMA generator (rosinality ``.pt``: ``g_ema``, ``latent_avg``, ``d``, ``generator_config``)."""
        latent_avg = self.refresh_latent_avg()
        return save_generator(path, self.generator_ema, latent_avg=latent_avg,
                              discriminator=self.discriminator if with_discriminator else None)

    def on_train_end(self) -> None:
        self.export_at_fit_end(self.export_generator)
