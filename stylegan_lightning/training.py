"""What every LightningModule of the toolkit shares.

:class:`ToolkitModule` keeps frozen auxiliary networks (identity, parsing, landmark, LPIPS / DISTS networks,
which are reloaded from their own weight files) out of checkpoints, so a checkpoint holds what was trained plus
the generator it was trained against, and restores them from the module on load so strict loading still
works. Checkpoints also carry the random generators' states, restored when a fit resumes, so a resumed run draws
the same noise as an uninterrupted one. It also provides image-grid logging on rank zero, a trainable-parameter
helper, and :meth:`auxiliary_step` for optimisers of auxiliary players (discriminators) whose steps should not count
as training steps. :func:`model_from_checkpoint` rebuilds the inference model a module trained from its Lightning
checkpoint alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from .nets._state import FrozenModule
from .utils.images import image_grid


RNG_KEY = "rng_states"


def rng_states() -> dict[str, Any]:
    """The random generators' states (torch CPU and CUDA, NumPy, Python), as plain data for a checkpoint."""
    import random

    import numpy as np

    state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"name": state[0], "keys": torch.from_numpy(state[1].astype("int64")), "pos": int(state[2]),
                      "has_gauss": int(state[3]), "cached_gaussian": float(state[4])},
            "python": repr(random.getstate())}


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the generators to ``states`` (from :func:`rng_states`), so a resumed run draws what the original
    would have drawn next."""
    import ast
    import random

    import numpy as np

    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy = states["numpy"]
    np.random.set_state((numpy["name"], numpy["keys"].numpy().astype("uint32"), numpy["pos"], numpy["has_gauss"],
                         numpy["cached_gaussian"]))
    random.setstate(ast.literal_eval(states["python"]))


def model_from_checkpoint(path: str, purpose: str, spec_key: str, generator_prefix: str,
                          build: Callable[[dict, dict, Any], nn.Module], generator: str | None = None,
                          model_prefix: str = "model.") -> nn.Module:
    """The model (``self.model``, or the attribute ``model_prefix`` names) of a module's Lightning checkpoint, in
    eval mode, without any other file and without unpickling anything but plain data.

    ``spec_key``: the entry the module adds to its checkpoints (refused as not this kind of checkpoint without
    it); ``build(data, hparams, frozen)``: the model with the right architecture around the
    :class:`~stylegan_lightning.stylegan2.FrozenGenerator` ``frozen``, which comes from the checkpoint's own state
    (under ``model.{generator_prefix}``) or, with ``generator``, from that file, which then replaces the stored one.
    Every tensor is loaded strictly; every error is a
    :class:`~stylegan_lightning.serialization.CheckpointError` naming ``purpose`` and the file."""
    from .serialization import CheckpointError, load_state_strict, safe_torch_load
    from .stylegan2 import FrozenGenerator
    from .stylegan2.checkpoints import strip_prefix

    data = safe_torch_load(path, purpose)
    if not isinstance(data, dict) or spec_key not in data or not isinstance(data.get("state_dict"), dict):
        raise CheckpointError(f"{purpose} '{path}': it is not one (no '{spec_key}' entry)")
    hparams = data.get("hyper_parameters", {})
    if not isinstance(hparams, dict):
        raise CheckpointError(f"{purpose} '{path}': its hyper_parameters are a {type(hparams).__name__}, not a "
                              "mapping")
    state = strip_prefix(data["state_dict"], model_prefix)
    try:
        frozen = (FrozenGenerator.from_file(generator) if generator
                  else FrozenGenerator.from_state(state, generator_prefix))
        model = build(data, dict(hparams), frozen)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{purpose} '{path}': cannot rebuild the model ({error})") from error
    if generator:  # the given generator replaces the stored one
        state.update({f"{generator_prefix}{k}": v for k, v in frozen.state_dict().items()})
    load_state_strict(model, state, f"{purpose} '{path}'")
    return model.eval()


def frozen_auxiliary_prefixes(module: nn.Module) -> list[str]:
    """State-dict prefixes of the frozen auxiliary networks inside ``module`` (outermost only)."""
    prefixes: list[str] = []
    for name, child in module.named_modules(remove_duplicate=False):  # a shared network has several names
        if isinstance(child, FrozenModule) and name and not any(name.startswith(p) for p in prefixes):
            prefixes.append(name + ".")
    return prefixes


class ToolkitModule(pl.LightningModule):
    """Base LightningModule of the toolkit (see the module docstring)."""

    # state-dict key suffixes whose shapes legitimately differ from a fresh module (e.g. entropy-coder tables)
    variable_shape_buffers: tuple[str, ...] = ()

    def trainable_parameters(self, module: nn.Module | None = None) -> Iterator[nn.Parameter]:
        """Parameters that require gradients (frozen networks never reach an optimiser)."""
        return (p for p in (module or self).parameters() if p.requires_grad)

    def auxiliary_step(self, optimizer) -> None:
        """Step an auxiliary optimiser (a discriminator's) through the strategy, so precision plugins and
        gradient scalers apply as usual, without advancing ``global_step``: ``trainer.max_steps`` then counts
        the main model's steps, however many discriminator and regularisation steps each batch takes."""
        inner = getattr(optimizer, "optimizer", optimizer)  # a LightningOptimizer wraps the torch optimizer
        self.trainer.strategy.optimizer_step(inner, closure=lambda: None)

    def export_at_fit_end(self, export: Callable[[str], Any] | None = None) -> Path | None:
        """``export(hparams.export_path)`` (default :meth:`export`) on rank 0 at the end of fit; nothing for a
        ``fast_dev_run`` (a dev run leaves no artefacts) or without ``export_path``. A file already there is kept
        as ``<name>.previous<suffix>`` and one line says so, so a short experiment never silently replaces the
        model another run wrote."""
        path = self.hparams.get("export_path")
        trainer = self._trainer
        if not path or trainer is None or trainer.fast_dev_run or not trainer.is_global_zero:
            return None
        path = Path(path)
        if path.exists():
            previous = path.with_name(f"{path.stem}.previous{path.suffix}")
            path.replace(previous)
            print(f"stylegan-lightning: {path} existed; kept it as {previous}")
        (export or self.export)(str(path))
        return path

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        prefixes = tuple(frozen_auxiliary_prefixes(self))
        if prefixes:
            state = checkpoint["state_dict"]
            for key in [k for k in state if k.startswith(prefixes)]:
                del state[key]
            checkpoint["frozen_auxiliary_prefixes"] = list(prefixes)
        checkpoint[RNG_KEY] = rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from .errors import CheckpointError
        from .serialization import check_state

        state = checkpoint.get("state_dict")
        if not isinstance(state, dict):
            raise CheckpointError(f"the checkpoint has no state dict for {type(self).__name__}")
        prefixes = tuple(frozen_auxiliary_prefixes(self))
        if prefixes:
            for key, value in self.state_dict().items():
                if key.startswith(prefixes) and key not in state:
                    state[key] = value
        if self.strict_loading:  # before Lightning's load_state_dict, whose error is a multi-line traceback
            own = self.state_dict()
            variable = self.variable_shape_buffers
            check_state(self, {k: own[k] if variable and k.endswith(variable) and k in own else v
                               for k, v in state.items()}, f"the checkpoint for this {type(self).__name__}")
        trainer = self._trainer
        if RNG_KEY in checkpoint and trainer is not None and trainer.state.fn == "fit":  # resuming a fit
            restore_rng_states(checkpoint[RNG_KEY])

    def discriminator_update(self, discriminator: nn.Module, optimizer, real: torch.Tensor, fake: torch.Tensor,
                             batch_index: int, r1_gamma: float, reg_every: int) -> dict[str, torch.Tensor]:
        """One logistic-loss update of ``discriminator`` on ``real`` versus ``fake`` inputs (both detached here),
        then, every ``reg_every`` batches, lazy R1 on the real inputs (weight ``r1_gamma / 2 * reg_every``); both
        steps go through :meth:`auxiliary_step`. Returns the logged values (``d_loss``, ``d_r1``)."""
        from .losses import d_logistic_loss, r1_penalty

        discriminator.requires_grad_(True)
        real, fake = real.detach(), fake.detach()
        loss = d_logistic_loss(discriminator(real), discriminator(fake))
        optimizer.zero_grad()
        self.manual_backward(loss)
        self.auxiliary_step(optimizer)
        logs = {"d_loss": loss.detach()}
        if reg_every > 0 and batch_index % reg_every == 0:
            real = real.requires_grad_(True)
            logits = discriminator(real)
            r1 = r1_penalty(logits, real) * (r1_gamma / 2 * reg_every) + 0 * logits.flatten()[0]
            optimizer.zero_grad()
            self.manual_backward(r1)
            self.auxiliary_step(optimizer)
            logs["d_r1"] = r1.detach()
        discriminator.requires_grad_(False)
        return logs

    @rank_zero_only
    def log_image_grid(self, tag: str, rows: list[torch.Tensor], max_images: int = 8) -> None:
        """Log a grid to TensorBoard: one row per sample, one column per tensor in ``rows`` (e.g.
        input | reconstruction), images in [-1, 1]."""
        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_image"):
            return
        count = min(max_images, rows[0].shape[0])
        size = rows[0].shape[-1]
        columns = [torch.nn.functional.interpolate(r[:count].detach().float(), size=(size, size), mode="bilinear",
                                                   align_corners=False) if r.shape[-1] != size else r[:count]
                   for r in rows]
        tiles = torch.stack(columns, 1).flatten(0, 1).clamp(-1, 1).cpu()
        grid = image_grid(tiles, nrow=len(rows))
        experiment.add_image(tag, (grid + 1) / 2, self.global_step)
