"""Folders of face-parsing masks: one single-channel index PNG per image.

A mask ``N_mask.png`` or ``N.png`` (anywhere below the folder) belongs to the image whose key, without
extension, is ``N`` (or ``sub/N`` when the folders mirror each other). When any ``*_mask.png`` file exists, only
those files are masks (so masks may sit beside PNG images). Values are class indices; for
CelebAMask-HQ the 19 classes of :data:`CELEBAMASK_HQ_CLASSES` (0 = background).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import BadImageError, DatasetError
from .imaging import open_bounded
from .keys import KeyIndex

CELEBAMASK_HQ_CLASSES = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth",
    "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
MASK_SUFFIX = "_mask"


class MaskFolder:
    """Index of the ``.png`` masks under ``root``; :meth:`find` gives the mask file for an image key."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetError(f"mask folder '{self.root}' does not exist or is not a directory")
        files = []
        for directory, subdirs, names in os.walk(self.root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            rel_dir = Path(directory).relative_to(self.root).as_posix()
            files += [n if rel_dir == "." else f"{rel_dir}/{n}" for n in names
                      if n.lower().endswith(".png") and not n.startswith(".")]
        suffixed = [f for f in files if f[: -len(".png")].endswith(MASK_SUFFIX)]
        self.files = sorted(suffixed or files)  # masks stored beside PNG images: only the *_mask.png files
        if not self.files:
            raise DatasetError(f"no .png masks found in '{self.root}'")
        keys = []
        for name in self.files:
            stem = name[: -len(".png")]
            keys.append(stem[: -len(MASK_SUFFIX)] if stem.endswith(MASK_SUFFIX) else stem)
        self.index = KeyIndex(keys, f"mask folder {self.root}")

    def __len__(self) -> int:
        return len(self.files)

    def find(self, image_key: str) -> str | None:
        """Path (relative to ``root``) of the mask for ``image_key``, or ``None``."""
        row = self.index.find(image_key)
        return None if row is None else self.files[row]

    def describe(self, relative: str) -> str:
        """Full path of mask file ``relative`` (for messages)."""
        return str(self.root / relative)

    def read(self, relative: str) -> bytes:
        """The bytes of mask file ``relative``; unreadable files raise :class:`BadImageError`."""
        try:
            return (self.root / relative).read_bytes()
        except OSError as error:
            raise BadImageError.for_file(self.describe(relative), f"cannot be read ({error.strerror or error})") \
                from None


def combine_part_masks(anno_root: str | Path, index: int) -> Image.Image:
    """The 19-class index mask of CelebAMask-HQ image ``index`` from the official per-part binary masks.

    The official release stores ``CelebAMask-HQ-mask-anno/<index // 2000>/<index:05d>_<part>.png`` (512x512,
    white = part) for the parts of :data:`CELEBAMASK_HQ_CLASSES` that the face has. Pixels start as 0
    (background) and each part, in class order, writes its class index, so later classes overwrite earlier ones
    where parts overlap. Files directly in ``anno_root`` are found too. Save the result as ``<index>_mask.png``.
    """
    root = Path(anno_root).expanduser()
    folders = [root / str(index // 2000), root]
    combined = None
    for value, part in enumerate(CELEBAMASK_HQ_CLASSES[1:], start=1):
        path = next((f / f"{index:05d}_{part}.png" for f in folders if (f / f"{index:05d}_{part}.png").is_file()),
                    None)
        if path is None:
            continue
        try:
            with open_bounded(str(path), str(path)) as image:
                on = np.asarray(image.convert("L")) >= 128
        except BadImageError:
            raise
        except Exception as error:
            raise BadImageError.for_file(str(path), f"unreadable part mask ({type(error).__name__}: {error})") \
                from None
        if combined is None:
            combined = np.zeros(on.shape, dtype=np.uint8)
        elif on.shape != combined.shape:
            raise BadImageError.for_file(str(path), f"part mask is {on.shape[::-1]}, others are "
                                                    f"{combined.shape[::-1]}")
        combined[on] = value
    if combined is None:
        raise DatasetError(f"no part masks '{index:05d}_<part>.png' for image {index} under '{root}'")
    return Image.fromarray(combined, "L")
