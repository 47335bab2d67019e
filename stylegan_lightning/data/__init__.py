"""Face data: image folders and zips, attribute tables, parsing masks, splits, generated faces, DataModules.

See ``data/README.md`` in the repository for the expected dataset layouts.

Importing the package is cheap: each name is imported from its module on first use (PEP 562), so a tool
that needs only the error classes or the image decoder does not pay for Lightning.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "AttributeTable": ".labels",
    "BadImageError": ".errors",
    "CELEBAMASK_HQ_CLASSES": ".masks",
    "DatasetError": ".errors",
    "FaceDataModule": ".datamodule",
    "FaceImageDataset": ".datasets",
    "FolderSource": ".sources",
    "IMAGE_EXTENSIONS": ".sources",
    "ImageSource": ".sources",
    "KEY_COLUMNS": ".labels",
    "KeyIndex": ".keys",
    "LATENT_ATTRIBUTES_FORMAT": ".latents",
    "LatentAttributeDataModule": ".latents",
    "LatentAttributes": ".latents",
    "MaskFolder": ".masks",
    "ResumableSampler": ".loaders",
    "SPLITS": ".splits",
    "SyntheticDataModule": ".datamodule",
    "SyntheticFaceDataset": ".synthetic",
    "ZipSource": ".sources",
    "combine_part_masks": ".masks",
    "decode_mask": ".imaging",
    "decode_rgb": ".imaging",
    "image_to_tensor": ".imaging",
    "join_latent_attributes": ".latents",
    "listed_split": ".splits",
    "load_attribute_table": ".labels",
    "load_latent_attributes": ".latents",
    "make_loader": ".loaders",
    "mask_to_tensor": ".imaging",
    "open_source": ".sources",
    "random_split": ".splits",
    "read_celeba_attributes": ".labels",
    "read_csv_attributes": ".labels",
    "read_key_list": ".splits",
    "read_partition": ".splits",
    "sample_latent_attributes": ".latents",
    "seed_worker": ".loaders",
}

__all__ = [
    "CELEBAMASK_HQ_CLASSES",
    "IMAGE_EXTENSIONS",
    "KEY_COLUMNS",
    "LATENT_ATTRIBUTES_FORMAT",
    "SPLITS",
    "AttributeTable",
    "BadImageError",
    "DatasetError",
    "FaceDataModule",
    "FaceImageDataset",
    "FolderSource",
    "ImageSource",
    "KeyIndex",
    "LatentAttributeDataModule",
    "LatentAttributes",
    "MaskFolder",
    "ResumableSampler",
    "SyntheticDataModule",
    "SyntheticFaceDataset",
    "ZipSource",
    "combine_part_masks",
    "decode_mask",
    "decode_rgb",
    "image_to_tensor",
    "join_latent_attributes",
    "load_latent_attributes",
    "listed_split",
    "load_attribute_table",
    "make_loader",
    "mask_to_tensor",
    "open_source",
    "random_split",
    "read_celeba_attributes",
    "read_csv_attributes",
    "read_key_list",
    "read_partition",
    "sample_latent_attributes",
    "seed_worker",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
