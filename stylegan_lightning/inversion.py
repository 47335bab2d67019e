"""Image inversion as a tool: load an inversion method from a checkpoint, read images, write latents.

Methods register a loader in :data:`INVERSION_METHODS` (``method -> loader(checkpoint, generator, **options) ->
model``); a model has ``invert(images) -> (w_plus, reconstruction)`` and ``decoder`` (its :class:`FrozenGenerator`).
Options are keyword parameters of a loader beyond ``(checkpoint, generator)`` (HyperStyle: ``w_encoder``,
``n_iters``); :func:`inversion_method_options` lists them and :func:`load_inversion_model` passes those given.
Latents files are plain ``torch.save`` dicts ``{"keys", "w_plus", "method", "checkpoint", "generator_config",
"extra"}`` read back with ``weights_only=True``.
"""

from __future__ import annotations

import inspect
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .serialization import CheckpointError, require_file, safe_torch_load

Loader = Callable[..., nn.Module]  # loader(checkpoint, generator, **options)
INVERSION_METHODS: dict[str, Loader] = {}


def register_inversion_method(name: str, loader: Loader) -> None:
    """Make ``--method name`` available to ``stylegan-lightning invert`` / ``edit``."""
    INVERSION_METHODS[name] = loader


def _is_lightning_checkpoint(path: str) -> bool:
    """Lightning writes torch's zip format whose pickle names the key ``pytorch-lightning_version``; looking at the
    pickle's bytes answers without unpickling anything or reading the (large) tensor data."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
        return name is not None and b"pytorch-lightning_version" in archive.read(name)


def _load_encoder(checkpoint: str, generator: str | None) -> nn.Module:
    """pSp / e4e / W-encoder: an official-layout file or an ``EncoderModule`` Lightning checkpoint."""
    from .encoders import load_encoder
    from .encoders.module import load_encoder_module_checkpoint

    if _is_lightning_checkpoint(checkpoint):
        return load_encoder_module_checkpoint(checkpoint, generator)
    return load_encoder(checkpoint, generator=generator)


register_inversion_method("encoder", _load_encoder)


def _load_gradstyle(checkpoint: str, generator: str | None) -> nn.Module:
    """GradStyle: a ``GradStyleModule`` Lightning checkpoint (its e4e file must exist)."""
    from .gradstyle.module import load_gradstyle

    return load_gradstyle(checkpoint, generator)


register_inversion_method("gradstyle", _load_gradstyle)


def _load_hyperstyle(checkpoint: str, generator: str | None, w_encoder: str | None = None,
                     n_iters: int | None = None) -> nn.Module:
    """HyperStyle: an official-layout file (its W-encoder from ``opts["w_encoder_checkpoint_path"]`` or
    ``w_encoder``) or a ``HyperStyleModule`` Lightning checkpoint; ``n_iters`` replaces the model's number of
    refinement steps (5 for official files) for ``invert`` and ``edit``."""
    if n_iters is not None and int(n_iters) < 1:
        raise ValueError(f"HyperStyle n_iters must be >= 1, got {n_iters}")
    if _is_lightning_checkpoint(checkpoint):
        from .hyperstyle.module import load_hyperstyle_module_checkpoint

        if w_encoder is not None:
            raise CheckpointError(f"'{checkpoint}' is a HyperStyleModule Lightning checkpoint, which holds its "
                                  "W-encoder; a separate W-encoder file is only used with official-layout files")
        model = load_hyperstyle_module_checkpoint(checkpoint, generator=generator)
        if n_iters is not None:
            model.n_iters = int(n_iters)
        return model
    from .hyperstyle import load_hyperstyle

    model = load_hyperstyle(checkpoint, w_encoder=w_encoder, generator=generator, n_iters=n_iters)
    model.require_w_encoder()  # the tools invert images: say now, before any output, if its W-encoder is missing
    return model


register_inversion_method("hyperstyle", _load_hyperstyle)


def inversion_method_options(method: str) -> list[str]:
    """Names of the keyword options the loader of ``method`` takes besides ``(checkpoint, generator)``
    (``["*"]`` when it takes any)."""
    if method not in INVERSION_METHODS:
        raise CheckpointError(f"unknown inversion method {method!r}; available: {sorted(INVERSION_METHODS)}")
    parameters = list(inspect.signature(INVERSION_METHODS[method]).parameters.values())[2:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return ["*"]
    return [p.name for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                     inspect.Parameter.KEYWORD_ONLY)]


def load_inversion_model(checkpoint: str, method: str = "encoder", generator: str | None = None,
                         **options: Any) -> nn.Module:
    """The inversion model of ``method`` stored in ``checkpoint`` (eval mode). ``options`` (e.g. HyperStyle's
    ``w_encoder=``, ``n_iters=``) go to the method's loader; ``None`` values count as not given, and an option
    the method does not take is a :class:`TypeError` naming it."""
    accepted = inversion_method_options(method)
    options = {name: value for name, value in options.items() if value is not None}
    unknown = sorted(name for name in options if name not in accepted and accepted != ["*"])
    if unknown:
        raise TypeError(f"inversion method {method!r} takes no option(s) {unknown} "
                        f"(its options: {accepted or 'none'})")
    require_file(checkpoint, f"{method} inversion checkpoint")
    return INVERSION_METHODS[method](checkpoint, generator, **options).eval()


def read_images(path: str | Path, resolution: int) -> tuple[list[str], torch.Tensor]:
    """Images in [-1, 1] at ``resolution`` (1..``MAX_RESOLUTION``) from one image file, a folder (recursive) or a
    zip archive."""
    from .data import FaceImageDataset
    from .data.imaging import check_resolution, decode_rgb, fit, image_to_tensor
    from PIL import Image

    resolution = check_resolution(resolution)
    path = Path(path)
    if path.is_file() and path.suffix.lower() != ".zip":
        image = fit(decode_rgb(path.read_bytes(), str(path)), resolution, True, Image.Resampling.LANCZOS)
        return [path.name], image_to_tensor(image)[None]
    dataset = FaceImageDataset(str(path), resolution=resolution)
    if len(dataset) == 0:
        raise CheckpointError(f"no images found in '{path}'")
    items = [dataset[i] for i in range(len(dataset))]
    return [item["key"] for item in items], torch.stack([item["image"] for item in items])


def save_latents(path: str | Path, keys: list[str], w_plus: torch.Tensor, method: str, checkpoint: str,
                 generator_config: dict[str, Any], extra: dict[str, torch.Tensor] | None = None,
                 alignment: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write inverted latents (and method-specific tensors in ``extra``; with ``alignment``, each key's face
    alignment metadata from ``--align``, for ``edit --paste-back``) as a plain tensor file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"keys": list(keys), "w_plus": w_plus.detach().cpu(), "method": method, "checkpoint": str(checkpoint),
                "generator_config": dict(generator_config), "extra": dict(extra or {}),
                "alignment": dict(alignment or {})}, path)
    return path


def load_latents(path: str | Path) -> dict[str, Any]:
    """Read a latents file written by :func:`save_latents` (also a bare W / W+ tensor file)."""
    data = safe_torch_load(path, "latents file")
    if isinstance(data, torch.Tensor):
        data = {"keys": [f"{i:05d}" for i in range(len(data))], "w_plus": data, "extra": {}}
    if not isinstance(data, dict) or not isinstance(data.get("w_plus"), torch.Tensor):
        raise CheckpointError(f"'{path}' is not a latents file (expected a dict with a 'w_plus' tensor)")
    if not torch.isfinite(data["w_plus"]).all():
        raise CheckpointError(f"'{path}' holds NaN or Inf latents")
    return data
