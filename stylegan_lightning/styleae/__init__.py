"""StyleAE (Bedychaj, Tabor, Śmieja; arXiv 2412.20164): an autoencoder over W whose first code coordinates are
named attributes, so an edit moves one coordinate and decodes.

- :mod:`.model`: :class:`StyleAE` (``encode`` / ``decode`` / ``attributes`` / ``edit``, attribute units).
- :mod:`.evaluation`: editors (:class:`StyleAEEditor`, :class:`DirectionEditor` for InterFaceGAN), the reference
  protocol :func:`evaluate_reference_protocol` (search for a target probability, success by a separate judge
  classifier, identity and other attributes on the codes every editor edited), this project's step protocol
  :func:`evaluate_attribute_edits`, and :func:`search_coordinate` (the coordinate value that reaches a target
  classifier probability).
- :mod:`.checkpoints`: :func:`save_styleae` / :func:`load_styleae` (also reads ``StyleAEModule`` checkpoints).
- :mod:`.module`: :class:`StyleAEModule` (training, validation with the side-by-side edit comparison).

Training data: :class:`~stylegan_lightning.data.LatentAttributeDataModule`.

Importing the package is cheap: each name is imported from its module on first use (PEP 562), so a tool that needs
one part (and every ``--help``) does not pay for CompressAI or Lightning.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "AttributeEditor": ".evaluation",
    "COMPARISON_HEADER": ".evaluation",
    "DirectionEditor": ".evaluation",
    "METRICS": ".evaluation",
    "STYLEAE_FORMAT": ".checkpoints",
    "StyleAE": ".model",
    "StyleAEEditor": ".evaluation",
    "StyleAEModule": ".module",
    "attribute_loss": ".module",
    "binary_outputs": ".evaluation",
    "comparison_rows": ".evaluation",
    "editor_means": ".evaluation",
    "evaluate_attribute_edits": ".evaluation",
    "evaluate_reference_protocol": ".evaluation",
    "REFERENCE_HEADER": ".evaluation",
    "REFERENCE_METRICS": ".evaluation",
    "fit_label_ranges": ".model",
    "fit_interfacegan_directions": ".evaluation",
    "load_styleae": ".checkpoints",
    "pearson": ".module",
    "save_styleae": ".checkpoints",
    "search_coordinate": ".evaluation",
    "styleae_losses": ".module",
    "tolerance_loss": ".module",
}

__all__ = ["COMPARISON_HEADER", "METRICS", "REFERENCE_HEADER", "REFERENCE_METRICS", "STYLEAE_FORMAT", "AttributeEditor", "DirectionEditor", "StyleAE",
           "StyleAEEditor", "StyleAEModule", "attribute_loss", "binary_outputs", "comparison_rows", "editor_means",
           "evaluate_attribute_edits", "evaluate_reference_protocol", "fit_interfacegan_directions", "fit_label_ranges", "load_styleae", "pearson", "save_styleae",
           "search_coordinate", "styleae_losses", "tolerance_loss"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
