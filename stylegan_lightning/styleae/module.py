"""``StyleAEModule``: trains the StyleAE autoencoder over W against a frozen StyleGAN2 generator.

Loss of a batch of codes w with attribute labels a (the reference objective, λ_a = 0.3)::

    x = G(w),  x̂ = G(D(E(w))),  c = E(w)[:, :k]
    L = (1 − λ_a) · MSE(x̂, x) + λ_a · MSE(c, a') + λ_tol · mean(relu(|x̂ − x| − τ))

with a' the labels mapped to [−1, 1] over their ranges (``label_scaling``: min–max over the data for continuous
attributes by default, :func:`~stylegan_lightning.styleae.model.fit_label_ranges`; labels still missing after the
DataModule's imputation are left out) and τ the pixel tolerance
(0.04 of the [−1, 1] image range). Images are compared through the frozen generator with its stored noise; Adam.

Validation (held-out codes): ``val/recon/w_mse`` and ``val/recon/image_mse`` of ``D(E(w))``, per attribute
``val/attr/<name>/corr`` (Pearson correlation of the coordinate with the label) and ``val/attr/<name>/mse``; with an
attribute ``classifier``, the edit comparison of StyleAE and InterFaceGAN directions side by side -- the
reference protocol (:func:`~stylegan_lightning.styleae.evaluate_reference_protocol`) when a separate ``judge``
classifier is given, else the step protocol (:func:`~stylegan_lightning.styleae.evaluate_attribute_edits`): ``val/edit/<editor>/<attribute>/<metric>`` and
``val/edit/<editor>/<metric>`` (mean over attributes). InterFaceGAN directions come from ``directions`` files or,
without them, are fitted (linear SVM, InterFaceGAN's recipe) on the training codes and labels at the start of
fit, and are kept in the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..editing.classifier import load_attribute_classifier
from ..editing.directions import Direction, load_direction
from ..metrics import build_metric_networks
from ..optim import build_optimizer
from ..stylegan2 import FrozenGenerator
from ..training import ToolkitModule
from ..utils.images import resize_images
from .checkpoints import save_styleae
from .evaluation import (METRICS, REFERENCE_METRICS, DirectionEditor, StyleAEEditor, binary_outputs, editor_means,
                         evaluate_attribute_edits, evaluate_reference_protocol, fit_interfacegan_directions)
from .model import LABEL_SCALINGS, StyleAE, fit_label_ranges


def attribute_loss(coordinates: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE between attribute coordinates and target coordinates over the finite targets (0 if there are none)."""
    known = torch.isfinite(targets)
    if not known.any():
        return coordinates.sum() * 0
    return F.mse_loss(coordinates[known], targets[known])


def tolerance_loss(prediction: torch.Tensor, target: torch.Tensor, tolerance: float) -> torch.Tensor:
    """``mean(relu(|prediction − target| − tolerance))``: the pixel errors beyond the tolerance (reference hinge)."""
    return F.relu((prediction - target).abs() - tolerance).mean()


def styleae_losses(model: StyleAE, generator: nn.Module, w: torch.Tensor, labels: torch.Tensor,
                   attribute_lambda: float = 0.3, pixel_tolerance: float = 0.04, tolerance_lambda: float = 1.0,
                   loss_resolution: int | None = None) -> dict[str, torch.Tensor]:
    """The StyleAE objective of the module docs on codes ``w`` [N, D] with ``labels`` [N, k] (attribute units):
    ``{"loss": total, "image_mse", "attribute_mse", "tolerance"}``. ``generator(w, noise="const")`` synthesises
    (frozen: no gradient reaches its weights through the optimiser, only through its input)."""
    with torch.no_grad():
        target = generator(w, noise="const")
    code, reconstruction = model(w)
    image = generator(reconstruction, noise="const")
    if loss_resolution:
        image, target = resize_images(image, loss_resolution), resize_images(target, loss_resolution)
    image_mse = F.mse_loss(image, target)
    attribute = attribute_loss(code[:, : model.n_attributes], model.to_coordinates(labels))
    tolerance = tolerance_loss(image, target, pixel_tolerance)
    total = (1 - attribute_lambda) * image_mse + attribute_lambda * attribute + tolerance_lambda * tolerance
    return {"loss": total, "image_mse": image_mse, "attribute_mse": attribute, "tolerance": tolerance}


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of two vectors (NaN pairs left out; 0 when either is constant)."""
    keep = torch.isfinite(x) & torch.isfinite(y)
    x, y = x[keep].double(), y[keep].double()
    if len(x) < 2:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    denominator = (x.norm() * y.norm()).item()
    return float((x @ y).item() / denominator) if denominator > 0 else 0.0


class StyleAEModule(ToolkitModule):
    """Train :class:`StyleAE` (see the module docstring) over the frozen ``generator``.

    The reference setting (FFHQ 1024, StyleGAN2-ADA): 8 attributes, 4 layers of 512, λ_a 0.3, τ 0.04, Adam at
    1e-4, batch 5, 9,900 training codes.

    Args:
        generator: generator file (rosinality ``.pt``, NVlabs ``.pkl``, ...).
        attribute_names: the attributes, in code order; the data's label columns must match.
        label_ranges: ``(low, high)`` per attribute (e.g. ``(0, 100)`` for an age in years); without them the
            ranges come from ``label_scaling``.
        label_scaling: how labels map to [−1, 1] (:func:`~stylegan_lightning.styleae.model.fit_label_ranges`,
            at the start of fit over all the DataModule's pairs): ``"auto"`` (default: ``label_ranges`` when given,
            else ``(0, 1)`` for labels inside [0, 1] and the data's min–max for the others, e.g. age, yaw, pitch),
            ``"data"`` (min–max over the data for every attribute, the reference) or ``"ranges"``
            (``label_ranges``, default ``(0, 1)``, never the data).
        n_layers, hidden_dim, prelu_init, bias_init: the autoencoder (:class:`StyleAE`; ``bias_init`` ``"uniform"``
            is the reference's PyTorch default, ``"zeros"`` the alternative).
        attribute_lambda: λ_a.
        pixel_tolerance, tolerance_lambda: τ and the weight of the hinge term.
        loss_resolution: compare images at this size (``None``: the generator's).
        lr: Adam learning rate.
        classifier: an attribute classifier file, for the edit comparison in validation / test (its output names
            must include the edited attributes; normally the one that labelled the pairs). ``None``: no edit
            comparison.
        judge: a second attribute classifier file (not ``classifier``): the comparison then follows the reference
            protocol, searching each path for ``classifier``'s ``edit_target`` (``edit_candidates`` points) and
            counting success with the judge. ``None``: the step protocol with ``classifier`` alone.
        directions: InterFaceGAN direction files ``{attribute: file}`` for the comparison; attributes without one
            get a direction fitted on the training data.
        edit_codes: held-out codes edited in each comparison (0: no comparison in validation, e.g. when the
            ``compare-edits`` tool runs it afterwards); edit_margin, edit_steps, edit_limit: the protocol of
            :func:`evaluate_attribute_edits` (``edit_limit``: the StyleAE coordinate limit and the InterFaceGAN
            limit in standard deviations).
        id_backend, weights: identity network of the comparison's identity similarity (skipped with a warning
            when its file is missing).
        export_path: write the trained autoencoder as a StyleAE file here at the end of fit.
    """

    def __init__(
        self,
        generator: str,
        attribute_names: list[str],
        label_ranges: list[list[float]] | None = None,
        label_scaling: str = "auto",
        n_layers: int = 4,
        hidden_dim: int | None = None,
        prelu_init: float = 0.9,
        bias_init: str = "uniform",
        attribute_lambda: float = 0.3,
        pixel_tolerance: float = 0.04,
        tolerance_lambda: float = 1.0,
        loss_resolution: int | None = None,
        lr: float = 1e-4,
        classifier: str | None = None,
        directions: dict[str, str] | None = None,
        edit_codes: int = 100,
        edit_margin: float = 0.25,
        edit_steps: int = 8,
        edit_limit: float = 3.0,
        judge: str | None = None,
        edit_target: float = 0.91,
        edit_candidates: int = 20,
        id_backend: str = "arcface",
        weights: dict[str, str] | None = None,
        export_path: str | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        if not 0 <= attribute_lambda <= 1:
            raise ValueError(f"attribute_lambda must be in [0, 1], got {attribute_lambda}")
        self.generator = FrozenGenerator.from_file(generator)
        if label_scaling not in LABEL_SCALINGS:
            raise ValueError(f"label_scaling must be one of {LABEL_SCALINGS}, got {label_scaling!r}")
        if label_scaling == "data" and label_ranges is not None:
            raise ValueError("label_scaling 'data' takes the ranges from the data; give no label_ranges with it")
        self.model = StyleAE(self.generator.style_dim, attribute_names, hidden_dim, n_layers, label_ranges,
                             prelu_init, bias_init)
        self.classifier = load_attribute_classifier(classifier) if classifier else None
        if self.classifier is not None:
            self.classifier.requires_grad_(False)
            missing = [a for a in attribute_names if a not in self.classifier.attribute_names]
            if missing:
                raise ValueError(f"the classifier '{classifier}' has no output(s) {missing} (it has "
                                 f"{self.classifier.attribute_names})")
        self.judge = None
        if judge:
            if self.classifier is None:
                raise ValueError("judge is the reference protocol's second classifier; give classifier too")
            if Path(judge).expanduser().resolve() == Path(classifier).expanduser().resolve():
                raise ValueError(f"judge '{judge}' is the labelling classifier; the reference protocol needs another")
            self.judge = load_attribute_classifier(judge)
            self.judge.requires_grad_(False)
            missing = [a for a in attribute_names if a not in binary_outputs(self.judge)]
            if missing:
                raise ValueError(f"the judge '{judge}' has no binary output(s) {missing}")
        k, dim = len(attribute_names), self.generator.style_dim
        self.register_buffer("direction_vectors", torch.zeros(k, dim))
        self.register_buffer("direction_known", torch.zeros(k, dtype=torch.bool))
        for name, path in (directions or {}).items():
            self._set_direction(name, load_direction(path))
        self.identity = None
        if self.classifier is not None:
            networks = build_metric_networks(("identity",), weights, identity_backend=id_backend)
            self.identity = networks.get("identity")
        self._val_outputs: list[dict[str, torch.Tensor]] = []

    # ------------------------------------------------------------------ directions
    def _set_direction(self, name: str, direction: Direction) -> None:
        index = self.model.attribute_index(name)
        if direction.dim != self.generator.style_dim:
            raise ValueError(f"direction for {name!r} has {direction.dim} dimensions; the generator's W has "
                             f"{self.generator.style_dim}")
        self.direction_vectors[index] = direction.unit().vector.to(self.direction_vectors)
        self.direction_known[index] = True

    def interfacegan_directions(self) -> dict[str, Direction]:
        """The InterFaceGAN directions of the comparison (unit vectors, by attribute)."""
        return {name: Direction(self.direction_vectors[i].cpu(), name=name)
                for i, name in enumerate(self.model.attribute_names) if bool(self.direction_known[i])}

    def fit_missing_directions(self, w: torch.Tensor, labels: torch.Tensor) -> None:
        """Fit InterFaceGAN directions (:func:`fit_interfacegan_directions`) on ``(w, labels)`` for the
        attributes that have none."""
        names = self.model.attribute_names
        missing = [i for i in range(len(names)) if not bool(self.direction_known[i])]
        ranges = [self.model.config["label_ranges"][i] for i in missing]
        fitted = fit_interfacegan_directions(w, labels[:, missing], [names[i] for i in missing], ranges)
        for name, direction in fitted.items():
            self._set_direction(name, direction)

    def scale_labels(self, datamodule: Any) -> None:
        """Set the model's label ranges from ``label_scaling`` over all of ``datamodule.data``'s labels (nothing
        to do for ``"ranges"`` or given ``label_ranges``; the same data gives the same ranges on a resumed fit)."""
        hp = self.hparams
        if hp.label_scaling == "ranges" or hp.label_ranges is not None:
            return
        data = getattr(datamodule, "data", None)
        labels = getattr(data, "labels", None)
        if labels is None:
            raise ValueError(f"label_scaling {hp.label_scaling!r} scales the labels over the data, but the "
                             "DataModule has no .data.labels; use LatentAttributeDataModule or give label_ranges")
        self.model.set_label_ranges(fit_label_ranges(labels, hp.label_scaling, None, self.model.attribute_names))

    # ------------------------------------------------------------------ losses
    def losses(self, w: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """:func:`styleae_losses` with the module's weights."""
        hp = self.hparams
        return styleae_losses(self.model, self.generator, w, labels, hp.attribute_lambda, hp.pixel_tolerance,
                              hp.tolerance_lambda, hp.loss_resolution)

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self):
        return build_optimizer("adam", self.trainable_parameters(self.model), lr=self.hparams.lr)

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        names = getattr(datamodule, "attribute_names", None)
        if names is not None and list(names) != self.model.attribute_names:
            raise ValueError(f"the data's label columns {list(names)} differ from the model's attribute_names "
                             f"{self.model.attribute_names}; list the same names in the same order")
        self.scale_labels(datamodule)
        if self.classifier is not None and self.hparams.edit_codes > 0 and not bool(self.direction_known.all()):
            train = datamodule.train_dataset
            self.fit_missing_directions(train.w, train.labels)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.losses(batch["w"], batch["labels"])
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=False, sync_dist=True)
        self.log("train/loss_total", losses["loss"].detach(), prog_bar=True, sync_dist=True)
        return losses["loss"]

    def _evaluate_batch(self, batch: dict[str, Any]) -> None:
        w, labels = batch["w"], batch["labels"]
        code, reconstruction = self.model(w)
        self._val_outputs.append({
            "index": batch["index"], "w": w.detach(), "labels": labels,
            "coordinates": code[:, : self.model.n_attributes].detach(),
            "w_error": (reconstruction - w).pow(2).mean(1),
            "image_error": (self.generator(reconstruction, noise="const")
                            - self.generator(w, noise="const")).pow(2).flatten(1).mean(1)})

    def _log_evaluation(self, split: str) -> None:
        outputs, self._val_outputs = self._val_outputs, []
        if not outputs:
            return
        joined = self._gather({key: torch.cat([o[key] for o in outputs]) for key in outputs[0]})
        logs = {f"{split}/recon/w_mse": joined["w_error"].mean(),
                f"{split}/recon/image_mse": joined["image_error"].mean()}
        targets = self.model.to_coordinates(joined["labels"])
        for i, name in enumerate(self.model.attribute_names):
            logs[f"{split}/attr/{name}/corr"] = pearson(joined["coordinates"][:, i], targets[:, i])
            logs[f"{split}/attr/{name}/mse"] = attribute_loss(joined["coordinates"][:, i], targets[:, i])
        if self.classifier is not None and self.hparams.edit_codes > 0:
            logs.update(self._edit_comparison(joined["w"][: self.hparams.edit_codes], split))
        self.log_dict({k: torch.as_tensor(v, dtype=torch.float32) for k, v in logs.items()}, sync_dist=False)

    def _gather(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every process's evaluation outputs, in dataset order without the sampler's padding duplicates, so
        that every rank computes the metrics of the whole split (equal to a one-process run)."""
        if self.trainer is not None and self.trainer.world_size > 1:
            outputs = {key: self.all_gather(value).flatten(0, 1) for key, value in outputs.items()}
        index, first = torch.unique(outputs["index"], return_inverse=True)
        keep = torch.full((len(index),), len(first), dtype=torch.long, device=first.device)
        keep.scatter_reduce_(0, first, torch.arange(len(first), device=first.device), reduce="amin")
        return {key: value[keep] for key, value in outputs.items()}

    def edit_comparison(self, w: torch.Tensor) -> dict[str, dict[str, dict[str, float]]]:
        """The comparison of StyleAE and (where known) InterFaceGAN on codes ``w``: the reference protocol with a
        ``judge``, else the step protocol."""
        hp = self.hparams
        editors: list = [StyleAEEditor(self.model, hp.edit_limit)]
        directions = self.interfacegan_directions()
        if len(directions) == self.model.n_attributes:
            editors.append(DirectionEditor(directions, hp.edit_limit))
        attributes = binary_outputs(self.classifier, self.model.attribute_names)
        if self.judge is not None:
            return evaluate_reference_protocol(w, self.generator, self.classifier, self.judge, editors, attributes,
                                               hp.edit_target, "flip", hp.edit_candidates, identity=self.identity)
        return evaluate_attribute_edits(w, self.generator, self.classifier, editors, attributes, hp.edit_margin,
                                        hp.edit_steps, self.identity)

    def _edit_comparison(self, w: torch.Tensor, split: str) -> dict[str, float]:
        results = self.edit_comparison(w)
        metrics_of = REFERENCE_METRICS if self.judge is not None else METRICS
        logs = {f"{split}/edit/{editor}/{attribute}/{metric}": value for attribute, by_editor in results.items()
                for editor, metrics in by_editor.items() for metric, value in metrics.items()}
        logs.update({f"{split}/edit/{editor}/{metric}": value
                     for editor, means in editor_means(results, metrics_of).items() for metric, value in means.items()})
        return logs

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate_batch(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate_batch(batch)

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    # ------------------------------------------------------------------ files
    def on_fit_end(self) -> None:
        self.export_at_fit_end()

    def export(self, path: str | Path) -> Path:
        """Write the autoencoder as a StyleAE file (:func:`~stylegan_lightning.styleae.load_styleae`)."""
        return save_styleae(path, self.model)


__all__ = ["StyleAEModule", "attribute_loss", "pearson", "styleae_losses", "tolerance_loss"]
