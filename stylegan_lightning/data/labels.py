"""Per-image attribute tables: CelebA ``list_attr_celeba.txt`` files and CSV files.

Both give an :class:`AttributeTable`: the attribute names, one key per row (the file name as written in the
table) and a float32 value matrix in which ``NaN`` marks a missing value. Rows are joined with images through
:class:`~stylegan_lightning.data.keys.KeyIndex` (exact path, then file name, with or without extension).

- CelebA format (also CelebAMask-HQ's ``CelebAMask-HQ-attribute-anno.txt``): line 1 the row count, line 2 the
  attribute names, then ``filename v1 v2 ...`` with values +1/-1, stored as 1.0/0.0.
- CSV: a header row; the key column is ``key_column`` or, by default, the first column named one of
  :data:`KEY_COLUMNS` (case-insensitive). The attributes are ``columns`` or, by default, every numeric column
  (values that parse as numbers or ``true``/``false``; empty cells are missing values). Columns whose values are
  all -1/+1 (CelebA attributes exported to CSV) are stored as 0/1 unless ``pm1_to_binary=False``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from .errors import DatasetError
from .keys import KeyIndex

KEY_COLUMNS = ("file", "filename", "image", "image_id", "name", "path")
_BOOLS = {"true": 1.0, "false": 0.0}


def column_indices(available: Sequence[str], names: Sequence[str], source: str) -> list[int]:
    """The positions of the columns ``names`` among ``available``; unknown names raise a :class:`DatasetError`
    naming ``source`` and listing the available ones."""
    unknown = [n for n in names if n not in available]
    if unknown:
        raise DatasetError(f"{source}: unknown attribute(s) {unknown}; available: {list(available)}")
    return [list(available).index(n) for n in names]


@dataclass
class AttributeTable:
    """Attribute values per key: ``values[i]`` (float32 [A], NaN = missing) belongs to ``keys[i]``."""

    names: list[str]
    keys: list[str]
    values: torch.Tensor
    source: str = ""
    _index: KeyIndex | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.values.shape != (len(self.keys), len(self.names)):
            raise DatasetError(f"{self.source}: values {tuple(self.values.shape)} do not match "
                               f"{len(self.keys)} keys x {len(self.names)} attributes")
        self.values = self.values.float()

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def index(self) -> KeyIndex:
        """The :class:`KeyIndex` over :attr:`keys` (built on first use)."""
        if self._index is None:
            self._index = KeyIndex(self.keys, f"attribute table {self.source}")
        return self._index

    def select(self, names: Sequence[str] | None) -> "AttributeTable":
        """A table with only ``names`` (in that order); unknown names raise, listing the available ones."""
        if names is None:
            return self
        columns = column_indices(self.names, names, self.source)
        return AttributeTable(list(names), self.keys, self.values[:, columns], self.source, self._index)

    def row(self, image_key: str) -> int | None:
        """Row for ``image_key`` (see :class:`KeyIndex`), or ``None`` if the table has none."""
        return self.index.find(image_key)

    def lookup(self, image_key: str) -> torch.Tensor | None:
        """The values for ``image_key``, or ``None`` if it has no row or a missing (NaN) value."""
        row = self.row(image_key)
        if row is None or torch.isnan(self.values[row]).any():
            return None
        return self.values[row].clone()


def read_celeba_attributes(path: str | Path) -> AttributeTable:
    """Read a CelebA ``list_attr_celeba.txt``-style file (values +1/-1 -> 1.0/0.0; 0 is also read as 0.0)."""
    path = Path(path)
    lines = [line for line in _read_text(path).splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DatasetError(f"{path}: not a CelebA attribute file (line 1 must be the number of rows)")
    declared, names = int(lines[0].strip()), lines[1].split()
    keys, rows = [], []
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if len(fields) != len(names) + 1:
            raise DatasetError(f"{path}, line {number}: expected a file name and {len(names)} values, "
                               f"got {len(fields)} fields")
        try:
            values = [int(v) for v in fields[1:]]
        except ValueError:
            raise DatasetError(f"{path}, line {number}: values must be +1/-1") from None
        if any(v not in (-1, 0, 1) for v in values):
            raise DatasetError(f"{path}, line {number}: values must be +1/-1")
        keys.append(fields[0])
        rows.append([1.0 if v > 0 else 0.0 for v in values])
    if declared != len(rows):
        raise DatasetError(f"{path}: line 1 declares {declared} rows but the file has {len(rows)} (truncated?)")
    values = torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(names))
    return AttributeTable(names, keys, values, str(path))


def _parse_number(text: str) -> float | None:
    """float for a numeric cell, NaN for an empty one, None if the cell is not numeric."""
    text = text.strip()
    if not text:
        return math.nan
    if text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    try:
        return float(text)
    except ValueError:
        return None


def read_csv_attributes(path: str | Path, key_column: str | None = None, columns: Sequence[str] | None = None,
                        pm1_to_binary: bool = True) -> AttributeTable:
    """Read attributes from a CSV file (see the module docstring for the column rules)."""
    path = Path(path)
    rows = list(csv.reader(_read_text(path).splitlines()))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DatasetError(f"{path}: empty CSV file")
    header = [h.strip() for h in rows[0]]
    if key_column is None:
        key_column = next((h for h in header if h.lower() in KEY_COLUMNS), None)
        if key_column is None:
            raise DatasetError(f"{path}: no file-name column (looked for {KEY_COLUMNS}); columns are {header}. "
                               "Name it with key_column=...")
    elif key_column not in header:
        raise DatasetError(f"{path}: key column '{key_column}' not found; columns are {header}")
    key_at = header.index(key_column)
    body = rows[1:]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DatasetError(f"{path}, line {number}: {len(row)} fields, the header has {len(header)}")
    parsed = {h: [_parse_number(r[i]) for r in body] for i, h in enumerate(header) if i != key_at}
    if columns is None:
        columns = [h for h, vals in parsed.items()
                   if all(v is not None for v in vals) and any(not math.isnan(v) for v in vals)]
        if not columns:
            raise DatasetError(f"{path}: no numeric columns")
    for name in columns:
        if name not in parsed:
            raise DatasetError(f"{path}: unknown attribute column '{name}'; columns are {header}")
        bad = next((r[header.index(name)] for r, v in zip(body, parsed[name]) if v is None), None)
        if bad is not None:
            raise DatasetError(f"{path}: column '{name}' is not numeric (value {bad!r})")
    values = torch.tensor([parsed[name] for name in columns], dtype=torch.float32).T.reshape(len(body), len(columns))
    if pm1_to_binary:
        for j in range(values.shape[1]):
            present = values[:, j][~torch.isnan(values[:, j])]
            if len(present) and bool(((present == 1) | (present == -1)).all()):
                values[:, j] = torch.where(values[:, j] == -1, torch.zeros(()), values[:, j])
    return AttributeTable(list(columns), [r[key_at].strip() for r in body], values, str(path))


def load_attribute_table(path: str | Path, names: Sequence[str] | None = None,
                         key_column: str | None = None) -> AttributeTable:
    """Read a CelebA-format or CSV attribute file (chosen by extension, then by content) and keep ``names``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"attribute table '{path}' does not exist")
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            first = handle.readline().strip()
    except OSError as error:
        raise DatasetError(f"cannot read '{path}' ({error})") from None
    if path.suffix.lower() == ".csv" or (not first.isdigit() and "," in first):
        return read_csv_attributes(path, key_column, columns=names)
    return read_celeba_attributes(path).select(names)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"cannot read '{path}' ({type(error).__name__}: {error})") from None
