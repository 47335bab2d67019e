"""``AttributeClassifierModule``: trains an :class:`AttributeClassifier` on ``FaceDataModule`` batches.

Batches are dicts with ``"image"`` [B, 3, R, R] in [-1, 1] and ``"attributes"`` [B, A] whose columns follow
``attribute_names`` (give the DataModule the same list). Binary columns hold 0 / 1 (CelebA's -1 / +1 are read as
0 / 1) and are trained with BCE; regression columns hold raw values (e.g. age in years), trained with MSE on
``(value - target_offset) / target_scale``.

Logged (``sync_dist=True`` for the losses; the accuracies are torchmetrics states summed across processes, so
they are exact under DDP): ``train/loss``, ``val/loss``, ``val/acc_<name>`` and ``val/balanced_acc_<name>`` per
binary attribute, ``val/acc_mean``, ``val/balanced_acc_mean``, ``val/mae_<name>`` per regression attribute (in
the original units), and the same under ``test/``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torchmetrics import Metric

from ..training import ToolkitModule
from .classifier import AttributeClassifier, classifier_config_from_hparams, export_classifier, resize_images

LR_SCHEDULES = ("cosine", "none")


class ColumnAccuracy(Metric):
    """Per-column accuracy and balanced accuracy of binary predictions (probabilities > ``threshold``)."""

    full_state_update = False

    def __init__(self, num_columns: int, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.threshold = threshold
        for name in ("true_positive", "true_negative", "positive", "negative"):
            self.add_state(name, default=torch.zeros(num_columns, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probabilities: torch.Tensor, targets: torch.Tensor) -> None:
        predicted, actual = probabilities > self.threshold, targets > 0.5
        self.true_positive += (predicted & actual).sum(0)
        self.true_negative += (~predicted & ~actual).sum(0)
        self.positive += actual.sum(0)
        self.negative += (~actual).sum(0)

    def compute(self) -> dict[str, torch.Tensor]:
        total = (self.positive + self.negative).clamp_min(1)
        recall = self.true_positive / self.positive.clamp_min(1)
        specificity = self.true_negative / self.negative.clamp_min(1)
        present = (self.positive > 0).double() + (self.negative > 0).double()
        balanced = (recall * (self.positive > 0) + specificity * (self.negative > 0)) / present.clamp_min(1)
        return {"accuracy": ((self.true_positive + self.true_negative) / total).float(), "balanced": balanced.float()}


class ColumnMAE(Metric):
    """Per-column mean absolute error."""

    full_state_update = False

    def __init__(self, num_columns: int, **kwargs):
        super().__init__(**kwargs)
        self.add_state("error", default=torch.zeros(num_columns, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor, targets: torch.Tensor) -> None:
        self.error += (values - targets).abs().sum(0).double()
        self.count += values.shape[0]

    def compute(self) -> torch.Tensor:
        return (self.error / self.count.clamp_min(1)).float()


class AttributeClassifierModule(ToolkitModule):
    """Trains an :class:`AttributeClassifier` (see the module docs).

    Args:
        attribute_names: the attribute columns of the batches, in order.
        output_kinds: ``"binary"`` / ``"regression"`` per attribute (default: all binary).
        resolution, width, max_width, blocks_per_stage, dropout, target_offsets, target_scales: the
            :class:`AttributeClassifier` arguments (images of another size are resized to ``resolution``).
        lr, betas, weight_decay: Adam settings (``weight_decay`` > 0 uses AdamW's decoupled decay).
        lr_schedule: ``"cosine"`` (linear warm-up over ``warmup_steps``, then cosine decay to 0 over the run's
            ``trainer.estimated_stepping_batches``) or ``"none"``.
        regression_weight: weight of the MSE term against the BCE term.
        export_path: write the trained classifier (:func:`export_classifier`) here at the end of fit.
    """

    def __init__(
        self,
        attribute_names: list[str],
        output_kinds: list[str] | None = None,
        resolution: int = 64,
        width: int = 32,
        max_width: int = 256,
        blocks_per_stage: int = 1,
        dropout: float = 0.0,
        target_offsets: list[float] | None = None,
        target_scales: list[float] | None = None,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        lr_schedule: str = "cosine",
        warmup_steps: int = 0,
        regression_weight: float = 1.0,
        export_path: str | None = None,
    ):
        super().__init__()
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
        self.save_hyperparameters()
        self.classifier = AttributeClassifier(**classifier_config_from_hparams(self.hparams))
        kinds = self.classifier.output_kinds
        self.binary_columns = [i for i, k in enumerate(kinds) if k == "binary"]
        self.regression_columns = [i for i, k in enumerate(kinds) if k == "regression"]
        self.accuracy = torch.nn.ModuleDict({stage: ColumnAccuracy(len(self.binary_columns))
                                             for stage in ("val", "test")}) if self.binary_columns else None
        self.mae = torch.nn.ModuleDict({stage: ColumnMAE(len(self.regression_columns))
                                        for stage in ("val", "test")}) if self.regression_columns else None

    @property
    def attribute_names(self) -> list[str]:
        return self.classifier.attribute_names

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities / values [B, A] (see :meth:`AttributeClassifier.predict`)."""
        return self.classifier.predict(images)

    # ------------------------------------------------------------------ steps
    def _losses(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        images, targets = batch["image"], batch["attributes"].float()
        if targets.ndim != 2 or targets.shape[1] != len(self.attribute_names):
            raise ValueError(f"batch attributes have shape {tuple(targets.shape)}, expected [B, "
                             f"{len(self.attribute_names)}] for {self.attribute_names}: give the DataModule the same "
                             "attribute_names")
        outputs = self.classifier(resize_images(images, self.classifier.resolution))
        parts: dict[str, torch.Tensor] = {}
        if self.binary_columns:
            parts["bce"] = F.binary_cross_entropy_with_logits(outputs[:, self.binary_columns],
                                                              targets[:, self.binary_columns])
        if self.regression_columns:
            columns = self.regression_columns
            normalised = (targets[:, columns] - self.classifier.target_offset[columns]) \
                / self.classifier.target_scale[columns]
            parts["mse"] = F.mse_loss(outputs[:, columns], normalised)
        loss = parts.get("bce", 0.0) + self.hparams.regression_weight * parts.get("mse", 0.0)
        return loss, parts, outputs, targets

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, parts, _, targets = self._losses(batch)
        size = targets.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{name}", value, on_step=False, on_epoch=True, sync_dist=True, batch_size=size)
        return loss

    def _evaluate(self, batch: dict, stage: str) -> torch.Tensor:
        loss, _, outputs, targets = self._losses(batch)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=stage == "val", sync_dist=True,
                 batch_size=targets.shape[0])
        values = self.classifier.postprocess(outputs.detach())
        if self.accuracy is not None:
            self.accuracy[stage].update(values[:, self.binary_columns], targets[:, self.binary_columns])
        if self.mae is not None:
            self.mae[stage].update(values[:, self.regression_columns], targets[:, self.regression_columns])
        return loss

    def _log_metrics(self, stage: str) -> None:
        names = self.attribute_names
        if self.accuracy is not None and self.accuracy[stage].update_called:
            result = self.accuracy[stage].compute()  # already reduced across processes
            result = {key: value.reshape(-1) for key, value in result.items()}  # torchmetrics squeezes one column
            for column, accuracy, balanced in zip(self.binary_columns, result["accuracy"], result["balanced"]):
                self.log(f"{stage}/acc_{names[column]}", accuracy, sync_dist=True)
                self.log(f"{stage}/balanced_acc_{names[column]}", balanced, sync_dist=True)
            self.log(f"{stage}/acc_mean", result["accuracy"].mean(), prog_bar=stage == "val", sync_dist=True)
            self.log(f"{stage}/balanced_acc_mean", result["balanced"].mean(), sync_dist=True)
            self.accuracy[stage].reset()
        if self.mae is not None and self.mae[stage].update_called:
            for column, error in zip(self.regression_columns, self.mae[stage].compute().reshape(-1)):
                self.log(f"{stage}/mae_{names[column]}", error, sync_dist=True)
            self.mae[stage].reset()

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def test_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.classifier.predict(batch["image"] if isinstance(batch, dict) else batch)

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer_class = torch.optim.AdamW if hp.weight_decay > 0 else torch.optim.Adam
        optimizer = optimizer_class(params, lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        if hp.lr_schedule == "none":
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(hp.warmup_steps, total - 1)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def export(self, path: str | Path) -> Path:
        """Write the classifier alone (see :func:`export_classifier`)."""
        return export_classifier(self.classifier, path)

    def on_fit_end(self) -> None:
        self.export_at_fit_end()
