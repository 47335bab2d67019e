"""Comparing attribute editors: StyleAE coordinates vs InterFaceGAN directions, under two protocols.

**Reference protocol** (:func:`evaluate_reference_protocol`, the StyleAE reference's evaluation): for each binary
attribute ``a`` every editor searches its own edit path (``candidates`` evenly spaced points; StyleAE: the
attribute coordinate, InterFaceGAN: the step along the normal) for the point whose image the **labelling**
classifier (the one that labelled the training pairs) scores closest to a target probability (``target`` going up,
``1 − target`` going down; scores rounded to ``decimals`` first, ties to the point nearest the path's start, as the
reference's ``naive_select`` over a ``linspace``). A **separate judge** classifier then decides:

- ``success``: the fraction of codes whose edited image the judge puts on the target side of 0.5;
- ``common``: the number of codes on which *every* compared editor succeeded; the next metrics are over those
  codes only, so all editors are measured on the same faces:
- ``other_l2``: the L2 norm of the judge's probability changes of the other attributes over the common codes
  (the reference's other-attribute change), ``other_change`` the mean ``|Δp_b|``;
- ``identity``: mean identity cosine before / after (with an identity network), ``psnr``: mean PSNR of the edited
  image against the unedited one (images in [−1, 1]).

**Step protocol** (:func:`evaluate_attribute_edits`, this project's own; one classifier): for each binary attribute
``a`` and each code w, the edit flips the classifier's decision -- up when ``p_a(G(w)) < 0.5``, down otherwise. Each
editor walks its own edit path in ``steps`` equal steps (StyleAE: the attribute coordinate from its current value
towards ``±limit``; InterFaceGAN: ``w ± t · n`` with t up to ``limit`` standard deviations of the codes'
projections on the unit normal n) and stops at the first step whose image reaches the target probability
(``0.5 ± margin``). Then

- ``success``: the fraction of codes whose edit reached the target;
- ``target_change``: mean ``|Δp_a|`` (equal targets make this nearly equal across editors);
- ``other_change``: mean ``|Δp_b|`` over the other evaluated attributes b (smaller = better disentangled);
- ``identity``: mean cosine similarity of identity embeddings before / after the edit (with an identity network);
- ``strength``: mean fraction of the path used (1 where the target was not reached).
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..editing.directions import Direction
from .model import StyleAE

METRICS = ("success", "target_change", "other_change", "identity", "strength")
REFERENCE_METRICS = ("success", "common", "other_l2", "other_change", "identity", "psnr")
DIRECTIONS = ("flip", "up", "down")


class AttributeEditor(Protocol):
    """An edit path per attribute: ``path(w, attribute, sign, fraction)`` gives the codes after ``fraction``
    (0..1) of the way up (``sign`` +1) or down (−1), one sign per code."""

    name: str

    def supports(self, attribute: str) -> bool: ...

    def path(self, w: torch.Tensor, attribute: str, sign: torch.Tensor, fraction: float) -> torch.Tensor: ...


class StyleAEEditor:
    """StyleAE edits: the attribute coordinate moves from its current value ``c`` to ``c + fraction · (±limit − c)``
    (the code units, labels span [−1, 1]); with ``span=(low, high)`` it takes the absolute values
    ``±(low + fraction · (high − low))`` instead (the reference searches e.g. −3 … −20 to remove an attribute:
    ``span=(3, 20)``)."""

    name = "styleae"

    def __init__(self, model: StyleAE, limit: float = 3.0, keep_residual: bool = False,
                 span: Sequence[float] | None = None):
        self.model, self.limit, self.keep_residual = model, float(limit), keep_residual
        if span is not None:
            if len(span) != 2 or not 0 <= float(span[0]) < float(span[1]):
                raise ValueError(f"span must be (low, high) with 0 <= low < high, got {list(span)}")
            span = (float(span[0]), float(span[1]))
        self.span = span

    def supports(self, attribute: str) -> bool:
        return attribute in self.model.attribute_names

    def path(self, w: torch.Tensor, attribute: str, sign: torch.Tensor, fraction: float) -> torch.Tensor:
        if self.span is not None:
            low, high = self.span
            target = sign * (low + fraction * (high - low))
        else:
            start = self.model.attributes(w)[:, self.model.attribute_index(attribute)]
            target = start + fraction * (sign * self.limit - start)
        return self.model.edit(w, attribute, coordinate=target, keep_residual=self.keep_residual)


class DirectionEditor:
    """InterFaceGAN edits ``w ± fraction · limit · σ · n`` with the unit normal n of each attribute's direction and
    σ the standard deviation of the evaluated codes' projections on n (so ``limit`` is in the codes' own spread)."""

    name = "interfacegan"

    def __init__(self, directions: Mapping[str, Direction], limit: float = 3.0):
        self.directions = {name: direction.unit() for name, direction in directions.items()}
        self.limit = float(limit)

    def supports(self, attribute: str) -> bool:
        return attribute in self.directions

    def path(self, w: torch.Tensor, attribute: str, sign: torch.Tensor, fraction: float) -> torch.Tensor:
        normal = self.directions[attribute].vector.to(w)
        spread = (w @ normal).std() if w.shape[0] > 1 else w.new_tensor(1.0)
        return w + (sign * fraction * self.limit * spread)[:, None] * normal


def fit_interfacegan_directions(w: torch.Tensor, labels: torch.Tensor, attribute_names: Sequence[str],
                                label_ranges: Sequence[Sequence[float]] | None = None, seed: int = 0,
                                min_class: int = 10) -> dict[str, Direction]:
    """One InterFaceGAN direction per attribute on labelled codes ``(w [N, D], labels [N, k])``: a linear SVM
    whose positives are the codes labelled above the middle of the attribute's range (default ``(0, 1)``, i.e.
    probability 0.5), or above the median label when that leaves fewer than ``min_class`` codes on one side (a
    rare attribute); NaN labels are left out. The fair baseline for a StyleAE trained on the same pairs."""
    from ..editing.interfacegan import fit_direction

    ranges = label_ranges or [(0.0, 1.0)] * len(attribute_names)
    directions = {}
    for i, (name, (low, high)) in enumerate(zip(attribute_names, ranges)):
        column = labels[:, i].cpu()
        known = column[torch.isfinite(column)]
        threshold = (low + high) / 2
        if min(int((known > threshold).sum()), int((known <= threshold).sum())) < min_class:
            threshold = float(known.median())
        directions[name] = fit_direction(w.cpu(), column, "svm", threshold=threshold, seed=seed, name=name)
        directions[name].metadata["threshold"] = threshold
    return directions


def binary_outputs(classifier, among: Sequence[str] | None = None) -> list[str]:
    """The classifier's binary outputs, in its order (only those in ``among`` when given): the attributes the
    comparison can edit."""
    return [n for n, kind in zip(classifier.attribute_names, classifier.output_kinds)
            if kind == "binary" and (among is None or n in among)]


def _binary_columns(classifier, attributes: Sequence[str] | None) -> list[str]:
    names = binary_outputs(classifier)
    if attributes is None:
        return names
    unknown = [a for a in attributes if a not in names]
    if unknown:
        raise ValueError(f"the classifier has no binary output(s) {unknown}; it has {names}")
    return list(attributes)


@torch.no_grad()
def evaluate_attribute_edits(
    w: torch.Tensor,
    generator: nn.Module,
    classifier: nn.Module,
    editors: Sequence[AttributeEditor],
    attributes: Sequence[str] | None = None,
    margin: float = 0.25,
    steps: int = 8,
    identity: nn.Module | None = None,
    batch_size: int = 64,
) -> dict[str, dict[str, dict[str, float]]]:
    """Edit every code in ``w`` [N, D] with every editor (see the module docs).

    Args:
        generator: a :class:`~stylegan_lightning.stylegan2.FrozenGenerator` (codes → images, stored noise).
        classifier: an :class:`~stylegan_lightning.editing.AttributeClassifier` (its ``predict`` scores images).
        editors: e.g. ``[StyleAEEditor(model), DirectionEditor(directions)]``.
        attributes: the binary classifier outputs to edit (default: every binary output that all editors know).
        margin: the target is ``p ≥ 0.5 + margin`` going up, ``p ≤ 0.5 − margin`` going down.
        steps: points on each edit path (the first reaching the target is kept).
        identity: an identity encoder (images → embeddings) for the ``identity`` metric, or ``None``.

    Returns:
        ``{attribute: {editor name: {metric: value}}}`` with the metrics of :data:`METRICS` (``identity`` only with
        an identity network).
    """
    if not 0 < margin < 0.5:
        raise ValueError(f"margin must be in (0, 0.5), got {margin}")
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    names = _binary_columns(classifier, attributes)
    if attributes is None:
        names = [a for a in names if all(editor.supports(a) for editor in editors)]
    if not names:
        raise ValueError("no binary classifier attribute that every editor can edit")
    columns = [classifier.attribute_names.index(a) for a in names]

    def render(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        scores, embeddings = [], []
        for chunk in codes.split(batch_size):
            images = generator(chunk, noise="const")
            scores.append(classifier.predict(images)[:, columns].float())
            if identity is not None:
                embeddings.append(F.normalize(identity(images).float(), dim=1))
        return torch.cat(scores), (torch.cat(embeddings) if identity is not None else None)

    start_scores, start_embedding = render(w)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for position, attribute in enumerate(names):
        sign = torch.where(start_scores[:, position] < 0.5, 1.0, -1.0).to(w)
        results[attribute] = {}
        for editor in editors:
            if not editor.supports(attribute):
                raise ValueError(f"editor {editor.name!r} cannot edit {attribute!r}")
            chosen_scores = start_scores.clone()
            chosen_embedding = None if start_embedding is None else start_embedding.clone()
            chosen_fraction = torch.ones(len(w), device=w.device)
            done = torch.zeros(len(w), dtype=torch.bool, device=w.device)
            for step in range(1, steps + 1):
                fraction = step / steps
                scores, embedding = render(editor.path(w, attribute, sign, fraction))
                take = ~done  # keep updating until the target is reached, then freeze
                chosen_scores[take] = scores[take]
                if embedding is not None:
                    chosen_embedding[take] = embedding[take]
                chosen_fraction[take] = fraction
                done |= sign * (scores[:, position] - 0.5) >= margin
            change = (chosen_scores - start_scores).abs()
            others = [i for i in range(len(names)) if i != position]
            metrics = {"success": done.float().mean().item(),
                       "target_change": change[:, position].mean().item(),
                       "other_change": change[:, others].mean().item() if others else 0.0,
                       "strength": chosen_fraction.mean().item()}
            if chosen_embedding is not None:
                metrics["identity"] = (chosen_embedding * start_embedding).sum(1).mean().item()
            results[attribute][editor.name] = metrics
    return results


def _binary_column(classifier, attribute: str, role: str) -> int:
    names = binary_outputs(classifier)
    if attribute not in names:
        raise ValueError(f"the {role} classifier has no binary output {attribute!r}; it has {names}")
    return classifier.attribute_names.index(attribute)


@torch.no_grad()
def evaluate_reference_protocol(
    w: torch.Tensor,
    generator: nn.Module,
    labeller: nn.Module,
    judge: nn.Module,
    editors: Sequence[AttributeEditor],
    attributes: Sequence[str] | None = None,
    target: float = 0.91,
    direction: str = "flip",
    candidates: int = 20,
    decimals: int | None = 2,
    identity: nn.Module | None = None,
    batch_size: int = 64,
) -> dict[str, dict[str, dict[str, float]]]:
    """The reference protocol of the module docs on codes ``w`` [N, D].

    Args:
        generator: a :class:`~stylegan_lightning.stylegan2.FrozenGenerator` (codes → images, stored noise).
        labeller: the attribute classifier that labelled the training pairs; the search aims its score at the
            target.
        judge: another attribute classifier (not the labeller) that counts success and measures the other
            attributes; it must have a binary output of each edited attribute's name.
        editors: e.g. ``[StyleAEEditor(model), DirectionEditor(directions)]``.
        attributes: the attributes to edit (default: the labeller's binary outputs that every editor and the judge
            know).
        target: the probability searched for going up (``1 − target`` going down). The reference searches for
            0.09 when it removes an attribute, so the default going up is 1 − 0.09.
        direction: ``"flip"`` (up where the labeller's ``p_a(G(w)) < 0.5``, else down), ``"up"`` or ``"down"`` for
            every code (the reference runs one direction per experiment, e.g. remove glasses from all test faces).
        candidates: points searched on each edit path (from its start, fraction 0, to its end, fraction 1; the
            reference searches 20).
        decimals: the labeller's scores are rounded to this many decimals before the closest is chosen (the
            reference rounds to 2; ``None``: no rounding).
        identity: an identity encoder (images → embeddings) for the ``identity`` metric, or ``None``.

    Returns:
        ``{attribute: {editor name: {metric: value}}}`` with the metrics of :data:`REFERENCE_METRICS` (``identity``
        only with an identity network; metrics over the common codes are NaN when there are none).
    """
    from ..metrics.fidelity import psnr

    if judge is labeller:
        raise ValueError("the judge must be a classifier other than the labeller (the one the search aims)")
    if not 0.5 < target < 1:
        raise ValueError(f"target must be in (0.5, 1), got {target}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if candidates < 2:
        raise ValueError(f"candidates must be at least 2, got {candidates}")
    if not editors:
        raise ValueError("no editor to evaluate")
    names = _binary_columns(labeller, attributes)
    judged = binary_outputs(judge)
    if attributes is None:
        names = [a for a in names if a in judged and all(editor.supports(a) for editor in editors)]
    if not names:
        raise ValueError("no binary attribute that the labeller, the judge and every editor know")
    columns = [_binary_column(labeller, a, "labelling") for a in names]
    judge_columns = [judge.attribute_names.index(a) for a in judged]
    fractions = torch.linspace(0, 1, candidates).tolist()

    def images_of(codes: torch.Tensor) -> list[torch.Tensor]:
        return [generator(chunk, noise="const") for chunk in codes.split(batch_size)]

    def labelled(codes: torch.Tensor, column: int) -> torch.Tensor:
        return torch.cat([labeller.predict(images)[:, column].float() for images in images_of(codes)])

    def judged_views(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        scores, embeddings, pictures = [], [], []
        for images in images_of(codes):
            scores.append(judge.predict(images)[:, judge_columns].float())
            pictures.append(images.float())
            if identity is not None:
                embeddings.append(F.normalize(identity(images).float(), dim=1))
        return torch.cat(scores), (torch.cat(embeddings) if identity is not None else None), torch.cat(pictures)

    start_judged, start_embedding, start_images = judged_views(w)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for attribute, column in zip(names, columns):
        if direction == "flip":
            sign = torch.where(labelled(w, column) < 0.5, 1.0, -1.0).to(w)
        else:
            sign = torch.full((len(w),), 1.0 if direction == "up" else -1.0, device=w.device, dtype=w.dtype)
        goal = torch.where(sign > 0, target, 1 - target)
        at = judged.index(attribute) if attribute in judged else None
        if at is None:
            raise ValueError(f"the judge classifier has no binary output {attribute!r}; it has {judged}")
        others = [i for i in range(len(judged)) if i != at]
        chosen: dict[str, tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]] = {}
        for editor in editors:
            if not editor.supports(attribute):
                raise ValueError(f"editor {editor.name!r} cannot edit {attribute!r}")
            paths = [editor.path(w, attribute, sign, fraction) for fraction in fractions]
            scores = torch.stack([labelled(codes, column) for codes in paths], 1)  # [N, C]
            if decimals is not None:
                scores = torch.round(scores, decimals=decimals)
            best = (scores - goal[:, None]).abs().argmin(1)  # the first minimum: nearest the path's start
            codes = torch.stack(paths, 1)[torch.arange(len(w), device=w.device), best]
            scored, embedding, images = judged_views(codes)
            success = sign * (scored[:, at] - 0.5) > 0
            chosen[editor.name] = (scored, embedding, images, success)
        common = torch.stack([entry[3] for entry in chosen.values()]).all(0)
        results[attribute] = {}
        for name, (scored, embedding, images, success) in chosen.items():
            metrics = {"success": success.float().mean().item(), "common": float(common.sum())}
            nan = float("nan")
            if common.any():
                change = (scored[common] - start_judged[common])[:, others]
                metrics["other_l2"] = change.norm().item() if others else 0.0
                metrics["other_change"] = change.abs().mean().item() if others else 0.0
                metrics["psnr"] = psnr(images[common], start_images[common]).mean().item()
                if embedding is not None:
                    metrics["identity"] = (embedding[common] * start_embedding[common]).sum(1).mean().item()
            else:
                metrics.update(other_l2=nan, other_change=nan, psnr=nan)
                if embedding is not None:
                    metrics["identity"] = nan
            results[attribute][name] = metrics
    return results


@torch.no_grad()
def search_coordinate(
    model: StyleAE,
    generator: nn.Module,
    classifier: nn.Module,
    w: torch.Tensor,
    attribute: str,
    target: float,
    candidates: torch.Tensor | Sequence[float] | None = None,
    keep_residual: bool = False,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The coordinate value of ``attribute`` whose edited image the classifier scores closest to ``target``.

    Each candidate (default 25 values from −3 to 3) is tried on every code: ``model.edit(w, attribute, value)``,
    synthesised and classified; per code the candidate with the smallest ``|score − target|`` wins (ties: the
    one nearest the code's current coordinate). The classifier's output for ``attribute`` must have the same name.

    Returns:
        ``(coordinates [N], scores [N])``: the chosen values and the classifier's score of their images.
    """
    if attribute not in classifier.attribute_names:
        raise ValueError(f"the classifier has no output {attribute!r}; it has {classifier.attribute_names}")
    column = classifier.attribute_names.index(attribute)
    values = torch.linspace(-3, 3, 25) if candidates is None else torch.as_tensor(candidates, dtype=torch.float32)
    if values.ndim != 1 or values.numel() < 1:
        raise ValueError("candidates must be a non-empty list of coordinate values")
    values = values.to(w)
    start = model.attributes(w)[:, model.attribute_index(attribute)]
    scores = []
    for value in values:
        edited = model.edit(w, attribute, coordinate=value, keep_residual=keep_residual)
        scores.append(torch.cat([classifier.predict(generator(chunk, noise="const"))[:, column].float()
                                 for chunk in edited.split(batch_size)]))
    scores = torch.stack(scores, 1)  # [N, C]
    error = (scores - target).abs() + 1e-6 * (values[None] - start[:, None]).abs()  # ties: nearest the start
    best = error.argmin(1)
    return values[best], scores.gather(1, best[:, None])[:, 0]


def editor_means(results: Mapping[str, Mapping[str, Mapping[str, float]]],
                 metrics: Sequence[str] = METRICS) -> dict[str, dict[str, float]]:
    """``{editor: {metric: mean over the attributes}}`` of :func:`evaluate_attribute_edits` (or, with
    ``metrics=REFERENCE_METRICS``, :func:`evaluate_reference_protocol`) results; a metric only where the editor has
    it, NaN values (no common codes) left out."""
    by_editor: dict[str, list[Mapping[str, float]]] = {}
    for per_editor in results.values():
        for editor, entries in per_editor.items():
            by_editor.setdefault(editor, []).append(entries)
    means = {}
    for editor, entries in by_editor.items():
        means[editor] = {}
        for metric in metrics:
            values = [m[metric] for m in entries if metric in m and m[metric] == m[metric]]
            if values:
                means[editor][metric] = sum(values) / len(values)
    return means


def comparison_rows(results: Mapping[str, Mapping[str, Mapping[str, float]]],
                    metrics: Sequence[str] = METRICS) -> list[list]:
    """Table rows ``[attribute, editor, *metrics]`` of the results (default: the step protocol's
    :data:`METRICS`; :data:`REFERENCE_METRICS` for the reference protocol), plus a mean row per editor."""
    rows = [[attribute, editor, *(_cell(values, key) for key in metrics)]
            for attribute, by_editor in results.items() for editor, values in by_editor.items()]
    rows += [["mean", editor, *(_cell(mean, key) for key in metrics)]
             for editor, mean in editor_means(results, metrics).items()]
    return rows


COMPARISON_HEADER = ["attribute", "editor", "success", "target |dp|", "other |dp|", "identity cos", "path used"]
REFERENCE_HEADER = ["attribute", "editor", "success (judge)", "all succeed", "other L2", "other |dp|",
                    "identity cos", "PSNR dB"]


def _cell(metrics: Mapping[str, float], key: str) -> float | str:
    if key not in metrics or metrics[key] != metrics[key]:
        return "-"
    return round(metrics[key], 1 if key == "common" else 3)  # common: a count (its mean over attributes)


__all__ = ["AttributeEditor", "COMPARISON_HEADER", "DIRECTIONS", "DirectionEditor", "METRICS", "REFERENCE_HEADER",
           "REFERENCE_METRICS", "StyleAEEditor", "binary_outputs", "comparison_rows", "editor_means",
           "evaluate_attribute_edits", "evaluate_reference_protocol", "fit_interfacegan_directions",
           "search_coordinate"]
