"""Face data: image folders and zips, attribute tables, parsing masks, splits, generated faces, DataModules.

See ``data/README.md`` in the repository for the expected dataset layouts.
"""

from .datamodule import FaceDataModule, SyntheticDataModule
from .datasets import FaceImageDataset
from .errors import BadImageError, DatasetError
from .imaging import decode_mask, decode_rgb, image_to_tensor, mask_to_tensor
from .keys import KeyIndex
from .latents import (LATENT_ATTRIBUTES_FORMAT, LatentAttributeDataModule, LatentAttributes,
                      join_latent_attributes, load_latent_attributes, sample_latent_attributes)
from .labels import KEY_COLUMNS, AttributeTable, load_attribute_table, read_celeba_attributes, read_csv_attributes
from .loaders import ResumableSampler, make_loader, seed_worker
from .masks import CELEBAMASK_HQ_CLASSES, MaskFolder, combine_part_masks
from .sources import IMAGE_EXTENSIONS, FolderSource, ImageSource, ZipSource, open_source
from .splits import SPLITS, listed_split, random_split, read_key_list, read_partition
from .synthetic import SyntheticFaceDataset

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
