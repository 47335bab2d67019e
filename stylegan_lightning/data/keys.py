"""Joining image keys (relative paths) with the keys used by label tables, mask folders and split lists.

An image ``celebahq/00012.jpg`` matches, in this order of preference, an entry named exactly
``celebahq/00012.jpg``, then ``celebahq/00012`` (same path, any extension), then ``00012.jpg`` (file name), then
``00012`` (file name without extension). A file name that two entries share (``a/1.jpg`` and ``b/1.jpg``) cannot
be matched by file name alone, and asking for it is an error rather than a silent pick.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Sequence

from .errors import DatasetError

_AMBIGUOUS = -1


def normalize_key(key: str) -> str:
    """Strip whitespace, use ``/`` separators and drop a leading ``./``."""
    key = key.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


def key_forms(key: str) -> tuple[str, str, str, str]:
    """``(path, path without extension, file name, file name without extension)`` of a normalised key."""
    path = PurePosixPath(key)
    no_ext = str(path.with_suffix("")) if path.suffix else key
    return key, no_ext, path.name, path.stem if path.suffix else path.name


class KeyIndex:
    """Finds the entry (row number) that an image key refers to; see the module docstring for the rules."""

    def __init__(self, keys: Sequence[str], what: str = "entries"):
        self.what = what
        self._maps: list[dict[str, int]] = [{}, {}, {}, {}]
        for row, key in enumerate(keys):
            forms = key_forms(normalize_key(key))
            if forms[0] in self._maps[0]:
                raise DatasetError(f"{what}: key '{forms[0]}' appears more than once")
            for level, form in enumerate(forms):
                mapping = self._maps[level]
                mapping[form] = row if mapping.get(form, row) == row else _AMBIGUOUS

    def find(self, image_key: str) -> int | None:
        """Row of the entry matching ``image_key`` or ``None``; :class:`DatasetError` if only ambiguous names fit."""
        for level, form in enumerate(key_forms(normalize_key(image_key))):
            row = self._maps[level].get(form)
            if row is None:
                continue
            if row == _AMBIGUOUS:
                raise DatasetError(f"{self.what}: '{image_key}' matches several entries named '{form}'; use "
                                   "keys with folder names to tell them apart")
            return row
        return None
