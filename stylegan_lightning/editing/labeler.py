"""Labelling generated faces with an attribute classifier, and fitting one InterFaceGAN direction per attribute.

This is InterFaceGAN's recipe: sample w, synthesise the images, score them with a classifier, then fit a linear
boundary in W on the scores (:func:`~stylegan_lightning.editing.fit_direction`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .classifier import AttributeClassifier, load_attribute_classifier
from .directions import Direction
from .ganspace import sample_latents
from .interfacegan import fit_direction


def _classifier(classifier: AttributeClassifier | nn.Module | str | Path) -> AttributeClassifier:
    if isinstance(classifier, (str, Path)):
        return load_attribute_classifier(classifier)
    classifier = getattr(classifier, "classifier", classifier)  # an AttributeClassifierModule
    if not isinstance(classifier, AttributeClassifier):
        raise TypeError(f"expected an AttributeClassifier (or its module / file), got {type(classifier).__name__}")
    return classifier


@torch.no_grad()
def label_latents(
    generator,
    classifier: AttributeClassifier | nn.Module | str | Path,
    n: int,
    truncation: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    noise: str = "const",
    latents: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``n`` codes, synthesise them and classify the images.

    Args:
        generator: a :class:`~stylegan_lightning.stylegan2.FrozenGenerator`.
        classifier: an :class:`AttributeClassifier`, an ``AttributeClassifierModule`` or a classifier file.
        n, seed, truncation: the codes are ``sample_latents(generator, n, seed, truncation)`` (deterministic).
        batch_size: images synthesised and classified at a time.
        noise: the generator's noise mode (``"const"``: the same image for the same code).
        latents: label these codes (W [N, D] or W+ [N, n_latent, D]) instead of sampling ``n``.

    Returns:
        ``(w, values)`` on the CPU: the codes [n, D] (truncated, i.e. exactly those synthesised) and the
        classifier's probabilities (binary outputs) / values (regression outputs) [n, A]. The images are resized
        to the classifier's resolution.
    """
    classifier = _classifier(classifier)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    w = sample_latents(generator, n, seed, truncation) if latents is None else latents.detach().float().cpu()
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    try:
        values = [classifier.predict(generator(batch.to(generator.device), noise=noise).to(device)).float().cpu()
                  for batch in w.split(batch_size)]
    finally:
        classifier.train(was_training)
    return w, torch.cat(values)


def fit_attribute_directions(
    generator,
    classifier: AttributeClassifier | nn.Module | str | Path,
    attribute_names: Sequence[str] | None = None,
    n: int = 10000,
    method: str = "svm",
    chosen_ratio: float | None = 0.02,
    truncation: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    noise: str = "const",
    **fit_kwargs: Any,
) -> dict[str, Direction]:
    """One InterFaceGAN direction per attribute, fitted on ``n`` classifier-labelled samples.

    With ``method="svm"`` / ``"logistic"`` the classifier's scores are turned into classes as InterFaceGAN does:
    the ``chosen_ratio`` highest / lowest scored samples (default 0.02, InterFaceGAN's value, which it used with
    500k samples; with fewer samples a larger ratio, or ``chosen_ratio=None`` to threshold probabilities at 0.5
    and regression values at their median, uses more of them). ``method="linear"`` regresses the scores of all
    samples. Other keyword arguments go to :func:`~stylegan_lightning.editing.fit_direction`.

    Returns:
        ``{name: Direction}``; each direction's metadata also records the attribute's output kind, the number
        of samples, the seed, the truncation and the mean score.
    """
    classifier = _classifier(classifier)
    names = list(attribute_names) if attribute_names is not None else classifier.attribute_names
    unknown = [name for name in names if name not in classifier.attribute_names]
    if unknown:
        raise ValueError(f"the classifier has no output(s) {unknown}; it has {classifier.attribute_names}")
    w, values = label_latents(generator, classifier, n, truncation, seed, batch_size, noise)
    directions = {}
    for name in names:
        column = classifier.attribute_names.index(name)
        kind = classifier.output_kinds[column]
        scores = values[:, column]
        options = dict(fit_kwargs)
        if method != "linear":
            options["chosen_ratio"] = chosen_ratio
            if chosen_ratio is None:
                options.setdefault("threshold", 0.5 if kind == "binary" else float(scores.median()))
        direction = fit_direction(w, scores, method, seed=seed, name=name, **options)
        direction.metadata.update(attribute=name, output_kind=kind, truncation=truncation, seed=seed,
                                  mean_score=float(scores.mean()))
        directions[name] = direction
    return directions
