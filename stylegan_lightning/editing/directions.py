"""Linear latent directions (InterFaceGAN boundaries and friends) and their files.

A :class:`Direction` is a vector in W (``[D]``) plus the W+ layers it applies to, an optional intercept (the
fitted hyperplane is ``w . vector + intercept = 0``) and free-form metadata (fit diagnostics, provenance).

Files read by :func:`load_direction` (the format is recognised from the content, not the file name):

- InterFaceGAN ``.npy``: a float array ``[1, D]`` (unit norm in the official files);
  written by :meth:`Direction.save_interfacegan`.
- e4e / HyperStyle ``.pt``: a bare tensor ``[1, D]`` (or ``[D]``); written by :meth:`Direction.save_e4e`.
- stylegan-lightning ``.pt``: ``{"format", "version", "vector", "name", "layers", "intercept", "metadata"}``;
  written by :meth:`Direction.save`.

Norms are kept as they are in the file. InterFaceGAN's boundaries are unit vectors, but the directions shipped
with e4e / HyperStyle (``editings/interfacegan_directions/{age,smile,pose}.pt``) are applied there as
``latent + factor * direction`` without normalising, so their published factors (e.g. -3..3 for age) only mean
the same thing if the vector keeps its norm. :meth:`Direction.unit` gives the normalised vector when wanted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..serialization import CheckpointError, require_file, safe_torch_load
from .layers import LayerSpec, normalize_layers

DIRECTION_FORMAT = "stylegan-lightning/direction"
DIRECTION_VERSION = 1
_NPY_MAGIC = b"\x93NUMPY"
_NPZ_MAGIC = b"PK\x03\x04"


def check_plain(value: Any, where: str = "metadata") -> None:
    """Raise ``TypeError`` unless ``value`` is plain data that ``torch.load(weights_only=True)`` reads back:
    ``None``, bool, int, float, str, tensors, and lists / tuples / dicts (str keys) of those."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"{where}: {type(value).__name__} is not plain data (allowed: None, bool, int, float, str, "
                    "tensors, lists, tuples and dicts of those)")


def _as_vector(vector: Any, what: str = "direction") -> torch.Tensor:
    """A float32 CPU-or-device tensor [D] from a tensor / array of shape [D], [1, D] or [1, 1, D]."""
    tensor = torch.as_tensor(np.asarray(vector) if isinstance(vector, np.ndarray) else vector)
    if not tensor.is_floating_point():
        tensor = tensor.float()
    while tensor.ndim > 1 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 1 or tensor.numel() == 0:
        shape = tuple(torch.as_tensor(vector).shape)
        raise ValueError(f"{what}: expected a vector of shape [D] or [1, D], got {shape}")
    tensor = tensor.detach().to(torch.float32)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{what}: the vector contains NaN or Inf")
    if float(tensor.norm()) == 0.0:
        raise ValueError(f"{what}: the vector is zero")
    return tensor


@dataclass
class Direction:
    """A direction in W (``vector`` [D]) applied to the W+ ``layers`` (``None``: all layers).

    Attributes:
        vector: float32 [D]. Unit norm when fitted here; loaded files keep their own norm (see module docs).
        name: a label (attribute name, file stem).
        layers: default layer selection for :func:`~stylegan_lightning.editing.apply_direction`
            (see :mod:`~stylegan_lightning.editing.layers`; stored as ``None``, a string or a list of ints).
        intercept: the hyperplane is ``w . vector + intercept = 0`` (the positive class on the side the vector
            points to); 0 for files that carry none.
        metadata: plain data (fit diagnostics such as ``train_accuracy`` / ``val_accuracy``, provenance).
    """

    vector: torch.Tensor
    name: str = ""
    layers: LayerSpec = None
    intercept: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.vector = _as_vector(self.vector, f"direction {self.name!r}" if self.name else "direction")
        self.layers = normalize_layers(self.layers)
        self.intercept = float(self.intercept)
        if not math.isfinite(self.intercept):
            raise ValueError("direction intercept must be finite")
        self.metadata = dict(self.metadata)

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """The latent width D."""
        return self.vector.shape[0]

    @property
    def norm(self) -> float:
        """``||vector||`` (1 for fitted directions and InterFaceGAN files)."""
        return float(self.vector.norm())

    def unit(self) -> "Direction":
        """A copy with a unit vector (the intercept is divided by the same norm, so the hyperplane is kept)."""
        norm = self.norm
        return replace(self, vector=self.vector / norm, intercept=self.intercept / norm,
                       metadata=dict(self.metadata))

    def distance(self, latent: torch.Tensor) -> torch.Tensor:
        """Signed distance ``(w . vector + intercept) / ||vector||`` of each w (last dimension D) to the
        hyperplane; positive on the side the vector points to."""
        vector = self.vector.to(latent)
        return (latent @ vector + self.intercept) / vector.norm()

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Direction":
        """A copy whose vector lives on ``device`` / has ``dtype``."""
        direction = replace(self, metadata=dict(self.metadata))
        direction.vector = self.vector.to(device=device, dtype=dtype)
        return direction

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """The stylegan-lightning file content (plain tensors and values only)."""
        check_plain(self.metadata)
        return {"format": DIRECTION_FORMAT, "version": DIRECTION_VERSION, "vector": self.vector.detach().cpu(),
                "name": self.name, "layers": self.layers, "intercept": self.intercept, "metadata": self.metadata}

    def save(self, path: str | Path) -> Path:
        """Write the stylegan-lightning ``.pt`` format (read back with :func:`load_direction`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.to_dict(), path)
        return path

    def save_interfacegan(self, path: str | Path) -> Path:
        """Write an InterFaceGAN boundary ``.npy``: float32 ``[1, D]`` as stored (layers and intercept are not
        part of that format). InterFaceGAN expects unit vectors; save ``direction.unit()`` for foreign files."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:  # np.save(str) would append ".npy" to other suffixes
            np.save(handle, self.vector.detach().cpu().numpy().reshape(1, -1).astype(np.float32),
                    allow_pickle=False)
        return path

    def save_e4e(self, path: str | Path) -> Path:
        """Write an e4e / HyperStyle direction: a bare float32 tensor ``[1, D]`` (applied there to every W+
        layer as ``latent + factor * direction``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.vector.detach().cpu().reshape(1, -1).clone(), path)
        return path


def _sniff(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(8)


def _from_dict(data: dict, path: Path) -> Direction:
    version = data.get("version")
    if not isinstance(version, int) or version > DIRECTION_VERSION:
        raise CheckpointError(f"direction file '{path}' has version {version!r}; this release reads up to "
                              f"{DIRECTION_VERSION}")
    try:
        return Direction(vector=data["vector"], name=data.get("name", "") or "", layers=data.get("layers"),
                         intercept=data.get("intercept", 0.0), metadata=data.get("metadata") or {})
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"direction file '{path}' is malformed ({type(error).__name__}: {error})") from error


def load_direction(path: str | Path, name: str | None = None, layers: LayerSpec = None) -> Direction:
    """Read a direction file (InterFaceGAN ``.npy``, e4e / HyperStyle ``.pt`` tensor, or stylegan-lightning
    ``.pt``; see the module docs). The vector keeps the norm it has in the file.

    Args:
        name: the direction's name (default: the one stored in the file, else the file stem).
        layers: a layer selection to attach (default: the one stored in the file, else all layers).
    """
    path = require_file(path, "latent direction")
    magic = _sniff(path)
    if magic.startswith(_NPY_MAGIC):
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise CheckpointError(f"'{path}' is not a readable InterFaceGAN boundary ({error})") from error
        try:
            direction = Direction(array, name=path.stem, metadata={"source": "interfacegan", "file": str(path)})
        except ValueError as error:
            raise CheckpointError(f"'{path}': {error}") from error
    elif magic.startswith(_NPZ_MAGIC) and path.suffix.lower() == ".npz":
        raise CheckpointError(f"'{path}' is an .npz archive (a GANSpace PCA?); read it with load_pca()")
    else:
        data = safe_torch_load(path, "latent direction")
        if isinstance(data, torch.Tensor):
            try:
                direction = Direction(data, name=path.stem, metadata={"source": "e4e", "file": str(path)})
            except ValueError as error:
                raise CheckpointError(f"'{path}': {error}") from error
        elif isinstance(data, dict) and data.get("format") == DIRECTION_FORMAT:
            direction = _from_dict(data, path)
            direction.name = direction.name or path.stem
        elif isinstance(data, dict) and {"comp", "mean", "std"} <= set(data):
            raise CheckpointError(f"'{path}' is a GANSpace PCA dict (e4e ffhq_pca.pt style); read it with load_pca()")
        else:
            found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
            raise CheckpointError(f"'{path}' is not a direction file: expected a tensor [1, D] (e4e / HyperStyle), "
                                  f"an InterFaceGAN .npy or a stylegan-lightning direction dict, found {found}")
    if name is not None:
        direction.name = name
    if layers is not None:
        direction.layers = normalize_layers(layers)
    return direction
