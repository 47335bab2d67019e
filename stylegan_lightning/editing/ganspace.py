"""GANSpace: principal components of W as editing directions, applied the way e4e / HyperStyle apply them.

Fitting: :func:`fit_pca` on mapped w samples (:func:`sample_latents`, which calls
``FrozenGenerator.sample_w``): ``mean`` [D], ``comp`` [K, D] (unit, orthogonal rows sorted by explained
variance; each row's largest-magnitude entry is made positive so the signs are reproducible) and ``std`` [K] =
sqrt(explained variance) = the sample standard deviation (ddof 1) of the projections ``(w - mean) . comp_k``.
(GANSpace itself stores, for W, the ddof-0 std of the projections of 5000 fresh samples as ``lat_stdev``.)

Files (:func:`load_pca`, :meth:`PCA.save`; the format is recognised from the content):

- e4e / HyperStyle ``.pt`` (``editings/ganspace_pca/ffhq_pca.pt``): ``{"comp": [K, 1, D], "mean": [1, D],
  "std": [K]}`` (torch tensors);
- GANSpace ``.npz`` (``cache/components/*.npz``): ``lat_comp`` [K, 1, D], ``lat_mean`` [1, D], ``lat_stdev`` [K]
  (+ ``var_ratio``, ``act_*``).

The ``.pt`` written here is exactly e4e's dict plus ``format``, ``version``, ``var_ratio`` and ``metadata`` keys,
which e4e ignores. Both loaders also accept ``comp`` [K, D] and ``mean`` [D].

Editing (:func:`apply_ganspace`, e4e ``editings/ganspace.py`` semantics, edits given as e4e's
``(index, start, end, strength)`` tuples):

- ``mode="set"`` (e4e): the coordinate of the code along component ``k``, measured in units of ``std[k]`` on
  W+ layer 0 only (``c = ((w[0] - mean) . comp_k) / std_k``), is *set* to ``strength`` on layers
  ``[start, end)``: ``w_l += (strength - c) * std_k * comp_k`` for ``start <= l < end``. Layers whose code differs
  from layer 0 get the same shift, so their own coordinate becomes ``c_l + strength - c``.
- ``mode="shift"``: ``w_l += strength * std_k * comp_k`` on ``[start, end)`` (a relative move of ``strength``
  standard deviations, independent of the code).
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..serialization import CheckpointError, require_file, safe_torch_load
from .directions import Direction, check_plain

PCA_FORMAT = "stylegan-lightning/pca"
PCA_VERSION = 1
APPLY_MODES = ("set", "shift")


@dataclass
class PCA:
    """Principal components of W: ``comp`` [K, D] (unit rows), ``mean`` [D], ``std`` [K] (see module docs)."""

    comp: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    var_ratio: torch.Tensor | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        comp = torch.as_tensor(self.comp).detach().float()
        if comp.ndim == 3 and comp.shape[1] == 1:
            comp = comp[:, 0]
        mean = torch.as_tensor(self.mean).detach().float().reshape(-1)
        std = torch.as_tensor(self.std).detach().float().reshape(-1)
        if comp.ndim != 2 or mean.shape[0] != comp.shape[1] or std.shape[0] != comp.shape[0]:
            raise ValueError(f"inconsistent PCA shapes: comp {tuple(comp.shape)} (expected [K, D] or [K, 1, D]), "
                             f"mean {tuple(mean.shape)} (expected [D]), std {tuple(std.shape)} (expected [K])")
        if not all(torch.isfinite(t).all() for t in (comp, mean, std)) or bool((std <= 0).any()):
            raise ValueError("PCA tensors must be finite and std positive")
        self.comp, self.mean, self.std = comp, mean, std
        if self.var_ratio is not None:
            self.var_ratio = torch.as_tensor(self.var_ratio).detach().float().reshape(-1)
        self.metadata = dict(self.metadata)

    @property
    def n_components(self) -> int:
        return self.comp.shape[0]

    @property
    def dim(self) -> int:
        return self.comp.shape[1]

    def project(self, w: torch.Tensor) -> torch.Tensor:
        """Coordinates ``(w - mean) . comp_k`` [..., K] of codes [..., D] (in W units, not divided by std)."""
        return (w - self.mean.to(w)) @ self.comp.to(w).T

    def direction(self, index: int, name: str | None = None, layers: Any = None) -> Direction:
        """Component ``index`` as a unit :class:`Direction` (``metadata["std"]`` holds its std)."""
        return Direction(self.comp[index], name=name or f"pc{index}", layers=layers,
                         metadata={"source": "ganspace", "component": index, "std": float(self.std[index])})

    # ------------------------------------------------------------------ files
    def to_e4e_dict(self) -> dict[str, torch.Tensor]:
        """e4e's ``ffhq_pca.pt`` dict: ``comp`` [K, 1, D], ``mean`` [1, D], ``std`` [K]."""
        return {"comp": self.comp.cpu().unsqueeze(1).clone(), "mean": self.mean.cpu().unsqueeze(0).clone(),
                "std": self.std.cpu().clone()}

    def save(self, path: str | Path) -> Path:
        """``.npz``: GANSpace's format; anything else: the e4e ``.pt`` dict (plus ignored extra keys)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        e4e = self.to_e4e_dict()
        if path.suffix.lower() == ".npz":
            arrays = {"lat_comp": e4e["comp"], "lat_mean": e4e["mean"], "lat_stdev": e4e["std"],
                      "act_comp": e4e["comp"], "act_mean": e4e["mean"], "act_stdev": e4e["std"]}
            if self.var_ratio is not None:
                arrays["var_ratio"] = self.var_ratio
            with open(path, "wb") as handle:
                np.savez_compressed(handle, **{k: v.cpu().numpy().astype(np.float32) for k, v in arrays.items()})
            return path
        check_plain(self.metadata)
        torch.save({**e4e, "format": PCA_FORMAT, "version": PCA_VERSION, "var_ratio": self.var_ratio,
                    "metadata": self.metadata}, path)
        return path


def load_pca(path: str | Path) -> PCA:
    """Read a GANSpace ``.npz`` or an e4e-style ``.pt`` PCA dict (see the module docs)."""
    path = require_file(path, "GANSpace PCA")
    names: list[str] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    if "lat_comp.npy" in names:
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("lat_comp", "lat_mean", "lat_stdev") if k not in data.files]
                if missing:
                    raise CheckpointError(f"GANSpace file '{path}' lacks {missing}")
                arrays = {k: torch.from_numpy(np.array(data[k])) for k in ("lat_comp", "lat_mean", "lat_stdev")}
                ratio = torch.from_numpy(np.array(data["var_ratio"])) if "var_ratio" in data.files else None
        except ValueError as error:
            raise CheckpointError(f"'{path}' is not a readable GANSpace .npz ({error})") from error
        return _build(arrays["lat_comp"], arrays["lat_mean"], arrays["lat_stdev"], ratio,
                      {"source": "ganspace", "file": str(path)}, path)
    data = safe_torch_load(path, "GANSpace PCA")
    if not isinstance(data, dict) or not {"comp", "mean", "std"} <= set(data):
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"'{path}' is not a PCA file: expected e4e's {{'comp', 'mean', 'std'}} dict or a "
                              f"GANSpace .npz with lat_comp / lat_mean / lat_stdev, found {found}")
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {"source": "e4e", "file": str(path)}
    return _build(data["comp"], data["mean"], data["std"], data.get("var_ratio"), metadata, path)


def _build(comp, mean, std, ratio, metadata, path) -> PCA:
    try:
        return PCA(comp, mean, std, ratio if isinstance(ratio, torch.Tensor) else None, metadata)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"'{path}': {error}") from error


# ---------------------------------------------------------------------- fitting
@torch.no_grad()
def sample_latents(generator, n: int, seed: int = 0, truncation: float = 1.0) -> torch.Tensor:
    """``n`` mapped codes w [n, D] (CPU, float32) from a
    :class:`~stylegan_lightning.stylegan2.FrozenGenerator`: ``generator.sample_w`` with a generator seeded by
    ``seed`` (the same ``(n, seed)`` always gives the same codes)."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    return generator.sample_w(n, truncation, generator=torch.Generator().manual_seed(seed)).float().cpu()


def _sign_convention(components: torch.Tensor) -> torch.Tensor:
    largest = components.abs().argmax(dim=1, keepdim=True)
    return components * torch.sign(components.gather(1, largest))


def fit_pca(latents: torch.Tensor, n_components: int = 80, method: str = "svd", seed: int = 0,
            oversample: int = 10, niter: int = 4) -> PCA:
    """PCA of codes ``latents`` [N, D] (see the module docs).

    Args:
        n_components: K (at most ``min(N, D)``).
        method: ``"svd"`` (exact, ``torch.linalg.svd``) or ``"lowrank"`` (randomised ``torch.pca_lowrank`` with
            ``oversample`` extra dimensions and ``niter`` power iterations, seeded by ``seed``; for large D).
    """
    latents = torch.as_tensor(latents)
    if latents.ndim != 2 or latents.shape[0] < 2:
        raise ValueError(f"latents must be [N, D] with N >= 2, got {tuple(latents.shape)}")
    n, dim = latents.shape
    if not 1 <= n_components <= min(n, dim):
        raise ValueError(f"n_components must be in [1, min(N, D) = {min(n, dim)}], got {n_components}")
    x = latents.detach().to(torch.float64)
    mean = x.mean(0)
    centered = x - mean
    if method == "svd":
        _, singular, vh = torch.linalg.svd(centered, full_matrices=False)
        components = vh[:n_components]
    elif method == "lowrank":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _, singular, v = torch.pca_lowrank(centered, q=min(n_components + oversample, n, dim), center=False,
                                               niter=niter)
        components = v[:, :n_components].T
    else:
        raise ValueError(f"method must be 'svd' or 'lowrank', got {method!r}")
    singular = singular[:n_components]
    total = centered.square().sum()
    return PCA(_sign_convention(components), mean, singular / math.sqrt(n - 1), (singular.square() / total),
               {"source": "fit_pca", "n_samples": n, "method": method})


def fit_ganspace(generator, n_samples: int = 100_000, n_components: int = 80, seed: int = 0,
                 truncation: float = 1.0, method: str = "svd") -> PCA:
    """:func:`fit_pca` on ``n_samples`` codes from :func:`sample_latents` (GANSpace used 1M samples for W)."""
    pca = fit_pca(sample_latents(generator, n_samples, seed, truncation), n_components, method, seed)
    pca.metadata.update(seed=seed, truncation=truncation)
    return pca


# ---------------------------------------------------------------------- editing
def ganspace_delta(w_ref: torch.Tensor, pca: PCA, index: int, strength: float | torch.Tensor,
                   mode: str = "set") -> torch.Tensor:
    """The shift [B, D] that component ``index`` adds to each selected layer, for reference codes
    ``w_ref`` [B, D] (W+ layer 0 in e4e's ``get_delta``)."""
    if mode not in APPLY_MODES:
        raise ValueError(f"mode must be one of {APPLY_MODES}, got {mode!r}")
    if not -pca.n_components <= index < pca.n_components:
        raise IndexError(f"component {index} out of range for {pca.n_components} components")
    comp, std = pca.comp[index].to(w_ref), pca.std[index].to(w_ref)
    value = torch.as_tensor(strength, dtype=w_ref.dtype, device=w_ref.device)
    if value.ndim not in (0, 1) or (value.ndim == 1 and value.shape[0] != w_ref.shape[0]):
        raise ValueError(f"strength must be a number or one value per code, got {tuple(value.shape)}")
    if mode == "shift":
        return ((value * std).reshape(-1, 1) * comp).expand(w_ref.shape[0], -1)
    coordinate = ((w_ref - pca.mean.to(w_ref)) @ comp) / std  # [B]
    return ((value - coordinate) * std).unsqueeze(1) * comp


def apply_ganspace(w: torch.Tensor, pca: PCA, index: int, start: int = 0, end: int | None = None,
                   strength: float | torch.Tensor = 0.0, mode: str = "set", n_latent: int | None = None
                   ) -> torch.Tensor:
    """Edit W [B, D] or W+ [B, n, D] codes with PCA component ``index`` on layers ``[start, end)``.

    ``start=0, end=None`` edits every layer and keeps a W input as W; any other range turns a W input into W+
    (pass ``n_latent``). See the module docs for ``mode``; the reference code of ``"set"`` is the W code, or
    layer 0 of a W+ code.
    """
    if w.ndim not in (2, 3) or w.shape[-1] != pca.dim:
        raise ValueError(f"expected W [B, {pca.dim}] or W+ [B, n, {pca.dim}] codes, got {tuple(w.shape)}")
    every_layer = start == 0 and end is None
    if w.ndim == 2 and not every_layer:
        if n_latent is None:
            raise ValueError("a layer range turns a W code into W+: pass n_latent (the generator's n_latent)")
        w = w.unsqueeze(1).expand(-1, n_latent, -1)
    reference = w if w.ndim == 2 else w[:, 0]
    delta = ganspace_delta(reference, pca, index, strength, mode)
    if w.ndim == 2:
        return w + delta
    layers = range(w.shape[1])[start:end]
    if len(layers) == 0 or not 0 <= start < w.shape[1]:
        raise ValueError(f"layer range [{start}, {end}) selects no layer of the {w.shape[1]} W+ layers")
    mask = torch.zeros(w.shape[1], 1, dtype=w.dtype, device=w.device)
    mask[list(layers)] = 1
    return w + delta.unsqueeze(1) * mask


def apply_ganspace_edits(w: torch.Tensor, pca: PCA, edits: Sequence[tuple[int, int, int, float]],
                         mode: str = "set", n_latent: int | None = None) -> torch.Tensor:
    """Each e4e-style edit ``(index, start, end, strength)`` applied separately to every code: ``[E, B, ...]``
    (e4e's ``ganspace.edit`` returns the same codes ordered code-major)."""
    if not edits:
        raise ValueError("no edits given")
    return torch.stack([apply_ganspace(w, pca, int(index), int(start), None if end is None else int(end), strength,
                                       mode, n_latent) for index, start, end, strength in edits])
