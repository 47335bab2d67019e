"""``GradStyleModule``: trains GradStyle's modules over a frozen e4e encoder and a frozen StyleGAN2 generator.

Self-supervised (the paper's section on training): the editing stream runs on the *unedited* codes (alpha = 0),
so its target is the source image too; the residual features it receives are warped by random perspective
transforms (:func:`~.augment.random_perspective`) to simulate the misalignment an edit causes, and the Aligner is
supervised by the unwarped residuals. The residuals enter the editing stream detached: the Gradual Residual
Modules learn from the reconstruction stream only, the Aligners (and the shared Gate&Fusion) from the editing one.

Losses (Eq. 10-15), ``X`` the image, ``X^r`` / ``X^e`` the reconstruction / editing streams::

    L = l2 * (MSE(X^r, X) + MSE(X^e, X)) + lpips * (LPIPS(X^r, X) + LPIPS(X^e, X))
        + id * ((1 - cos_id(X^r, X)) + (1 - cos_id(X^e, X))) + adv * (softplus(-D(X^r)) + softplus(-D(X^e)))
        + f * sum_m mean|g_m * F_m|  (reconstruction stream)  + aligner * sum_m mean|F'_m - F_m|

``||.||_1`` terms are means over elements (per stage, summed over stages). LPIPS is the VGG one by default (Eq. 12
names a pre-trained VGG; ``lpips_net="alex"`` selects AlexNet, the loss of pSp / e4e). The discriminator starts from the
generator file's discriminator when it holds one, else it is a new StyleGAN2 :class:`Discriminator` shaped like
the generator; it is trained with the logistic loss on real images versus both streams, plus lazy R1.

Counting: one training step = one batch = one update of GradStyle's modules. Discriminator and R1 updates do
not advance ``global_step`` (:meth:`ToolkitModule.auxiliary_step`), so ``trainer.max_steps`` counts batches.

Evaluation: inversion metrics (L2, PSNR, SSIM, MS-SSIM, and LPIPS / identity similarity when their weights exist)
of the reconstruction stream, ``<prefix>e4e_l2`` (the e4e base, W+ alone, for comparison) and, per edit and
strength, ``<prefix>edit_l2/<name>_<strength>`` (MSE of the edited image to the source, for information) and,
with an identity network, ``<prefix>edit_id/<name>_<strength>`` (identity similarity to the source: the paper's
Table 2 protocol with pose and smile edits). The identity network of the evaluation is ``eval_id_backend``, by
default CurricularFace (the network the paper measures ID with, Huang et al. 2020), not the ArcFace of the
training loss: a metric computed by the network the model was trained against flatters it.
``configs/gradstyle-celebahq-test.yaml`` is the paper's test protocol (the first 1,000 CelebA-HQ images at
1024 px, InterFaceGAN pose and smile at +-2).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..editing import apply_direction, apply_ganspace, fit_pca, load_direction, sample_latents
from ..encoders.inverter import LatentEncoder, build_latent_encoder, encoder_spec, resize_images
from ..losses import InversionLosses, g_nonsaturating_loss
from ..metrics import build_metric_networks, inversion_metrics
from ..metrics.networks import IdentitySimilarity
from ..optim import build_optimizer
from ..serialization import CheckpointError
from ..stylegan2 import Discriminator, FrozenGenerator, load_discriminator
from ..training import ToolkitModule, model_from_checkpoint
from .model import GradStyle, StreamOutput


def load_e4e_encoder(path: str, generator: FrozenGenerator, generator_path: str | None = None) -> LatentEncoder:
    """The frozen e4e (or pSp) :class:`LatentEncoder` of ``path``: an official-layout file (its generator is
    replaced by ``generator``) or an ``EncoderModule`` Lightning checkpoint (loaded against ``generator_path``)."""
    from ..encoders import load_encoder
    from ..encoders.module import EncoderModule
    from ..inversion import _is_lightning_checkpoint

    if _is_lightning_checkpoint(path):
        overrides = {"generator": generator_path} if generator_path else {}
        module = EncoderModule.load_from_checkpoint(path, map_location="cpu", lpips_lambda=0.0, id_lambda=0.0,
                                                    **overrides)
        return module.inverter.encoder
    return load_encoder(path, generator=generator).encoder


def build_discriminator_for(generator_path: str, generator: FrozenGenerator) -> tuple[Discriminator, bool]:
    """``(discriminator, from_file)``: the generator file's discriminator when it holds one, else a new
    :class:`Discriminator` with the generator's size and channel layout."""
    try:
        return load_discriminator(generator_path), True
    except CheckpointError:
        config = generator.generator.config
        return Discriminator(config["size"], channel_multiplier=config["channel_multiplier"],
                             blur_kernel=config["blur_kernel"], channel_max=config["channel_max"],
                             channels=config.get("channels")), False


def _strength_label(strength: float) -> str:
    return f"{float(strength):g}"


class GradStyleModule(ToolkitModule):
    """Train :class:`GradStyle` (see the module docstring) over the frozen ``generator`` and e4e ``e4e_checkpoint``.

    The paper's setting (FFHQ 1024, batch 8, 70k iterations): ``l2_lambda`` 1, ``lpips_lambda`` 0.8,
    ``id_lambda`` 0.1 (faces; 0.5 for cars), ``adv_lambda`` 0.001, ``f_lambda`` 0.01, ``aligner_lambda`` 0.1,
    Adam + Lookahead at lr 1e-4 for the framework and Adam at 1e-4 for the discriminator. Lazy R1 on the
    discriminator (gamma 10 every 16 batches) as in :class:`~stylegan_lightning.encoders.EncoderModule`.

    Args:
        generator: generator file (rosinality ``.pt``, NVlabs ``.pkl``, ...); its discriminator, when present,
            initialises the adversarial discriminator.
        e4e_checkpoint: the frozen encoder: an official e4e file or an ``EncoderModule`` Lightning checkpoint
            (needed again whenever a checkpoint of this module is loaded).
        refine_layers, hidden, aligner_layers, aligner_heads, aligner_head_dim, top_ratio, perspective,
            grm_blocks, grm_downsamplings, gate_blocks, gate_hidden, perspective_p: the :class:`GradStyle` model
            (default refinement after styled convs 1, 4, 6 = the paper's blocks 3, 6, 8 at 8, 16, 32 px; 8 heads of
            64; perspective distortion 0.15, each sample warped with probability 0.5).
        l2_lambda, lpips_lambda, id_lambda, adv_lambda, f_lambda, aligner_lambda: loss weights (see above). LPIPS
            and identity need pretrained files (``stylegan-lightning weights``); a non-zero weight without them is
            an error. ``adv_lambda = 0`` trains without a discriminator.
        lpips_net, id_backend: LPIPS backbone (``"vgg"``, Eq. 12; ``"alex"`` selectable) and identity network of
            the loss (``"arcface"``, Eq. 13).
        eval_id_backend: identity network of the evaluation metrics (``id_similarity``, ``edit_id/...``):
            ``"curricularface"`` (default, the paper's), ``"onnx"``, ``"mobilefacenet"``, ``"arcface"``;
            ``None``: the loss's ``id_backend``. A missing file leaves these metrics out with a warning.
        discriminator_lr, r1_gamma, d_reg_every: discriminator learning rate, R1 weight and lazy R1 interval.
        optimizer, lr: GradStyle's optimiser (``"adam_lookahead"``) and learning rate.
        loss_resolution: compare images for L2 at this size (``None``: the dataset's resolution).
        edit_directions: ``{name: direction file}`` (InterFaceGAN ``.npy``, e4e / toolkit ``.pt``) evaluated in
            validation and test, e.g. pose and smile.
        edit_strengths: strengths applied along each direction (relative: ``w + s * vector``).
        ganspace_components: GANSpace components (PCA of ``ganspace_samples`` mapped codes of the generator,
            fitted on first use) evaluated as edits ``pc<i>`` on every layer, shifted by ``s`` standard deviations.
        ganspace_samples: codes sampled for that PCA.
        metric_networks: build the LPIPS / identity networks of the evaluation metrics (the inversion tools turn
            this off; losses with non-zero weights build theirs anyway).
        weights: explicit paths of pretrained files by registry key.
        image_log_every: batches between TensorBoard grids (input | X^r | X^e).
    """

    def __init__(
        self,
        generator: str,
        e4e_checkpoint: str,
        refine_layers: list[int] | None = None,
        hidden: int | None = None,
        aligner_layers: int = 2,
        aligner_heads: int = 8,
        aligner_head_dim: int = 64,
        top_ratio: float = 0.5,
        perspective: float = 0.15,
        grm_blocks: int = 2,
        grm_downsamplings: int = 1,
        gate_blocks: int = 2,
        gate_hidden: int | None = None,
        perspective_p: float = 0.5,
        l2_lambda: float = 1.0,
        lpips_lambda: float = 0.8,
        lpips_net: str = "vgg",
        id_lambda: float = 0.1,
        id_backend: str = "arcface",
        eval_id_backend: str | None = "curricularface",
        adv_lambda: float = 0.001,
        f_lambda: float = 0.01,
        aligner_lambda: float = 0.1,
        discriminator_lr: float = 1e-4,
        r1_gamma: float = 10.0,
        d_reg_every: int = 16,
        optimizer: str = "adam_lookahead",
        lr: float = 1e-4,
        loss_resolution: int | None = None,
        edit_directions: dict[str, str] | None = None,
        edit_strengths: tuple[float, ...] = (-3.0, 3.0),
        ganspace_components: list[int] | None = None,
        ganspace_samples: int = 10000,
        metric_networks: bool = True,
        weights: dict[str, str] | None = None,
        image_log_every: int = 1000,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        weights = dict(weights or {})
        frozen = FrozenGenerator.from_file(generator)
        encoder = load_e4e_encoder(e4e_checkpoint, frozen, generator)
        self.model = GradStyle(encoder, frozen, **{k: getattr(self.hparams, k) for k in MODEL_ARGUMENTS})
        self.inversion_losses = InversionLosses(l2_lambda, lpips_lambda, id_lambda, lpips_net, id_backend, weights,
                                                loss_resolution)
        self.uses_discriminator = adv_lambda > 0
        self.discriminator_from_file = False
        if self.uses_discriminator:
            self.discriminator, self.discriminator_from_file = build_discriminator_for(generator, frozen)
            self.discriminator.requires_grad_(False)
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        eval_backend = eval_id_backend or id_backend
        options = dict(lpips_net=lpips_net, identity_backend=eval_backend)
        given = self.inversion_losses.networks()
        if eval_backend != id_backend:
            given["identity"] = None  # the evaluation's identity network is its own, not the loss's
        networks = build_metric_networks(("lpips", "identity"), weights, given, build=metric_networks, **options)
        self.val_metrics = inversion_metrics("val/", weights, networks, build=False, **options)
        self.test_metrics = inversion_metrics("test/", weights, networks, build=False, **options)
        self.edit_names = [f"{name}_{_strength_label(s)}" for name in self._edit_sources() for s in edit_strengths]
        self.edit_id = nn.ModuleDict()
        if "identity" in networks:
            for split in ("val", "test"):
                for label in self.edit_names:
                    self.edit_id[self._metric_key(split, label)] = IdentitySimilarity(networks["identity"])
        self._edits: dict[str, Any] | None = None

    # ------------------------------------------------------------------ edits
    def _edit_sources(self) -> list[str]:
        names = list((self.hparams.edit_directions or {}).keys())
        return names + [f"pc{int(i)}" for i in (self.hparams.ganspace_components or [])]

    @staticmethod
    def _metric_key(split: str, label: str) -> str:
        return f"{split}__{label}".replace(".", "p").replace("-", "m")  # ModuleDict keys take no dots

    def edits(self) -> dict[str, Any]:
        """``{name: Direction or (PCA, component)}`` of the evaluation edits (directions loaded and the GANSpace
        PCA fitted on first use)."""
        if self._edits is None:
            edits: dict[str, Any] = {name: load_direction(path, name=name)
                                     for name, path in (self.hparams.edit_directions or {}).items()}
            components = [int(i) for i in (self.hparams.ganspace_components or [])]
            if components:
                latents = sample_latents(self.model.generator, self.hparams.ganspace_samples)
                pca = fit_pca(latents, max(components) + 1)
                edits.update({f"pc{i}": (pca, i) for i in components})
            self._edits = edits
        return self._edits

    def edited_codes(self, w_plus: torch.Tensor, name: str, strength: float) -> torch.Tensor:
        """``w_plus`` moved by edit ``name`` with ``strength``."""
        edit = self.edits()[name]
        if isinstance(edit, tuple):
            pca, index = edit
            return apply_ganspace(w_plus, pca, index, 0, None, strength, mode="shift")
        return apply_direction(w_plus, edit, strength, n_latent=w_plus.shape[1])

    # ------------------------------------------------------------------ losses
    def image_losses(self, images: torch.Tensor, streams: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """L2, LPIPS and identity of every stream's image against ``images`` (summed over streams, weighted)."""
        losses: dict[str, torch.Tensor] = {}
        for output in streams:
            for key, value in self.inversion_losses(output, images).items():
                losses[key] = losses[key] + value if key in losses else value
        return losses

    def feature_losses(self, reconstruction: StreamOutput, editing: StreamOutput) -> dict[str, torch.Tensor]:
        """``L_f = sum_m mean|g_m * F_m|`` (reconstruction stream) and ``L_aligner = sum_m mean|F'_m - F_m|``
        with ``F_m`` detached (the target of the Aligner)."""
        hp = self.hparams
        losses = {}
        if hp.f_lambda > 0:
            losses["f"] = sum((g * r).abs().mean() for g, r in zip(reconstruction.gates, reconstruction.residuals))
            losses["f"] = losses["f"] * hp.f_lambda
        if hp.aligner_lambda > 0:
            losses["aligner"] = sum(F.l1_loss(aligned, target.detach())
                                    for aligned, target in zip(editing.residuals, reconstruction.residuals))
            losses["aligner"] = losses["aligner"] * hp.aligner_lambda
        return losses

    def _to_discriminator(self, images: torch.Tensor) -> torch.Tensor:
        size = self.discriminator.size
        return images if images.shape[-1] == size else resize_images(images, size)

    def adversarial_loss(self, streams: Sequence[torch.Tensor]) -> torch.Tensor:
        """Non-saturating generator loss of every stream (Eq. 14), weighted by ``adv_lambda``."""
        discriminator = self.discriminator.requires_grad_(False)
        loss = sum(g_nonsaturating_loss(discriminator(self._to_discriminator(x))) for x in streams)
        return loss * self.hparams.adv_lambda

    def discriminator_step(self, images: torch.Tensor, fakes: Sequence[torch.Tensor], optimizer,
                           batch_index: int) -> dict[str, torch.Tensor]:
        """One discriminator update (real ``images`` versus the detached ``fakes`` of both streams), then lazy R1
        every ``d_reg_every`` batches."""
        hp = self.hparams
        real = self._to_discriminator(images)
        fake = torch.cat([self._to_discriminator(x.detach()) for x in fakes])
        return self.discriminator_update(self.discriminator, optimizer, real, fake, batch_index, hp.r1_gamma,
                                         hp.d_reg_every)

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self):
        model_optimizer = build_optimizer(self.hparams.optimizer, self.trainable_parameters(self.model),
                                          lr=self.hparams.lr)
        if not self.uses_discriminator:
            return model_optimizer
        d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.discriminator_lr)
        return [model_optimizer, d_optimizer]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, StreamOutput, StreamOutput]:
        """Training pass: ``(w_plus, reconstruction stream, augmented editing stream with alpha = 0)``."""
        w_plus, features = self.model.encode(images)
        reconstruction = self.model.reconstruct(w_plus, features)
        editing = self.model.edit_stream(w_plus, w_plus, [r.detach() for r in reconstruction.residuals], augment=True)
        return w_plus, reconstruction, editing

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        optimizers = self.optimizers()
        model_optimizer, d_optimizer = optimizers if isinstance(optimizers, list) else (optimizers, None)
        index = int(self.batches_seen)
        images = batch["image"]
        _, reconstruction, editing = self(images)
        streams = [reconstruction.image, editing.image]
        logs: dict[str, torch.Tensor] = {}
        if self.uses_discriminator:
            logs.update(self.discriminator_step(images, streams, d_optimizer, index))
        losses = {**self.image_losses(images, streams), **self.feature_losses(reconstruction, editing)}
        if self.uses_discriminator:
            losses["adv"] = self.adversarial_loss(streams)
        loss = sum(losses.values())
        model_optimizer.zero_grad()
        self.manual_backward(loss)
        model_optimizer.step()
        self.batches_seen += 1
        logs.update({f"loss_{k}": v.detach() for k, v in losses.items()})
        logs["gate_mean"] = torch.stack([g.detach().mean() for g in reconstruction.gates]).mean()
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, sync_dist=True)
        self.log("train/loss_total", loss.detach(), prog_bar=True, sync_dist=True)
        if self.hparams.image_log_every and index % self.hparams.image_log_every == 0:
            self.log_image_grid("train/input_reconstruction_editing", [images, *[x.detach() for x in streams]])
        return loss.detach()

    def _evaluate(self, batch: dict[str, Any], metrics, split: str, batch_idx: int) -> None:
        images = batch["image"]
        size = images.shape[-1]
        w_plus, features = self.model.encode(images)
        reconstruction = self.model.reconstruct(w_plus, features)
        editing = self.model.edit_stream(w_plus, w_plus, reconstruction.residuals)
        x_rec = resize_images(reconstruction.image, size).clamp(-1, 1)
        metrics.update(preds=x_rec, target=images)
        base = resize_images(self.model.generator(w_plus), size).clamp(-1, 1)
        self.log(f"{split}/e4e_l2", F.mse_loss(base, images), sync_dist=True, batch_size=len(images))
        grid = [images, x_rec, resize_images(editing.image, size)]
        for name in self._edit_sources():
            for strength in self.hparams.edit_strengths:
                label = f"{name}_{_strength_label(strength)}"
                codes = self.edited_codes(w_plus, name, strength)
                edited = resize_images(self.model.edit_stream(codes, w_plus, reconstruction.residuals).image,
                                       size).clamp(-1, 1)
                self.log(f"{split}/edit_l2/{label}", F.mse_loss(edited, images), sync_dist=True,
                         batch_size=len(images))
                key = self._metric_key(split, label)
                if key in self.edit_id:
                    self.edit_id[key].update(preds=edited, target=images)
                if len(grid) == 3:
                    grid.append(edited)
        if batch_idx == 0:
            self.log_image_grid(f"{split}/input_reconstruction_editing", grid)

    def _log_epoch(self, metrics, split: str) -> None:
        self.log_dict(metrics.compute(), sync_dist=False)
        metrics.reset()
        for label in self.edit_names:
            key = self._metric_key(split, label)
            if key in self.edit_id:
                self.log(f"{split}/edit_id/{label}", self.edit_id[key].compute(), sync_dist=False)
                self.edit_id[key].reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val", batch_idx)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test", batch_idx)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_metrics, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        w_plus, reconstruction = self.model.invert(batch["image"])
        return {"key": batch.get("key"), "w_plus": w_plus.cpu(), "reconstruction": reconstruction.clamp(-1, 1).cpu()}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gradstyle_encoder_spec"] = encoder_spec(self.model.encoder)


MODEL_ARGUMENTS = ("refine_layers", "hidden", "aligner_layers", "aligner_heads", "aligner_head_dim", "top_ratio",
                   "perspective", "grm_blocks", "grm_downsamplings", "gate_blocks", "gate_hidden", "perspective_p")


def load_gradstyle(checkpoint: str, generator: str | None = None) -> GradStyle:
    """The :class:`GradStyle` model of a ``GradStyleModule`` Lightning checkpoint, in eval mode. The checkpoint
    holds everything (frozen e4e and generator included), so no other file is needed; ``generator`` replaces the
    stored generator with the one in that file. Registered as the inversion method ``gradstyle`` of
    ``stylegan-lightning invert`` / ``edit``."""

    def build(data: dict, hparams: dict, frozen: FrozenGenerator) -> GradStyle:
        encoder = build_latent_encoder(data["gradstyle_encoder_spec"], frozen)
        return GradStyle(encoder, frozen, **{k: hparams[k] for k in MODEL_ARGUMENTS if k in hparams})

    return model_from_checkpoint(checkpoint, "GradStyle checkpoint (a GradStyleModule Lightning checkpoint)",
                                 "gradstyle_encoder_spec", "generator.", build, generator)
