"""``HyperStyleModule``: trains HyperStyle's hypernetwork over a frozen W-encoder and a frozen StyleGAN2 generator.

Training follows the official coach: per batch, ``ŷ_0 = G(E_w(x))`` (no gradient), then for t = 1..n_iters one
refinement step ``Δ_t = Δ_{t-1} + H(x ⊕ ŷ_{t-1})``, ``ŷ_t = G(w; Δ_t)`` with its own loss and its own backward pass
(``Δ_{t-1}`` and ``ŷ_{t-1}`` enter detached, so every step learns to improve on the previous one), the gradients
accumulating over the steps; then ONE optimiser step. Loss of every step::

    L_t = l2 * MSE(ŷ_t, x) + lpips * LPIPS(ŷ_t, x) + id * (1 - cos_id(ŷ_t, x))

Counting: one training step = one batch = one optimiser step, so ``trainer.max_steps`` counts batches.

Evaluation: inversion metrics (L2, PSNR, SSIM, MS-SSIM, and LPIPS / identity similarity when their weights exist)
for every iteration, ``<split>/iter<t>/<metric>`` with t = 0 (the W-encoder alone) .. n_iters, so the refinement
curve is visible; a TensorBoard grid ``input | iter 0 | ... | iter n``.

Files: ``export_path`` writes the official ``hyperstyle_ffhq.pt`` layout at the end of fit (:func:`save_hyperstyle`,
read by :func:`load_hyperstyle`); Lightning checkpoints also carry the W-encoder's architecture, so
:func:`load_hyperstyle_module_checkpoint` rebuilds the model from the checkpoint alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..encoders.checkpoints import load_w_encoder
from ..encoders.inverter import build_latent_encoder, encoder_spec
from ..losses import InversionLosses
from ..metrics import build_metric_networks, inversion_metrics
from ..optim import build_optimizer
from ..serialization import build_unfilled
from ..stylegan2.checkpoints import strip_prefix
from ..stylegan2 import FrozenGenerator
from ..training import ToolkitModule, model_from_checkpoint
from ..utils.images import resize_images
from .checkpoints import save_hyperstyle
from .hypernet import HyperNetwork
from .model import HyperStyle, build_hyperstyle

CHECKPOINT_KEY = "hyperstyle_module"


class HyperStyleModule(ToolkitModule):
    """Train HyperStyle's hypernetwork (see the module docstring) over the frozen ``generator`` and the frozen
    W-encoder ``w_encoder_checkpoint``.

    The paper's setting (FFHQ 1024, batch 8, 500k steps): 5 iterations per batch, ``l2_lambda`` 1,
    ``lpips_lambda`` 0.8 (AlexNet), ``id_lambda`` 0.1 (ArcFace), Ranger at lr 1e-4, losses at 256 px, the
    hypernetwork input at 256 px, every non-toRGB layer tuned.

    Args:
        generator: generator file (rosinality ``.pt``, NVlabs ``.pkl``, ...).
        w_encoder_checkpoint: the frozen W-encoder in the official layout (``faces_w_encoder.pt``, or a file written
            by ``EncoderModule(encoder_type="w", export_path=...)``); read once at construction.
        layers_to_tune: generator weight slots to refine: ``None`` (official: every non-toRGB slot),
            ``"medium_fine"`` (the paper's medium + fine selection), a comma string or a list of slot indices.
        shared_layers: slots served by the shared hypernetwork (default: every square 3×3 slot of the widest
            channel count, the official choice).
        n_iters: refinement steps per batch in training and evaluation.
        input_size: the hypernetwork's input resolution (``16 · 2^k``; 256 official).
        zero_init: start with every offset exactly 0 (the model starts as the W-encoder alone).
        resnet34_init: a torchvision ResNet-34 (ImageNet) state dict file for the hypernetwork's body (the
            official initialisation: the official code builds ``resnet34(pretrained=True)``), or ``None`` for random
            weights (the default here, since nothing is downloaded; README "HyperStyle" says what it costs).
        resnet34_stem: also copy the ImageNet ``bn1`` and ``conv1`` (into its first 3 of 6 input channels); the
            official stem is new, random layers.
        l2_lambda, lpips_lambda, id_lambda: loss weights (faces: 1.0, 0.8, 0.1). LPIPS and identity need
            pretrained files (``stylegan-lightning weights``); a non-zero weight without them is an error.
        lpips_net, id_backend: LPIPS backbone and identity network.
        optimizer, lr: the hypernetwork's optimiser (``"ranger"`` as the paper, or ``"adam"``, ...) and rate.
        loss_resolution: compare images for L2 and LPIPS at this size (``None``: the dataset's resolution for L2,
            256 for LPIPS).
        metric_networks: build the LPIPS / identity networks of the evaluation metrics (losses with non-zero
            weights build theirs anyway).
        weights: explicit paths of pretrained files by registry key.
        image_log_every: batches between TensorBoard training grids (input | iter 0 | ... | iter n).
        export_path: write the trained model in the official HyperStyle layout here at the end of fit.
    """

    def __init__(
        self,
        generator: str,
        w_encoder_checkpoint: str,
        layers_to_tune: str | list[int] | None = None,
        shared_layers: list[int] | None = None,
        n_iters: int = 5,
        input_size: int = 256,
        zero_init: bool = False,
        resnet34_init: str | None = None,
        resnet34_stem: bool = False,
        l2_lambda: float = 1.0,
        lpips_lambda: float = 0.8,
        lpips_net: str = "alex",
        id_lambda: float = 0.1,
        id_backend: str = "arcface",
        optimizer: str = "ranger",
        lr: float = 1e-4,
        loss_resolution: int | None = None,
        metric_networks: bool = True,
        weights: dict[str, str] | None = None,
        image_log_every: int = 1000,
        export_path: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        if n_iters < 1:
            raise ValueError(f"n_iters must be ≥ 1, got {n_iters}")
        weights = dict(weights or {})
        frozen = FrozenGenerator.from_file(generator)
        w_encoder = load_w_encoder(w_encoder_checkpoint, generator=frozen).encoder
        self.model = build_hyperstyle(w_encoder, frozen, layers_to_tune, n_iters, input_size, zero_init,
                                      shared_layers, resnet34_init, resnet34_stem)
        self.model.decoder.requires_grad_(False)
        self.inversion_losses = InversionLosses(l2_lambda, lpips_lambda, id_lambda, lpips_net, id_backend, weights,
                                                loss_resolution, lpips_resolution=loss_resolution or 256)
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))
        options = dict(lpips_net=lpips_net, identity_backend=id_backend)
        networks = build_metric_networks(("lpips", "identity"), weights, self.inversion_losses.networks(),
                                         build=metric_networks, **options)
        # one collection per iteration (0 = the W-encoder alone), all sharing the same frozen networks
        self.val_metrics = nn.ModuleDict({f"iter{t}": inversion_metrics(f"val/iter{t}/", weights, networks,
                                                                        build=False, **options)
                                          for t in range(n_iters + 1)})
        self.test_metrics = nn.ModuleDict({f"iter{t}": inversion_metrics(f"test/iter{t}/", weights, networks,
                                                                         build=False, **options)
                                           for t in range(n_iters + 1)})

    @property
    def n_iters(self) -> int:
        return self.model.n_iters

    # ------------------------------------------------------------------ losses
    def image_losses(self, images: torch.Tensor, reconstruction: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted L2, LPIPS and identity losses of ``reconstruction`` against ``images``."""
        return self.inversion_losses(reconstruction, images)

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self):
        return build_optimizer(self.hparams.optimizer, self.trainable_parameters(self.model.hypernet),
                               lr=self.hparams.lr)

    def forward(self, images: torch.Tensor, n_iters: int | None = None):
        """The full iterative inversion (:meth:`HyperStyle.run`)."""
        return self.model.run(images, n_iters)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        optimizer = self.optimizers()
        index = int(self.batches_seen)
        images = batch["image"]
        model = self.model
        w_plus, reconstruction = model.initial(images)
        reconstructions, deltas = [reconstruction], None
        totals: dict[str, torch.Tensor] = {}
        logs: dict[str, torch.Tensor] = {}
        optimizer.zero_grad()
        for t in range(1, model.n_iters + 1):
            previous = None if deltas is None else [None if d is None else d.detach() for d in deltas]
            deltas, reconstruction = model.refine_step(images, reconstruction.detach(), w_plus, previous)
            losses = self.image_losses(images, reconstruction)
            loss = sum(losses.values())
            self.manual_backward(loss)  # one backward per iteration; gradients accumulate until the step
            reconstructions.append(reconstruction.detach())
            logs[f"iter{t}/loss"] = loss.detach()
            for key, value in losses.items():
                totals[key] = totals.get(key, 0) + value.detach() / model.n_iters
        optimizer.step()
        self.batches_seen += 1
        logs.update({f"loss_{k}": v for k, v in totals.items()})
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, sync_dist=True)
        total = logs[f"iter{model.n_iters}/loss"]
        self.log("train/loss_total", total, prog_bar=True, sync_dist=True)
        if self.hparams.image_log_every and index % self.hparams.image_log_every == 0:
            self.log_image_grid("train/input_iterations", [images, *reconstructions])
        return total

    def _evaluate(self, batch: dict[str, Any], metrics: nn.ModuleDict, split: str, batch_idx: int) -> None:
        images = batch["image"]
        size = images.shape[-1]
        output = self.model.run(images)
        rows = [resize_images(r, size).clamp(-1, 1) for r in output.reconstructions]
        for t, reconstruction in enumerate(rows):
            metrics[f"iter{t}"].update(preds=reconstruction, target=images)
        if batch_idx == 0:
            self.log_image_grid(f"{split}/input_iterations", [images, *rows])

    def _log_epoch(self, metrics: nn.ModuleDict) -> None:
        for collection in metrics.values():
            self.log_dict(collection.compute(), sync_dist=False)
            collection.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val", batch_idx)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(self.val_metrics)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test", batch_idx)

    def on_test_epoch_end(self) -> None:
        self._log_epoch(self.test_metrics)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        w_plus, reconstruction = self.model.invert(batch["image"])
        return {"key": batch.get("key"), "w_plus": w_plus.cpu(), "reconstruction": reconstruction.clamp(-1, 1).cpu()}

    # ------------------------------------------------------------------ files
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        hypernet = self.model.hypernet
        checkpoint[CHECKPOINT_KEY] = {
            "w_encoder_spec": encoder_spec(self.model.w_encoder),
            "layers_to_tune": list(hypernet.layers_to_tune), "shared_layers": list(hypernet.shared_layers),
            "input_nc": hypernet.input_nc, "input_size": hypernet.input_size, "n_iters": self.model.n_iters,
        }

    def official_opts(self) -> dict[str, Any]:
        """Training options in the official ``opts`` names (stored in exported files)."""
        hp = self.hparams
        return {"w_encoder_checkpoint_path": str(Path(hp.w_encoder_checkpoint).resolve()),
                "stylegan_weights": str(Path(hp.generator).resolve()), "optim_name": hp.optimizer,
                "learning_rate": hp.lr, "l2_lambda": hp.l2_lambda, "lpips_lambda": hp.lpips_lambda,
                "id_lambda": hp.id_lambda, "lpips_type": hp.lpips_net}

    def on_fit_end(self) -> None:
        self.export_at_fit_end()

    def export(self, path: str) -> str:
        """Write the trained model in the official HyperStyle layout (:func:`save_hyperstyle`); the W-encoder is
        referenced by its path (``opts["w_encoder_checkpoint_path"]``), as in official files."""
        return str(save_hyperstyle(path, self.model, opts=self.official_opts()))


def load_hyperstyle_module_checkpoint(path: str, generator: str | None = None) -> HyperStyle:
    """The :class:`HyperStyle` model of a ``HyperStyleModule`` Lightning checkpoint, in eval mode. The checkpoint
    holds everything (frozen W-encoder and generator included), so no other file is needed; ``generator``
    replaces the stored generator with the one in that file."""

    def build(data: dict, hparams: dict, frozen: FrozenGenerator) -> HyperStyle:
        spec = data[CHECKPOINT_KEY]
        w_encoder = build_latent_encoder(spec["w_encoder_spec"], frozen)
        stored = strip_prefix(data["state_dict"], "model.hypernet.")
        hypernet = build_unfilled(HyperNetwork, stored, f"HyperStyle checkpoint '{path}' (hypernet)",
                                  slot_shapes=frozen.weight_slot_shapes(),
                                  layers_to_tune=spec["layers_to_tune"], input_nc=int(spec["input_nc"]),
                                  input_size=int(spec["input_size"]), shared_layers=spec["shared_layers"])
        opts = {k: hparams[k] for k in ("l2_lambda", "lpips_lambda", "id_lambda", "lr", "optimizer") if k in hparams}
        return HyperStyle(hypernet, frozen, w_encoder, int(spec["n_iters"]), opts=opts)

    return model_from_checkpoint(path, "HyperStyle checkpoint (a HyperStyleModule Lightning checkpoint)",
                                 CHECKPOINT_KEY, "decoder.", build, generator)


__all__ = ["HyperStyleModule", "load_hyperstyle_module_checkpoint"]
