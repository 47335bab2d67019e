""":class:`FaceImageDataset`: face images from a folder or zip, with optional attributes and parsing masks."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset, get_worker_info

from .errors import BadImageError, DatasetError
from .imaging import (RESAMPLE, check_resolution, decode_mask, decode_rgb, fit, image_to_tensor, mask_to_tensor,
                      validate_bytes)
from .labels import AttributeTable, load_attribute_table
from .masks import MaskFolder
from .sources import ImageSource, open_source

logger = logging.getLogger(__name__)
MISSING_LABEL_POLICIES = ("error", "skip")
VALIDATION_MODES = ("full", "header")


class FaceImageDataset(Dataset):
    """Face images as ``{"image": float32 [3, R, R] in [-1, 1], "key": str, "index": int}``, plus
    ``"attributes"`` (float32 [A]) when an attribute table is given and ``"mask"`` (int64 [R, R]) when a mask
    folder is given.

    Args:
        root: image folder (searched recursively), ``.zip`` archive, or an :class:`ImageSource`.
        resolution: output size R. Images are centre-cropped to a square (``center_crop``), then resized with
            ``resample`` (``"lanczos"``, ``"bicubic"``, ...); masks get the same crop and a NEAREST resize.
        keys: the images to use, in this order (default: every image of the source, sorted by relative path).
        attributes: attribute table path (CelebA ``list_attr`` format or CSV) or an :class:`AttributeTable`.
        attribute_names: attributes to keep, in this order (default: all of the table's).
        attribute_key_column: the CSV column holding file names (default: detected, see ``labels``).
        masks: folder of ``N_mask.png`` / ``N.png`` index masks or a :class:`MaskFolder`.
        mask_classes: masks with a value ``>= mask_classes`` are bad files (19 for CelebAMask-HQ; ``None``: no check).
        flip: random horizontal flip with probability 1/2 (image and mask together).
        seed: seed of the flips in the main process; in a DataLoader worker the flips use the worker's seed
            (which the DataLoader derives from its ``generator``), so a seeded loader gives reproducible flips.
        missing_labels: ``"error"`` (default): an image without an attribute row / mask raises at construction,
            naming it; ``"skip"``: such images are dropped and listed in :attr:`skipped`.
        skip_bad: check every file when the dataset is built and drop the bad ones (listed in :attr:`skipped`,
            one warning with the count). Without it nothing is checked up front and a bad file raises
            :class:`BadImageError` naming it when it is loaded.
        validate: ``"full"`` (``Image.verify()`` plus a full decode: catches truncated files) or ``"header"``
            (``verify()`` only: fast, misses truncation, which then raises at load time).
        num_threads: threads for the up-front check (default: up to 8).

    Attributes:
        keys: the keys of the items, ``dataset[i]["key"] == keys[i]``.
        skipped: ``(key, reason)`` for every image left out (bad file or missing labels).
        attribute_names: names of the ``"attributes"`` entries (empty without a table).
    """

    def __init__(
        self,
        root: str | Path | ImageSource,
        resolution: int = 256,
        keys: Sequence[str] | None = None,
        attributes: str | Path | AttributeTable | None = None,
        attribute_names: Sequence[str] | None = None,
        attribute_key_column: str | None = None,
        masks: str | Path | MaskFolder | None = None,
        mask_classes: int | None = 19,
        flip: bool = False,
        center_crop: bool = True,
        resample: str = "lanczos",
        seed: int = 0,
        missing_labels: str = "error",
        skip_bad: bool = False,
        validate: str = "full",
        num_threads: int | None = None,
    ):
        resolution = check_resolution(resolution)
        if resample not in RESAMPLE:
            raise ValueError(f"resample must be one of {sorted(RESAMPLE)}, got {resample!r}")
        if missing_labels not in MISSING_LABEL_POLICIES:
            raise ValueError(f"missing_labels must be one of {MISSING_LABEL_POLICIES}, got {missing_labels!r}")
        if validate not in VALIDATION_MODES:
            raise ValueError(f"validate must be one of {VALIDATION_MODES}, got {validate!r}")
        self.source = root if isinstance(root, ImageSource) else open_source(root)
        self.resolution = resolution
        self.center_crop = center_crop
        self.resample = RESAMPLE[resample]
        self.flip = flip
        self.seed = seed
        self.mask_classes = mask_classes
        self.skipped: list[tuple[str, str]] = []
        self._rng: torch.Generator | None = None
        self._rng_key: Any = None

        keys = list(self.source.keys if keys is None else keys)
        self._check_keys(keys)
        table = attributes if isinstance(attributes, AttributeTable) or attributes is None else \
            load_attribute_table(attributes, attribute_names, attribute_key_column)
        if table is not None and attribute_names is not None and table.names != list(attribute_names):
            table = table.select(attribute_names)
        self.attribute_names: list[str] = list(table.names) if table is not None else []
        self.masks = masks if isinstance(masks, MaskFolder) or masks is None else MaskFolder(masks)

        rows, mask_files, kept, missing = [], [], [], []
        for key in keys:
            row = table.lookup(key) if table is not None else None
            mask = self.masks.find(key) if self.masks is not None else None
            reason = None
            if table is not None and row is None:
                reason = f"no attributes in {table.source}" if table.row(key) is None else \
                    f"missing attribute values in {table.source}"
            elif self.masks is not None and mask is None:
                reason = f"no mask in {self.masks.root}"
            if reason is not None:
                missing.append((key, reason))
                continue
            kept.append(key)
            rows.append(row)
            mask_files.append(mask)
        if missing and missing_labels == "error":
            listed = "; ".join(f"{self.source.describe(k)} ({r})" for k, r in missing[:5])
            raise DatasetError(f"{len(missing)} image(s) have no labels: {listed}"
                               f"{' ...' if len(missing) > 5 else ''}. Set missing_labels='skip' to leave them out.")
        self.skipped += missing
        if not kept:
            raise DatasetError(f"{self._where()}: no image has labels (e.g. {missing[0][0]}: {missing[0][1]})")
        self.keys, self._attributes, self._mask_files = kept, rows, mask_files
        if skip_bad:
            self._drop_bad(validate == "full", num_threads)
        self._attribute_tensor = torch.stack(self._attributes) if table is not None else None
        del self._attributes
        if self.skipped:
            logger.warning("%s: left out %d of %d images (e.g. %s: %s); see the dataset's .skipped list",
                           self._where(), len(self.skipped), len(keys), *self.skipped[0])

    # ------------------------------------------------------------------ construction helpers
    def _where(self) -> str:
        return self.source.describe("").rstrip("/:") or "dataset"

    def _check_keys(self, keys: list[str]) -> None:
        known = set(self.source.keys)
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise DatasetError(f"{len(unknown)} key(s) are not images of {self._where()}: {unknown[:5]}")
        if not keys:
            raise DatasetError(f"{self._where()}: no images to use")

    def _check_item(self, position: int, full: bool) -> str | None:
        """Reason why item ``position`` is unusable, or ``None``."""
        key, mask = self.keys[position], self._mask_files[position]
        try:
            data, name = self.source.read(key), self.source.describe(key)
            if not full:
                validate_bytes(data, name, "image", full=False)
                if mask is not None:
                    validate_bytes(self.masks.read(mask), self.masks.describe(mask), "mask", full=False)
                return None
            image = decode_rgb(data, name, verify=True)
            if mask is not None:
                self._load_mask(mask, image.size, verify=True)
        except BadImageError as error:
            return error.reason or str(error)
        return None

    def _drop_bad(self, full: bool, num_threads: int | None) -> None:
        threads = num_threads or min(8, os.cpu_count() or 1)
        positions = range(len(self.keys))
        if threads > 1 and len(self.keys) > 1:
            with ThreadPoolExecutor(threads) as pool:
                reasons = list(pool.map(lambda p: self._check_item(p, full), positions))
        else:
            reasons = [self._check_item(p, full) for p in positions]
        good = [p for p, reason in zip(positions, reasons) if reason is None]
        self.skipped += [(self.keys[p], reason) for p, reason in zip(positions, reasons) if reason is not None]
        self.keys = [self.keys[p] for p in good]
        self._attributes = [self._attributes[p] for p in good]
        self._mask_files = [self._mask_files[p] for p in good]
        if not self.keys:
            raise DatasetError(f"{self._where()}: every image is bad or unlabelled (e.g. {self.skipped[0][1]})")

    # ------------------------------------------------------------------ items
    def __len__(self) -> int:
        return len(self.keys)

    def _generator(self) -> torch.Generator:
        """Flip RNG of this process: seeded with ``seed`` in the main process and with the worker seed in a
        DataLoader worker (re-seeded whenever a new worker starts)."""
        info = get_worker_info()
        key = ("worker", info.seed) if info is not None else ("main", self.seed)
        if self._rng is None or self._rng_key != key:
            self._rng = torch.Generator().manual_seed(key[1] % 2**63)
            self._rng_key = key
        return self._rng

    def _load_mask(self, relative: str, image_size: tuple[int, int], verify: bool = False) -> torch.Tensor:
        name = self.masks.describe(relative)
        mask = decode_mask(self.masks.read(relative), name, verify)
        if mask.width * image_size[1] != mask.height * image_size[0]:
            raise BadImageError.for_file(name, f"mask is {mask.width}x{mask.height} but its image is "
                                               f"{image_size[0]}x{image_size[1]} (different aspect ratio)")
        tensor = mask_to_tensor(fit(mask, self.resolution, self.center_crop, Image.Resampling.NEAREST))
        if self.mask_classes is not None and int(tensor.max()) >= self.mask_classes:
            raise BadImageError.for_file(name, f"mask value {int(tensor.max())} >= mask_classes={self.mask_classes}")
        return tensor

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        index = index % len(self)
        key = self.keys[index]
        image = decode_rgb(self.source.read(key), self.source.describe(key))
        original_size = image.size
        image = fit(image, self.resolution, self.center_crop, self.resample)
        flip = self.flip and bool(torch.rand((), generator=self._generator()) < 0.5)
        item: dict[str, Any] = {"image": image_to_tensor(image), "key": key, "index": index}
        if self._attribute_tensor is not None:
            item["attributes"] = self._attribute_tensor[index].clone()
        if self._mask_files and self._mask_files[index] is not None:
            mask = self._load_mask(self._mask_files[index], original_size)
            item["mask"] = mask.flip(-1) if flip else mask
        if flip:
            item["image"] = item["image"].flip(-1)
        return item
