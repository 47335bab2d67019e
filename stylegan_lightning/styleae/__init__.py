"""StyleAE (Bedychaj, Tabor, Śmieja; arXiv 2412.20164): an autoencoder over W whose first code coordinates are
named attributes, so an edit moves one coordinate and decodes.

- :mod:`.model`: :class:`StyleAE` (``encode`` / ``decode`` / ``attributes`` / ``edit``, attribute units).
- :mod:`.evaluation`: editors (:class:`StyleAEEditor`, :class:`DirectionEditor` for InterFaceGAN), the
  equal-attribute-change comparison :func:`evaluate_attribute_edits`, and :func:`search_coordinate` (the
  coordinate value that reaches a target classifier probability).
- :mod:`.checkpoints`: :func:`save_styleae` / :func:`load_styleae` (also reads ``StyleAEModule`` checkpoints).
- :mod:`.module`: :class:`StyleAEModule` (training, validation with the side-by-side edit comparison).

Training data: :class:`~stylegan_lightning.data.LatentAttributeDataModule`.
"""

from .model import StyleAE
from .evaluation import (COMPARISON_HEADER, METRICS, AttributeEditor, DirectionEditor, StyleAEEditor, binary_outputs,
                         comparison_rows, editor_means, evaluate_attribute_edits, fit_interfacegan_directions,
                         search_coordinate)
from .checkpoints import STYLEAE_FORMAT, load_styleae, save_styleae
from .module import StyleAEModule, attribute_loss, pearson, styleae_losses, tolerance_loss

__all__ = ["COMPARISON_HEADER", "METRICS", "STYLEAE_FORMAT", "AttributeEditor", "DirectionEditor", "StyleAE",
           "StyleAEEditor", "StyleAEModule", "attribute_loss", "binary_outputs", "comparison_rows", "editor_means",
           "evaluate_attribute_edits", "fit_interfacegan_directions", "load_styleae", "pearson", "save_styleae",
           "search_coordinate", "styleae_losses", "tolerance_loss"]
