"""Small copies of trained files for distribution (the demo models in ``data/demo/``, a prior to share).

:func:`ship_file` reads any toolkit file as plain data (:func:`~.serialization.safe_torch_load`) and writes a copy in
which every floating-point tensor of two or more dimensions (convolution kernels, linear weights, noise maps) is
stored as float16; vectors and scalars (biases, norm parameters, entropy-model quantiles and scale tables, latent
averages) and every integer tensor (the codec's CDF tables) keep their type, so a shipped codec codes with exactly
the tables it was trained with. Loaders cast float16 weights back to float32 when they fill a model
(``load_state_dict`` copies across types). A Lightning checkpoint keeps only what rebuilding its model needs: the
hyperparameters, the module's own entries (``*_spec``, ``frozen_auxiliary_prefixes``) and the ``state_dict``
entries under ``keep_prefixes``; optimiser and random-generator states, loops, callbacks, the data module's state
and, e.g., a GAN discriminator are dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .serialization import safe_torch_load

LIGHTNING_MODEL_ENTRIES = ("pytorch-lightning_version", "epoch", "global_step", "hyper_parameters", "hparams_name",
                           "state_dict", "frozen_auxiliary_prefixes")


def _halve(value: Any, memo: dict[int, torch.Tensor]) -> Any:
    """``value`` with its weight tensors (floating point, 2+ dims) as float16; a tensor held twice stays shared."""
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            halve = value.is_floating_point() and value.dim() >= 2 and value.dtype != torch.float16
            memo[id(value)] = value.to(torch.float16) if halve else value
        return memo[id(value)]
    if isinstance(value, dict):
        return type(value)((key, _halve(item, memo)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_halve(item, memo) for item in value)
    return value


def is_lightning_checkpoint(data: Any) -> bool:
    """Whether ``data`` (a loaded file) is a Lightning checkpoint."""
    return isinstance(data, dict) and "pytorch-lightning_version" in data and isinstance(data.get("state_dict"), dict)


def slim_checkpoint(data: dict[str, Any], keep_prefixes: Sequence[str] = ("model.",)) -> dict[str, Any]:
    """A Lightning checkpoint without its run state (see the module docstring); ``state_dict`` keeps the entries
    under ``keep_prefixes`` (all of them when empty)."""
    slim = {key: value for key, value in data.items() if key in LIGHTNING_MODEL_ENTRIES or key.endswith("_spec")}
    if keep_prefixes:
        slim["state_dict"] = {key: value for key, value in data["state_dict"].items()
                              if any(key.startswith(prefix) for prefix in keep_prefixes)}
    return slim


def ship_file(source: str | Path, destination: str | Path, keep_prefixes: Sequence[str] = ("model.",)) -> dict[str, Any]:
    """Write the distribution copy of ``source`` to ``destination``; returns a report (bytes before and after,
    tensors halved, state entries kept)."""
    data = safe_torch_load(source, "file to ship")
    lightning = is_lightning_checkpoint(data)
    entries_before = len(data["state_dict"]) if lightning else None
    if lightning:
        data = slim_checkpoint(data, keep_prefixes)
    memo: dict[int, torch.Tensor] = {}
    shipped = _halve(data, memo)
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    torch.save(shipped, destination)
    halved = sum(1 for tensor in memo.values() if tensor.dtype == torch.float16)
    report = {"source bytes": Path(source).stat().st_size, "shipped bytes": destination.stat().st_size,
              "tensors": len(memo), "float16 tensors": halved}
    if lightning:
        report["state entries kept"] = f"{len(shipped['state_dict'])} of {entries_before}"
    return report
