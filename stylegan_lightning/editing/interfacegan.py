"""InterFaceGAN: semantic boundaries in W as the normals of linear models fitted on labelled latent codes.

:func:`fit_direction` follows InterFaceGAN's ``train_boundary`` (genforce/interfacegan ``utils/manipulator.py``):

1. optionally keep only the most extreme samples: with ``chosen_ratio`` the ``chosen`` highest-scored samples
   are positives and the ``chosen`` lowest are negatives (``chosen = int(N * ratio)`` for a ratio in (0, 1], a
   count otherwise, at most N // 2; InterFaceGAN uses 0.02 of 500k samples); the samples in between are labelled
   by the midpoint of the highest and lowest score and only used to report ``remaining_accuracy``;
2. split each class into training and validation parts (``split_ratio`` 0.7 for training, as InterFaceGAN);
3. fit a linear model on standardised inputs (per-dimension mean / std of the training part) and map it back
   to W: the hyperplane ``coef . w + bias = 0`` becomes the unit normal ``n = coef / ||coef||`` (pointing to the
   positive class / to larger labels) and ``intercept = bias / ||coef||``, so ``w . n + intercept`` is the
   signed distance to the boundary (:meth:`Direction.distance`).

Methods: ``"svm"`` (linear SVM, squared hinge by default, or the classic hinge), ``"logistic"`` (logistic
regression) and ``"linear"`` (ridge least squares on continuous labels such as an age; the hyperplane is
the level set where the predicted label equals ``threshold``, default the mean training label, and
``metadata["slope"]`` is the label change per unit of distance along ``n``).

InterFaceGAN fits scikit-learn's ``SVC(kernel="linear")`` (hinge loss, C=1) on raw latents; the standardised
fit here finds the same boundary for well-separated classes and is better conditioned in W. Diagnostics (sample
counts, accuracies, R^2 for ``"linear"``, solver convergence) are stored in ``Direction.metadata``.

:func:`project_out` is InterFaceGAN's conditional manipulation (``project_boundary``): remove from a direction
its components along other directions, then renormalise.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .directions import Direction
from .layers import LayerSpec
from .linear_models import fit_linear_classifier, fit_ridge

METHODS = ("svm", "logistic", "linear")


def _is_binary(labels: torch.Tensor) -> bool:
    values = set(torch.unique(labels).tolist())
    return values <= {0.0, 1.0} or values <= {-1.0, 1.0}


def chosen_count(n: int, chosen_ratio: float) -> int:
    """InterFaceGAN's number of samples per side: ``int(n * r)`` for ``r`` in (0, 1], else ``int(r)``; at most
    ``n // 2``."""
    if chosen_ratio <= 0:
        raise ValueError(f"chosen_ratio must be positive, got {chosen_ratio}")
    chosen = int(n * chosen_ratio) if chosen_ratio <= 1 else int(chosen_ratio)
    return min(chosen, n // 2)


def select_extremes(scores: torch.Tensor, chosen_ratio: float, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices of the highest-scored, lowest-scored and remaining samples (ties broken at random)."""
    shuffled = torch.randperm(len(scores), generator=generator)
    order = shuffled[torch.argsort(scores[shuffled].cpu(), descending=True, stable=True)]
    chosen = chosen_count(len(scores), chosen_ratio)
    return order[:chosen], order[len(order) - chosen:], order[chosen: len(order) - chosen]


def _split(indices: torch.Tensor, split_ratio: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    indices = indices[torch.randperm(len(indices), generator=generator)]
    n_train = int(len(indices) * split_ratio)
    return indices[:n_train], indices[n_train:]


def _accuracy(scores: torch.Tensor, positive: torch.Tensor) -> float | None:
    return float(((scores > 0) == positive).double().mean()) if len(scores) else None


def _r2(prediction: torch.Tensor, target: torch.Tensor) -> float | None:
    if len(target) < 2:
        return None
    total = (target - target.mean()).square().sum()
    return float(1 - (prediction - target).square().sum() / total) if total > 0 else None


def _check_inputs(latents: torch.Tensor, labels: torch.Tensor, invalid_value: float | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    latents = torch.as_tensor(latents)
    labels = torch.as_tensor(labels)
    if latents.ndim != 2:
        raise ValueError(f"latents must be [N, D] (W codes), got {tuple(latents.shape)}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (latents.shape[0],):
        raise ValueError(f"labels must be [N] (one per latent, N={latents.shape[0]}), got {tuple(labels.shape)}")
    labels = labels.to(torch.float64)
    keep = ~torch.isnan(labels)
    if invalid_value is not None:
        keep &= labels != invalid_value
    latents, labels = latents[keep.to(latents.device)], labels[keep]
    if not torch.isfinite(latents).all():
        raise ValueError("latents contain NaN or Inf")
    return latents.to(torch.float64), labels.to(latents.device)


def fit_direction(
    latents: torch.Tensor,
    labels: torch.Tensor,
    method: str = "svm",
    *,
    l2: float = 1e-4,
    chosen_ratio: float | None = None,
    threshold: float | None = None,
    split_ratio: float = 0.7,
    balanced: bool = True,
    standardize: bool = True,
    svm_loss: str = "squared_hinge",
    max_iter: int = 500,
    seed: int = 0,
    invalid_value: float | None = None,
    name: str = "",
    layers: LayerSpec = None,
) -> Direction:
    """Fit an InterFaceGAN boundary on W codes ``latents`` [N, D] with ``labels`` [N] (see the module docs).

    Args:
        method: ``"svm"``, ``"logistic"`` (binary labels) or ``"linear"`` (continuous labels).
        l2: L2 penalty on the standardised weights (classifiers: on the weighted-mean loss; linear: ridge).
        chosen_ratio: keep only the top / bottom scored samples (InterFaceGAN practice, e.g. 0.02). Without it,
            binary labels (0/1 or -1/+1) are used as they are; continuous scores need ``threshold`` for the
            classifiers.
        threshold: classifiers: positive means ``label > threshold`` (for continuous scores without
            ``chosen_ratio``); linear: the label level of the boundary (default: the mean training label).
        split_ratio: fraction of each class used for training; the rest gives ``val_accuracy``.
        balanced: weight the classes equally (matters for imbalanced labels without ``chosen_ratio``).
        standardize: fit on per-dimension standardised inputs (then mapped back to W).
        svm_loss: ``"squared_hinge"`` (L-BFGS) or ``"hinge"`` (Adam) for ``method="svm"``.
        max_iter: solver iterations (L-BFGS iterations, or Adam steps for the hinge loss).
        seed: seed of the tie-breaking and of the train / validation split.
        invalid_value: label value marking samples to drop (NaN labels are always dropped).
        name, layers: stored in the returned :class:`Direction`.

    Returns:
        A :class:`Direction` with a unit ``vector``, the ``intercept`` and diagnostics in ``metadata``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if svm_loss not in ("squared_hinge", "hinge"):
        raise ValueError(f"svm_loss must be 'squared_hinge' or 'hinge', got {svm_loss!r}")
    if not 0 < split_ratio <= 1:
        raise ValueError(f"split_ratio must be in (0, 1], got {split_ratio}")
    latents, labels = _check_inputs(latents, labels, invalid_value)
    generator = torch.Generator().manual_seed(seed)
    info: dict[str, Any] = {"source": "fit_direction", "method": method, "l2": l2, "n_samples": len(labels)}
    remaining = None
    if chosen_ratio is not None:
        top, bottom, rest = select_extremes(labels.cpu(), chosen_ratio, generator)
        info["chosen_ratio"] = chosen_ratio
        if method != "linear":
            middle = float(labels.max() + labels.min()) / 2  # InterFaceGAN's decision value for the rest
            remaining = (rest, labels[rest.to(labels.device)].cpu() >= middle)
            labels = torch.cat([torch.ones(len(top)), torch.zeros(len(bottom))]).to(labels)
        else:
            labels = labels[torch.cat([top, bottom]).to(labels.device)]
        latents_all, latents = latents, latents[torch.cat([top, bottom]).to(latents.device)]
    else:
        latents_all = latents

    if method == "linear":
        normal, intercept = _fit_linear(latents, labels, l2, threshold, split_ratio, standardize, generator, info)
    else:
        positive = _binary_labels(labels, threshold)
        loss = svm_loss if method == "svm" else "logistic"
        normal, intercept = _fit_classifier(latents, positive, l2, loss, split_ratio, balanced, standardize,
                                            max_iter, generator, info)
        if remaining is not None and len(remaining[0]):
            distance = latents_all[remaining[0].to(latents_all.device)] @ normal + intercept
            info["remaining_accuracy"] = _accuracy(distance.cpu(), remaining[1])
    return Direction(normal.float().cpu(), name=name, layers=layers, intercept=intercept, metadata=info)


def _binary_labels(labels: torch.Tensor, threshold: float | None) -> torch.Tensor:
    if threshold is not None:
        return labels > threshold
    if not _is_binary(labels):
        raise ValueError("labels are not binary (0/1 or -1/+1): give chosen_ratio (top / bottom scores, the "
                         "InterFaceGAN practice), a threshold, or use method='linear'")
    return labels > 0


def _standardizer(x: torch.Tensor, standardize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if not standardize:
        return torch.zeros_like(x[0]), torch.ones_like(x[0])
    std = x.std(0) if len(x) > 1 else torch.ones_like(x[0])
    return x.mean(0), std.clamp_min(float(std.max()) * 1e-6 + 1e-12)


def _fit_classifier(latents, positive, l2, loss, split_ratio, balanced, standardize, max_iter, generator, info):
    index = torch.arange(len(positive))
    pos_train, pos_val = _split(index[positive.cpu()], split_ratio, generator)
    neg_train, neg_val = _split(index[~positive.cpu()], split_ratio, generator)
    if len(pos_train) < 1 or len(neg_train) < 1:
        raise ValueError(f"need training samples of both classes, got {len(pos_train)} positive and "
                         f"{len(neg_train)} negative ({int(positive.sum())} / {int((~positive).sum())} in total; "
                         "more samples or a larger chosen_ratio / split_ratio)")
    train = torch.cat([pos_train, neg_train]).to(latents.device)
    val = torch.cat([pos_val, neg_val]).to(latents.device)
    y = torch.cat([torch.ones(len(pos_train)), -torch.ones(len(neg_train))]).to(latents)
    weight = None
    if balanced:
        weight = torch.cat([torch.full((len(pos_train),), 0.5 / len(pos_train)),
                            torch.full((len(neg_train),), 0.5 / len(neg_train))]).to(latents)
    mean, std = _standardizer(latents[train], standardize)
    coef_s, bias_s, solver = fit_linear_classifier((latents[train] - mean) / std, y, weight, l2, loss, max_iter)
    coef = coef_s / std
    bias = bias_s - float(coef @ mean)
    norm = float(coef.norm())
    if norm == 0:
        raise ValueError("the fitted boundary is degenerate (zero normal): the classes cannot be told apart")
    distance = (latents @ (coef / norm)).add(bias / norm).cpu()
    info.update(loss=loss, balanced=balanced, n_train=len(train), n_val=len(val),
                n_positive=int(positive.sum()), n_negative=int((~positive).sum()),
                train_accuracy=_accuracy(distance[train.cpu()], positive.cpu()[train.cpu()]),
                val_accuracy=_accuracy(distance[val.cpu()], positive.cpu()[val.cpu()]), **solver)
    return coef / norm, bias / norm


def _fit_linear(latents, labels, l2, threshold, split_ratio, standardize, generator, info):
    train, val = _split(torch.arange(len(labels)), split_ratio, generator)
    if len(train) < 2:
        raise ValueError(f"need at least 2 training samples for method='linear', got {len(train)}")
    train, val = train.to(latents.device), val.to(latents.device)
    mean, std = _standardizer(latents[train], standardize)
    coef_s, bias_s = fit_ridge((latents[train] - mean) / std, labels[train], l2)
    coef = coef_s / std
    bias = bias_s - float(coef @ mean)
    slope = float(coef.norm())
    if slope == 0:
        raise ValueError("the fitted direction is degenerate (zero slope): the labels do not vary linearly")
    level = float(labels[train].mean()) if threshold is None else float(threshold)
    prediction = latents @ coef + bias
    info.update(n_train=len(train), n_val=len(val), slope=slope, level=level,
                train_r2=_r2(prediction[train], labels[train]), val_r2=_r2(prediction[val], labels[val]))
    if len(val) > 1:
        info["val_correlation"] = float(torch.corrcoef(torch.stack([prediction[val], labels[val]]))[0, 1])
    if _is_binary(labels):
        positive = labels > 0
        info["train_accuracy"] = _accuracy(prediction[train] - level, positive[train])
        info["val_accuracy"] = _accuracy(prediction[val] - level, positive[val])
    return coef / slope, (bias - level) / slope


def project_out(direction: Direction | torch.Tensor, *others: Direction | torch.Tensor) -> Direction:
    """InterFaceGAN's conditional manipulation: ``direction`` minus its projection onto the span of ``others``,
    renormalised to unit length (so editing along it leaves the other attributes' signed distances unchanged).

    Any number of conditions is allowed (InterFaceGAN's ``project_boundary`` handles up to two, with the same
    result). The name, layers and metadata of ``direction`` are kept; ``metadata["conditioned_on"]`` lists the
    names of the others. The intercept is dropped (the projected vector defines no fitted hyperplane).
    """
    primal = direction if isinstance(direction, Direction) else Direction(direction)
    conditions = [d if isinstance(d, Direction) else Direction(d) for d in others]
    vector = primal.vector.to(torch.float64)
    if conditions:
        basis = torch.stack([c.vector.to(vector) for c in conditions], dim=1)  # [D, K]
        if basis.shape[0] != vector.shape[0]:
            raise ValueError(f"dimension mismatch: direction has {vector.shape[0]}, conditions {basis.shape[0]}")
        coefficients = torch.linalg.pinv(basis.T @ basis, hermitian=True) @ (basis.T @ vector)
        vector = vector - basis @ coefficients
    norm = float(vector.norm())
    if norm <= 1e-8 * float(primal.vector.norm()):
        raise ValueError(f"direction {primal.name!r} lies in the span of the conditions: nothing is left")
    metadata = dict(primal.metadata)
    if conditions:
        metadata["conditioned_on"] = [c.name for c in conditions]
    return Direction((vector / norm).float(), name=primal.name, layers=primal.layers, metadata=metadata)


def fit_directions(latents: torch.Tensor, labels: torch.Tensor, names: Sequence[str], method: str = "svm",
                   **kwargs: Any) -> dict[str, Direction]:
    """One :func:`fit_direction` per label column: ``labels`` [N, A] with ``names`` [A] -> ``{name: Direction}``."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 2 or labels.shape[1] != len(names):
        raise ValueError(f"labels must be [N, {len(names)}] for {len(names)} names, got {tuple(labels.shape)}")
    return {name: fit_direction(latents, labels[:, i], method, name=name, **kwargs) for i, name in enumerate(names)}
