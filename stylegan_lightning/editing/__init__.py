"""Latent editing over the frozen StyleGAN2 prior: InterFaceGAN and GANSpace directions, their files, applying
them to W / W+ codes, and the attribute classifier that labels generated faces for InterFaceGAN.

- :mod:`.directions`: :class:`Direction`, :func:`load_direction` (InterFaceGAN ``.npy``, e4e / HyperStyle ``.pt``,
  our ``.pt``).
- :mod:`.apply`: :func:`apply_direction`, :func:`apply_strengths` (W vs W+, layer subsets, relative / absolute).
- :mod:`.interfacegan`: :func:`fit_direction` (SVM, logistic, least squares), :func:`project_out`.
- :mod:`.ganspace`: :class:`PCA`, :func:`fit_pca`, :func:`sample_latents`, :func:`load_pca`,
  :func:`apply_ganspace` (e4e semantics).
- :mod:`.classifier` / :mod:`.classifier_module`: :class:`AttributeClassifier`, :class:`AttributeClassifierModule`,
  :func:`load_attribute_classifier`, :func:`export_classifier`.
- :mod:`.labeler`: :func:`label_latents`, :func:`fit_attribute_directions`.
"""

from .apply import apply_direction, apply_strengths, layer_mask
from .classifier import AttributeClassifier, export_classifier, load_attribute_classifier, resize_images
from .classifier_module import AttributeClassifierModule
from .directions import Direction, load_direction
from .ganspace import (PCA, apply_ganspace, apply_ganspace_edits, fit_ganspace, fit_pca, ganspace_delta, load_pca,
                       sample_latents)
from .interfacegan import fit_direction, fit_directions, project_out
from .labeler import fit_attribute_directions, label_latents
from .layers import normalize_layers, resolve_layers

__all__ = [
    "PCA",
    "AttributeClassifier",
    "AttributeClassifierModule",
    "Direction",
    "apply_direction",
    "apply_ganspace",
    "apply_ganspace_edits",
    "apply_strengths",
    "export_classifier",
    "fit_attribute_directions",
    "fit_direction",
    "fit_directions",
    "fit_ganspace",
    "fit_pca",
    "ganspace_delta",
    "label_latents",
    "layer_mask",
    "load_attribute_classifier",
    "load_direction",
    "load_pca",
    "normalize_layers",
    "project_out",
    "resize_images",
    "resolve_layers",
    "sample_latents",
]
