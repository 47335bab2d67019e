"""Train / val / test splits of image keys.

- :func:`random_split`: a permutation of the *sorted* keys drawn with ``torch.Generator().manual_seed(seed)``,
  cut by ``fractions``; the same keys and seed give the same split on every machine and in every process.
- :func:`read_key_list` / :func:`listed_split`: one list file per split (one key per line).
- :func:`read_partition`: one file for all splits, CelebA ``list_eval_partition.txt`` style (``file 0|1|2``, or
  ``file train|val|test``), or a CSV with a file-name column and a split column (e.g. ``celeba_split``).

List entries are matched to image keys like labels are (exact path, then file name with or without extension).
Each split's keys come back sorted.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Mapping, Sequence

import torch

from .errors import DatasetError
from .keys import KeyIndex
from .labels import KEY_COLUMNS

logger = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
_SPLIT_NAMES = {"0": "train", "train": "train", "training": "train",
                "1": "val", "val": "val", "valid": "val", "validation": "val",
                "2": "test", "test": "test", "testing": "test"}


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Sizes of train/val/test for ``n`` keys: val and test get ``round(f * n)`` (at least 1 when their fraction
    is positive), train gets the rest."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise DatasetError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    val, test = (max(1, round(f * n)) if f > 0 else 0 for f in fractions[1:])
    train = n - val - test
    if train < 0 or (fractions[0] > 0 and train == 0):
        raise DatasetError(f"{n} images are too few for split fractions {tuple(fractions)}")
    return train, val, test


def random_split(keys: Sequence[str], fractions: Sequence[float] = (0.9, 0.05, 0.05),
                 seed: int = 0) -> dict[str, list[str]]:
    """Seeded split of ``keys`` into ``{"train", "val", "test"}`` (each sorted)."""
    ordered = sorted(set(keys))
    if len(ordered) != len(keys):
        raise DatasetError("duplicate keys cannot be split")
    counts = split_counts(len(ordered), fractions)
    permutation = torch.randperm(len(ordered), generator=torch.Generator().manual_seed(seed)).tolist()
    result, start = {}, 0
    for name, count in zip(SPLITS, counts):
        result[name] = sorted(ordered[i] for i in permutation[start: start + count])
        start += count
    return result


def read_key_list(path: str | Path) -> list[str]:
    """Keys listed in a text file, one per line (blank lines and ``#`` comments ignored; only the first field of
    a line is used, so CelebA-style ``file label`` lines also work)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise DatasetError(f"cannot read split list '{path}' ({error.strerror or error})") from None
    return [line.split()[0] for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def read_partition(path: str | Path, key_column: str | None = None,
                   split_column: str | None = None) -> dict[str, list[str]]:
    """Keys per split from one partition file (CelebA text format or CSV, see the module docstring)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise DatasetError(f"cannot read partition file '{path}' ({error.strerror or error})") from None
    result: dict[str, list[str]] = {name: [] for name in SPLITS}
    if path.suffix.lower() == ".csv":
        rows = [r for r in csv.DictReader(text.splitlines())]
        header = list(rows[0].keys()) if rows else []
        key_column = key_column or next((h for h in header if h.strip().lower() in KEY_COLUMNS), None)
        split_column = split_column or next((h for h in header if h.strip().lower() == "split"
                                             or h.strip().lower().endswith("_split")), None)
        if key_column not in header or split_column not in header:
            raise DatasetError(f"{path}: need a file-name column and a split column; columns are {header}")
        pairs = [(r[key_column], r[split_column], n) for n, r in enumerate(rows, start=2)]
    else:
        pairs = []
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) != 2:
                raise DatasetError(f"{path}, line {number}: expected 'file split', got {line.strip()!r}")
            pairs.append((fields[0], fields[1], number))
    for key, label, number in pairs:
        name = _SPLIT_NAMES.get(label.strip().lower())
        if name is None:
            raise DatasetError(f"{path}, line {number}: unknown split {label!r} (use 0/1/2 or train/val/test)")
        result[name].append(key.strip())
    return result


def listed_split(keys: Sequence[str], lists: Mapping[str, Sequence[str]],
                 where: str = "split lists") -> dict[str, list[str]]:
    """Assign ``keys`` to the splits whose lists name them. Keys in no list are left out; a key in two lists is
    an error; list entries that match no key are counted in one warning."""
    unknown_splits = set(lists) - set(SPLITS)
    if unknown_splits:
        raise DatasetError(f"{where}: unknown split name(s) {sorted(unknown_splits)}; use {SPLITS}")
    entries = [(name, entry) for name in SPLITS for entry in lists.get(name, ())]
    index = KeyIndex([entry for _, entry in entries], where)
    result: dict[str, list[str]] = {name: [] for name in SPLITS}
    used = set()
    for key in sorted(keys):
        row = index.find(key)
        if row is not None:
            result[entries[row][0]].append(key)
            used.add(row)
    if len(used) < len(entries):
        missing = [entries[i][1] for i in range(len(entries)) if i not in used]
        logger.warning("%s: %d listed entries match no image (e.g. %s)", where, len(missing), missing[:3])
    return result
