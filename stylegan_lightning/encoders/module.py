"""``EncoderModule``: trains a pSp, e4e or W encoder against a frozen StyleGAN2 generator.

Losses (pSp / e4e): L2 + LPIPS + identity on the reconstruction, W-norm (pSp) or delta regularisation (e4e),
and e4e's latent-code discriminator (non-saturating, R1 every ``d_reg_every`` batches, 50-entry latent pools).
Manual optimisation: per batch one discriminator step, then one encoder step. e4e's progressive schedule enables
style offset i at batch ``progressive_start + (i - 1) * progressive_step_every``.

Counting: one training step = one batch = one encoder update. The discriminator's updates do not advance
``global_step`` (see :meth:`ToolkitModule.auxiliary_step`), so ``trainer.max_steps`` counts batches; schedules
use the module's own counter (``batches_seen``, saved in checkpoints).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..losses import InversionLosses, g_nonsaturating_loss
from ..losses import delta_regularizer, w_norm
from ..metrics import build_metric_networks, inversion_metrics
from ..optim import build_optimizer
from ..stylegan2 import FrozenGenerator
from ..training import ToolkitModule
from .backbone import OFFICIAL_BLOCKS, OFFICIAL_CHANNELS
from .checkpoints import load_encoder, save_encoder_checkpoint
from .inverter import Inverter, build_inverter, build_latent_encoder, encoder_spec, resize_images
from .latent_discriminator import LatentCodesDiscriminator, LatentPool


class EncoderModule(ToolkitModule):
    """Train an encoder (``encoder_type`` ``"psp"``, ``"e4e"`` or ``"w"``) to invert ``generator``.

    Args:
        generator: generator file (rosinality ``.pt``, NVlabs ``.pkl``, ...; see ``stylegan-lightning inspect``).
        encoder_type: ``"psp"``, ``"e4e"`` or ``"w"``.
        backbone_blocks, backbone_channels: IR-SE units and widths per stage (official IR-SE50 by default; small
            values make CPU-sized encoders).
        input_size: encoder input resolution (256 official).
        irse_init: ``model_ir_se50.pth`` to start the backbone from (pSp / e4e practice), or ``None``.
        init_checkpoint: an official-layout pSp / e4e / W-encoder checkpoint to start from instead.
        start_from_latent_avg: add the generator's ``latent_avg`` to the encoder output.
        l2_lambda, lpips_lambda, id_lambda: reconstruction loss weights (faces: 1.0, 0.8, 0.1). LPIPS and identity
            need pretrained files (``stylegan-lightning weights``); a non-zero weight without them is an error.
        lpips_net, id_backend: LPIPS backbone (``"alex"`` as pSp) and identity network (``"arcface"``).
        w_norm_lambda: pSp's W-norm regulariser (0 for faces).
        delta_norm_lambda: e4e's delta regulariser (2e-4), active while the progressive stage is below the last.
        w_discriminator_lambda: weight of the latent discriminator's adversarial loss (e4e: 0.1; 0 disables it).
        w_discriminator_lr, r1_gamma, d_reg_every, w_pool_size: its learning rate (2e-5), R1 weight (10), lazy
            R1 interval (16 batches) and latent-pool size (50).
        progressive_start, progressive_step_every: e4e's schedule in batches (20000, 2000); ``None`` trains
            every style from the start.
        optimizer, lr: encoder optimiser (``"ranger"``, lr 1e-4 as pSp / e4e) and its learning rate.
        loss_resolution: compare images at this size (``None``: the dataset's resolution).
        weights: explicit paths of pretrained files by registry key (e.g. ``{"alexnet_imagenet": ...}``).
        image_log_every: batches between TensorBoard grids (input | reconstruction).
        export_path: write the trained encoder + generator in the official e4e / pSp layout (:meth:`export`;
            read by ``load_encoder``, ``--method encoder`` and ``GradStyleModule``) here at the end of fit.
    """

    def __init__(
        self,
        generator: str,
        encoder_type: str = "e4e",
        backbone_blocks: tuple[int, ...] = OFFICIAL_BLOCKS,
        backbone_channels: tuple[int, ...] = OFFICIAL_CHANNELS,
        input_size: int = 256,
        irse_init: str | None = None,
        init_checkpoint: str | None = None,
        start_from_latent_avg: bool = True,
        l2_lambda: float = 1.0,
        lpips_lambda: float = 0.8,
        lpips_net: str = "alex",
        id_lambda: float = 0.1,
        id_backend: str = "arcface",
        w_norm_lambda: float = 0.0,
        delta_norm_lambda: float = 2e-4,
        w_discriminator_lambda: float = 0.1,
        w_discriminator_lr: float = 2e-5,
        r1_gamma: float = 10.0,
        d_reg_every: int = 16,
        w_pool_size: int = 50,
        progressive_start: int | None = 20000,
        progressive_step_every: int = 2000,
        optimizer: str = "ranger",
        lr: float = 1e-4,
        loss_resolution: int | None = None,
        weights: dict[str, str] | None = None,
        image_log_every: int = 1000,
        export_path: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        weights = dict(weights or {})
        frozen = FrozenGenerator.from_file(generator)
        if init_checkpoint:
            self.inverter = load_encoder(init_checkpoint, kind=encoder_type, generator=frozen)
        else:
            self.inverter = build_inverter(encoder_type, frozen, input_size, tuple(backbone_blocks),
                                           tuple(backbone_channels), irse_path=irse_init,
                                           start_from_latent_avg=start_from_latent_avg)
        self.inversion_losses = InversionLosses(l2_lambda, lpips_lambda, id_lambda, lpips_net, id_backend, weights,
                                                loss_resolution, lpips_resolution=loss_resolution)
        self.uses_discriminator = w_discriminator_lambda > 0
        if self.uses_discriminator:
            self.latent_discriminator = LatentCodesDiscriminator(frozen.style_dim)
            self.real_w_pool = LatentPool(w_pool_size, frozen.style_dim)
            self.fake_w_pool = LatentPool(w_pool_size, frozen.style_dim)
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        # one set of frozen networks for the losses and both metric collections
        options = dict(lpips_net=lpips_net, identity_backend=id_backend)
        networks = build_metric_networks(("lpips", "identity"), weights, self.inversion_losses.networks(), **options)
        self.val_metrics = inversion_metrics("val/", weights, networks, build=False, **options)
        self.test_metrics = inversion_metrics("test/", weights, networks, build=False, **options)

    # ------------------------------------------------------------------ schedule
    @property
    def generator(self) -> FrozenGenerator:
        return self.inverter.decoder

    @property
    def is_progressive(self) -> bool:
        return self.inverter.kind == "e4e" and self.hparams.progressive_start is not None

    def progressive_stage(self, batch_index: int) -> int:
        """e4e stage after ``batch_index`` training batches: 0 before ``progressive_start``, then one more
        style offset every ``progressive_step_every`` batches, up to ``n_styles - 1`` (all)."""
        last = self.generator.n_latent - 1
        if not self.is_progressive:
            return last
        start, every = self.hparams.progressive_start, self.hparams.progressive_step_every
        if batch_index < start:
            return 0
        return min(last, 1 + (batch_index - start) // every)

    # ------------------------------------------------------------------ losses
    def reconstruction_losses(self, images: torch.Tensor, reconstruction: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.inversion_losses(reconstruction, images)

    def latent_losses(self, w_plus: torch.Tensor, stage: int) -> dict[str, torch.Tensor]:
        hp = self.hparams
        losses = {}
        if hp.w_norm_lambda > 0:
            avg = self.inverter.latent_avg if self.inverter.encoder.start_from_latent_avg else None
            losses["w_norm"] = w_norm(w_plus, avg) * hp.w_norm_lambda
        if self.is_progressive and hp.delta_norm_lambda > 0 and 0 < stage < self.generator.n_latent - 1:
            losses["delta"] = delta_regularizer(w_plus, upto=stage) * hp.delta_norm_lambda
        if self.uses_discriminator:
            self.latent_discriminator.requires_grad_(False)
            dims = w_plus[:, : stage + 1]
            logits = self.latent_discriminator(dims.reshape(-1, dims.shape[-1]))
            losses["w_adversarial"] = g_nonsaturating_loss(logits) * hp.w_discriminator_lambda
        return losses

    def discriminator_step(self, w_plus: torch.Tensor, optimizer, batch_index: int) -> dict[str, torch.Tensor]:
        """One latent-discriminator update on a detached W+: real w = mapping(z), fake = the encoder's w0 (both
        through the pools), then lazy R1 every ``d_reg_every`` batches."""
        hp = self.hparams
        with torch.no_grad():
            z = torch.randn(w_plus.shape[0], self.generator.style_dim, device=w_plus.device)
            real_w = self.real_w_pool.query(self.generator.mapping(z))
            fake_w = self.fake_w_pool.query(w_plus[:, 0])
        return self.discriminator_update(self.latent_discriminator, optimizer, real_w, fake_w, batch_index,
                                         hp.r1_gamma, hp.d_reg_every)

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self):
        encoder_optimizer = build_optimizer(self.hparams.optimizer, self.trainable_parameters(self.inverter.encoder),
                                            lr=self.hparams.lr)
        if not self.uses_discriminator:
            return encoder_optimizer
        d_optimizer = torch.optim.Adam(self.latent_discriminator.parameters(), lr=self.hparams.w_discriminator_lr)
        return [encoder_optimizer, d_optimizer]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        optimizers = self.optimizers()
        encoder_optimizer, d_optimizer = (optimizers if isinstance(optimizers, list) else (optimizers, None))
        index = int(self.batches_seen)
        stage = self.progressive_stage(index)
        if self.inverter.kind == "e4e":
            self.inverter.encoder.set_progressive_stage(stage)
        images = batch["image"]
        logs: dict[str, torch.Tensor] = {}
        w_plus, reconstruction = self.inverter.invert(images)
        if self.uses_discriminator:  # e4e order: update D first; the encoder loss then uses the updated D
            logs.update(self.discriminator_step(w_plus.detach(), d_optimizer, index))
        losses = {**self.reconstruction_losses(images, reconstruction), **self.latent_losses(w_plus, stage)}
        loss = sum(losses.values())
        encoder_optimizer.zero_grad()
        self.manual_backward(loss)
        encoder_optimizer.step()
        self.batches_seen += 1
        logs.update({f"loss_{k}": v.detach() for k, v in losses.items()})
        logs.update(loss=loss.detach(), progressive_stage=torch.tensor(float(stage)))
        latent_error = self._latent_error(batch, w_plus)
        if latent_error is not None:
            logs["latent_mse"] = latent_error
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, prog_bar=False, sync_dist=True)
        self.log("train/loss_total", loss.detach(), prog_bar=True, sync_dist=True)
        if self.hparams.image_log_every and index % self.hparams.image_log_every == 0:
            self.log_image_grid("train/input_reconstruction", [images, reconstruction.detach()])
        return loss.detach()

    @staticmethod
    def _latent_error(batch: dict[str, Any], w_plus: torch.Tensor) -> torch.Tensor | None:
        """Mean squared error to the true latent when the batch carries one (synthetic data)."""
        if "w_plus" in batch:
            return F.mse_loss(w_plus.detach(), batch["w_plus"])
        if "w" in batch:
            return F.mse_loss(w_plus.detach(), batch["w"][:, None].expand_as(w_plus))
        return None

    def _evaluate(self, batch: dict[str, Any], metrics, prefix: str, batch_idx: int) -> None:
        images = batch["image"]
        w_plus, reconstruction = self.inverter.invert(images)
        reconstruction = resize_images(reconstruction, images.shape[-1]).clamp(-1, 1)
        metrics.update(preds=reconstruction, target=images)
        latent_error = self._latent_error(batch, w_plus)
        if latent_error is not None:
            self.log(f"{prefix}latent_mse", latent_error, sync_dist=True)
        if batch_idx == 0:
            self.log_image_grid(f"{prefix}input_reconstruction", [images, reconstruction])

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val/", batch_idx)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), sync_dist=False)
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test/", batch_idx)

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=False)
        self.test_metrics.reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        w_plus, reconstruction = self.inverter.invert(batch["image"])
        return {"key": batch.get("key"), "w_plus": w_plus.cpu(), "reconstruction": reconstruction.clamp(-1, 1).cpu()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[SPEC_KEY] = encoder_spec(self.inverter.encoder)

    # ------------------------------------------------------------------ export
    def on_fit_end(self) -> None:
        self.export_at_fit_end()

    def export(self, path: str) -> str:
        """Write the trained encoder + generator in the official pSp / e4e checkpoint layout."""
        skip = ("encoder_type", "export_path")  # the type is set by the saver
        options = {k: v for k, v in self.hparams.items()
                   if isinstance(v, (int, float, str, bool, type(None))) and k not in skip}
        return str(save_encoder_checkpoint(path, self.inverter, opts=options))


SPEC_KEY = "encoder_spec"


def _spec_from_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """The encoder architecture of a checkpoint written before :data:`SPEC_KEY` was stored, from the module's
    hyperparameters (not possible when it started from ``init_checkpoint``: that file fixed the architecture)."""
    from ..serialization import CheckpointError

    if "encoder_type" not in hparams:
        raise CheckpointError("it is not one (no 'encoder_spec' entry and no encoder_type hyperparameter)")
    if hparams.get("init_checkpoint"):
        raise CheckpointError("it has no 'encoder_spec' entry and started from an init_checkpoint, so its "
                              "architecture is unknown")
    return {"kind": hparams["encoder_type"], "input_size": int(hparams.get("input_size", 256)),
            "blocks": list(hparams.get("backbone_blocks", OFFICIAL_BLOCKS)),
            "channels": list(hparams.get("backbone_channels", OFFICIAL_CHANNELS)),
            "start_from_latent_avg": bool(hparams.get("start_from_latent_avg", True))}


def load_encoder_module_checkpoint(path: str, generator: str | None = None) -> Inverter:
    """The :class:`Inverter` (encoder + frozen generator) of an ``EncoderModule`` Lightning checkpoint, in eval mode,
    read as plain data only (:func:`~stylegan_lightning.serialization.safe_torch_load`, whatever the environment
    says); ``generator`` replaces the stored generator with the one in that file. Checkpoints written before the
    encoder architecture was stored beside the weights are rebuilt from their hyperparameters."""
    from ..serialization import CheckpointError
    from ..training import model_from_checkpoint

    purpose = "encoder checkpoint (an EncoderModule Lightning checkpoint)"

    def build(data: dict, hparams: dict, frozen: FrozenGenerator) -> Inverter:
        try:
            spec = data[SPEC_KEY] if SPEC_KEY in data else _spec_from_hparams(hparams)
        except CheckpointError as error:
            raise CheckpointError(f"{purpose} '{path}': {error}") from None
        return Inverter(build_latent_encoder(spec, frozen), frozen)

    return model_from_checkpoint(path, purpose, "hyper_parameters", "decoder.", build, generator,
                                 model_prefix="inverter.")
