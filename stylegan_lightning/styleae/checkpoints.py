"""StyleAE files: ``{"format", "version", "config", "state_dict"}`` (plain tensors, read with ``weights_only``).

:func:`load_styleae` also reads ``StyleAEModule`` Lightning checkpoints (the config comes from their
hyperparameters), so either can be given to the ``edit`` tool. The stored sizes must be positive integers
(``n_layers`` at most the number of stored tensors) and the network they describe is compared with the stored
tensor shapes on the meta device before it is built, so a forged config cannot ask for more memory than the file
holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..serialization import (CheckpointError, check_before_building, config_mapping, config_size, cpu_state,
                             load_state_strict, safe_torch_load)
from ..stylegan2.checkpoints import strip_prefix
from .model import StyleAE

STYLEAE_FORMAT = "stylegan-lightning/styleae"
STYLEAE_VERSION = 1
CONFIG_KEYS = ("latent_dim", "attribute_names", "hidden_dim", "n_layers", "label_ranges", "prelu_init", "bias_init")


def save_styleae(path: str | Path, model: StyleAE) -> Path:
    """Write ``model`` (config + weights) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = cpu_state(model)
    torch.save({"format": STYLEAE_FORMAT, "version": STYLEAE_VERSION, "config": dict(model.config),
                "state_dict": state}, path)
    return path


def _config_from_hparams(hparams: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    config = {key: hparams[key] for key in CONFIG_KEYS if key in hparams}
    config.setdefault("latent_dim", int(state["encoder.0.weight"].shape[1]))
    return config


def load_styleae(path: str | Path) -> StyleAE:
    """A :class:`StyleAE` (eval mode, CPU) from a StyleAE file or a ``StyleAEModule`` Lightning checkpoint."""
    purpose = "StyleAE attribute autoencoder"
    data = safe_torch_load(path, purpose)
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), Mapping):
        raise CheckpointError(f"{purpose}: '{path}' has no state_dict (expected a StyleAE file or a StyleAEModule "
                              "checkpoint)")
    if data.get("format") == STYLEAE_FORMAT:
        version = data.get("version")
        if not isinstance(version, int) or version > STYLEAE_VERSION:
            raise CheckpointError(f"{purpose}: '{path}' has version {version!r}; this release reads up to "
                                  f"{STYLEAE_VERSION}")
        config, state = dict(config_mapping(data, "config", f"{purpose} '{path}'")), dict(data["state_dict"])
    elif isinstance(data.get("hyper_parameters"), Mapping):
        state = strip_prefix(data["state_dict"], "model.")
        if "encoder.0.weight" not in state:
            raise CheckpointError(f"{purpose}: '{path}' is a Lightning checkpoint without a StyleAE (no "
                                  "model.encoder.* weights)")
        config = _config_from_hparams(data["hyper_parameters"], state)
    else:
        raise CheckpointError(f"{purpose}: '{path}' is neither a StyleAE file nor a StyleAEModule checkpoint")
    where = f"{purpose} '{path}'"
    config_size(config, "latent_dim", where)
    if config.get("hidden_dim") is not None:
        config_size(config, "hidden_dim", where)
    if "n_layers" in config:
        config_size(config, "n_layers", where, len(state))
    check_before_building(lambda: StyleAE(**config), state, where)
    try:
        model = StyleAE(**config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{purpose}: '{path}' has an invalid config ({error})") from None
    load_state_strict(model, state, where)
    return model.eval()


__all__ = ["STYLEAE_FORMAT", "STYLEAE_VERSION", "load_styleae", "save_styleae"]
