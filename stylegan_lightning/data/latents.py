"""(w, attribute) pairs for training attribute editors (StyleAE) over W.

Two sources, one file format (a plain tensor dict, read with ``weights_only``)::

    {"format": "stylegan-lightning/latent-attributes", "version": 1,
     "w": float32 [N, D], "labels": float32 [N, A] (NaN = missing), "attribute_names": [A names],
     "keys": [N strings], "source": str}

- **sampled**: w drawn from the generator and labelled by an attribute classifier (its probabilities / values),
  :func:`sample_latent_attributes`;
- **inverted**: real images inverted by an encoder (the ``invert`` tool's ``latents.pt``) joined by image key with
  their dataset labels (a CelebA attribute list, a UTKFace CSV, ...), :func:`join_latent_attributes`. W+ codes are
  reduced to W by their mean over layers (exact for W-encoder codes, whose layers are equal).

:class:`LatentAttributeDataModule` reads such a file, or samples one in ``setup``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning.pytorch as pl
import torch
from torch.utils.data import Dataset

from .errors import DatasetError
from .labels import column_indices, load_attribute_table
from .datamodule import _LoaderMixin

LATENT_ATTRIBUTES_FORMAT = "stylegan-lightning/latent-attributes"
MISSING_LABELS = ("mean", "ignore")


class LatentAttributes(Dataset):
    """Items ``{"w": [D], "labels": [A], "index": int}`` of codes ``w`` [N, D] and ``labels`` [N, A]."""

    def __init__(self, w: torch.Tensor, labels: torch.Tensor, attribute_names: Sequence[str],
                 keys: Sequence[str] | None = None, source: str = ""):
        w, labels = torch.as_tensor(w).float(), torch.as_tensor(labels).float()
        names = [str(n) for n in attribute_names]
        if w.ndim == 3:  # W+ -> W
            w = w.mean(1)
        if w.ndim != 2 or labels.ndim != 2 or len(w) != len(labels) or labels.shape[1] != len(names):
            raise DatasetError(f"{source or 'latent attributes'}: expected w [N, D], labels [N, {len(names)}], got "
                               f"{tuple(w.shape)} and {tuple(labels.shape)}")
        if not torch.isfinite(w).all():
            raise DatasetError(f"{source or 'latent attributes'}: codes contain NaN or Inf")
        self.w, self.labels, self.attribute_names = w, labels, names
        self.keys = list(keys) if keys is not None else [f"{i:06d}" for i in range(len(w))]
        self.source = source

    def __len__(self) -> int:
        return len(self.w)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"w": self.w[index], "labels": self.labels[index], "index": index}

    def select(self, names: Sequence[str] | None) -> "LatentAttributes":
        """The same codes with only the label columns ``names`` (in that order)."""
        if names is None:
            return self
        columns = column_indices(self.attribute_names, names, self.source)
        return LatentAttributes(self.w, self.labels[:, columns], names, self.keys, self.source)

    def impute_mean(self) -> "LatentAttributes":
        """The same pairs with every missing (NaN) label replaced by its column's mean over the known labels (the
        reference's imputation); a column with no known label stays missing."""
        labels = self.labels.clone()
        known = torch.isfinite(labels)
        means = torch.where(known, labels, 0).sum(0) / known.sum(0).clamp(min=1)
        means = torch.where(known.any(0), means, torch.full_like(means, float("nan")))
        labels = torch.where(known, labels, means.expand_as(labels))
        return LatentAttributes(self.w, labels, self.attribute_names, self.keys, self.source)

    def subset(self, rows: slice) -> "LatentAttributes":
        return LatentAttributes(self.w[rows], self.labels[rows], self.attribute_names, self.keys[rows], self.source)

    def save(self, path: str | Path) -> Path:
        """Write the file format of the module docs."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": LATENT_ATTRIBUTES_FORMAT, "version": 1, "w": self.w, "labels": self.labels,
                    "attribute_names": self.attribute_names, "keys": self.keys, "source": self.source}, path)
        return path


def load_latent_attributes(path: str | Path) -> LatentAttributes:
    """Read a file written by :meth:`LatentAttributes.save` (clear errors for anything else)."""
    from ..serialization import CheckpointError, safe_torch_load

    data = safe_torch_load(path, "latent-attribute file (w codes with attribute labels)")
    if not isinstance(data, dict) or data.get("format") != LATENT_ATTRIBUTES_FORMAT:
        raise CheckpointError(f"'{path}' is not a latent-attribute file (write one with `stylegan-lightning "
                              "label-latents`)")
    try:
        return LatentAttributes(data["w"], data["labels"], data["attribute_names"], data.get("keys"), str(path))
    except KeyError as error:
        raise CheckpointError(f"'{path}': latent-attribute file without {error}") from None


def sample_latent_attributes(generator, classifier, n: int, truncation: float = 1.0, seed: int = 0,
                             batch_size: int = 64) -> LatentAttributes:
    """``n`` sampled codes labelled by ``classifier`` (an attribute classifier, its module or file) through
    :func:`~stylegan_lightning.editing.label_latents`; labels are its probabilities (binary outputs) and values
    (regression outputs)."""
    from ..editing.labeler import _classifier, label_latents

    classifier = _classifier(classifier)
    w, values = label_latents(generator, classifier, n, truncation=truncation, seed=seed, batch_size=batch_size)
    return LatentAttributes(w, values, classifier.attribute_names,
                            source=f"{n} codes sampled with seed {seed}, labelled by a classifier")


def join_latent_attributes(latents: str | Path, attributes: str | Path,
                           attribute_names: Sequence[str] | None = None) -> LatentAttributes:
    """Codes of an ``invert`` latents file joined by image key with an attribute table (CelebA list or CSV);
    images without a row get NaN labels (ignored by the losses)."""
    from ..inversion import load_latents

    data = load_latents(latents)
    table = load_attribute_table(attributes, attribute_names)
    rows = [table.row(key) for key in data["keys"]]
    if all(row is None for row in rows):
        raise DatasetError(f"no image of '{latents}' has a row in '{attributes}' (keys such as "
                           f"{list(data['keys'][:3])})")
    labels = torch.full((len(rows), len(table.names)), float("nan"))
    for i, row in enumerate(rows):
        if row is not None:
            labels[i] = table.values[row]
    return LatentAttributes(data["w_plus"], labels, table.names, data["keys"],
                            source=f"{latents} joined with {attributes}")


class LatentAttributeDataModule(_LoaderMixin, pl.LightningDataModule):
    """(w, attribute) pairs: ``latents`` (a latent-attribute file) or, without it, ``n`` codes sampled from
    ``sample_generator`` and labelled by ``sample_classifier`` in ``setup``.

    The last ``holdout`` pairs are held out for validation and test (the reference trains on the first 9,900 of
    10,000 codes and tests on the last 100); the rest is the train split.

    Args:
        latents: a latent-attribute file (``stylegan-lightning label-latents``).
        sample_generator, sample_classifier, n, truncation, seed: the sampled source (generator and classifier
            files; named apart from the model's ``generator`` / ``classifier``, which may be other files).
        columns: the label columns to use, in the editor's attribute order (default: all).
        missing_labels: ``"mean"`` (the reference: each missing label is replaced by its attribute's mean over all
            the pairs) or ``"ignore"`` (left missing, so the attribute loss leaves it out).
        holdout: pairs held out for validation / test.
        batch_size, eval_batch_size, num_workers: loader options.
    """

    def __init__(self, latents: str | None = None, sample_generator: str | None = None,
                 sample_classifier: str | None = None, n: int = 10000, truncation: float = 1.0, seed: int = 0,
                 columns: list[str] | None = None, missing_labels: str = "mean", holdout: int = 100,
                 batch_size: int = 5, eval_batch_size: int | None = 100, num_workers: int = 0):
        super().__init__()
        if missing_labels not in MISSING_LABELS:
            raise ValueError(f"missing_labels must be one of {MISSING_LABELS}, got {missing_labels!r}")
        if not latents and not (sample_generator and sample_classifier):
            raise DatasetError("LatentAttributeDataModule needs latents=FILE, or sample_generator=FILE and "
                               "sample_classifier=FILE to sample and label codes")
        if holdout < 1:
            raise ValueError(f"holdout must be positive, got {holdout}")
        self.save_hyperparameters(logger=False)  # as the other DataModules (datamodule.py)
        self._data: LatentAttributes | None = None

    @property
    def data(self) -> LatentAttributes:
        """All pairs (read or sampled on first use)."""
        if self._data is None:
            hp = self.hparams
            if hp.latents:
                data = load_latent_attributes(hp.latents)
            else:
                from ..stylegan2 import FrozenGenerator

                data = sample_latent_attributes(FrozenGenerator.from_file(hp.sample_generator),
                                                hp.sample_classifier, hp.n, hp.truncation, hp.seed)
            data = data.select(hp.columns)
            if hp.missing_labels == "mean":
                data = data.impute_mean()
            if len(data) <= hp.holdout:
                raise DatasetError(f"{data.source}: {len(data)} pairs leave nothing to train on with "
                                   f"holdout={hp.holdout}")
            self._data = data
        return self._data

    @property
    def attribute_names(self) -> list[str]:
        return self.data.attribute_names

    def _dataset(self, split: str) -> LatentAttributes:
        holdout = self.hparams.holdout
        return self.data.subset(slice(None, -holdout) if split == "train" else slice(-holdout, None))

    def setup(self, stage: str | None = None) -> None:
        self.data  # noqa: B018 -- read / sample once, before the loaders


__all__ = ["LATENT_ATTRIBUTES_FORMAT", "LatentAttributeDataModule", "LatentAttributes", "join_latent_attributes",
           "load_latent_attributes", "sample_latent_attributes"]
