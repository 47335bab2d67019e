"""Official HyperStyle checkpoints (``hyperstyle_ffhq.pt`` and files written by :func:`save_hyperstyle`).

Layout (the official coach's save dict; the W-encoder is not included)::

    {"state_dict": {"hypernet.<HyperNetwork keys>": ..., "decoder.<rosinality generator keys>": ...},
     "opts": {"layers_to_tune": "0,2,3,...", "input_nc": 6, "output_size": 1024,
              "encoder_type": "SharedWeightsHyperNetResNet", "w_encoder_checkpoint_path": ..., ...},
     "latent_avg": [n_styles, 512]}

The hypernetwork loads strictly (the shared hypernet's weights appear once under ``shared_weight_hypernet`` and
again under every shared head's ``hypernet``, as written by ``state_dict()``). The W-encoder is a separate
official W-encoder file (``opts["w_encoder_checkpoint_path"]`` or the ``w_encoder`` argument); as in the official
model, HyperStyle's own ``latent_avg`` is added to its output. Files written here also carry
``opts["stylegan_lightning_hyperstyle"]`` (hypernetwork input size, shared slots, iterations), ignored by the
official code; official files use the official 256 px input.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..encoders.checkpoints import (load_w_encoder, official_decoder, read_official_checkpoint,
                                    save_encoder_checkpoint)
from ..encoders.inverter import Inverter, LatentEncoder
from ..serialization import CheckpointError, build_unfilled, cpu_state, load_state_strict, require_file
from ..stylegan2.frozen import FrozenGenerator
from ..stylegan2.generator import Generator
from .hypernet import HyperNetwork, parse_layers_to_tune
from .model import HyperStyle

PURPOSE = "HyperStyle checkpoint"
W_ENCODER_PURPOSE = ("HyperStyle W-encoder checkpoint (the frozen encoder that gives HyperStyle its initial W code; "
                     "opts['w_encoder_checkpoint_path'] or load_hyperstyle(w_encoder=...))")
CONFIG_KEY = "stylegan_lightning_hyperstyle"
OFFICIAL_ENCODER_TYPE = "SharedWeightsHyperNetResNet"
DEFAULT_INPUT_SIZE = 256
DEFAULT_N_ITERS = 5


def read_hyperstyle_checkpoint(path: str | Path) -> dict[str, Any]:
    """``{"hypernet": state, "decoder": state | None, "opts": dict, "latent_avg": tensor | None}``."""
    data = read_official_checkpoint(path, PURPOSE, "hypernet.")
    data["hypernet"] = data.pop("network")
    return data


def _w_encoder(w_encoder: Any, opts: Mapping[str, Any], decoder: FrozenGenerator,
               latent_avg: torch.Tensor | None, path: str | Path) -> tuple[LatentEncoder | None, str | None]:
    """``(encoder, None)``, or ``(None, why)`` when the file named by ``opts`` is absent (or none is named): the
    hypernetwork then loads alone. A W-encoder file passed explicitly must exist."""
    if isinstance(w_encoder, Inverter):
        w_encoder = w_encoder.encoder
    if isinstance(w_encoder, LatentEncoder):
        encoder = w_encoder
    else:
        if w_encoder is None:
            source = opts.get("w_encoder_checkpoint_path")
            if not source:
                return None, (f"{PURPOSE} '{path}' names no W-encoder file (opts has no "
                              "w_encoder_checkpoint_path)")
            if not Path(source).expanduser().is_file():
                return None, (f"its file '{source}' (opts['w_encoder_checkpoint_path'] of {PURPOSE} '{path}') "
                              "does not exist")
        else:
            source = w_encoder
        require_file(source, W_ENCODER_PURPOSE)
        encoder = load_w_encoder(source, generator=decoder).encoder
    return _with_latent_avg(encoder, decoder, latent_avg), None


def _with_latent_avg(encoder: LatentEncoder, decoder: FrozenGenerator,
                     latent_avg: torch.Tensor | None) -> LatentEncoder:
    if latent_avg is None:
        return encoder
    # the official model adds HyperStyle's own latent_avg to the W-encoder's output
    return LatentEncoder(encoder.encoder, decoder.n_latent, latent_avg, True, encoder.input_size)


def load_hyperstyle(path: str | Path, w_encoder: str | Path | LatentEncoder | Inverter | None = None,
                    generator: str | Path | Generator | FrozenGenerator | None = None,
                    n_iters: int | None = None) -> HyperStyle:
    """Load an official-layout HyperStyle checkpoint (eval mode): ``hypernet.*`` strictly, the generator from
    ``decoder.*`` (or ``generator``), ``latent_avg``, ``opts`` (``layers_to_tune`` comma string, ``input_nc``,
    ``output_size``), and the W-encoder from ``w_encoder`` or ``opts["w_encoder_checkpoint_path"]``. ``n_iters``
    defaults to the file's (5 for official files). Missing files raise :class:`CheckpointError` naming them,
    except the W-encoder named by ``opts``: without it the hypernetwork loads alone (to inspect, convert,
    fine-tune or pair with an encoder later, :func:`attach_w_encoder`), and only an inversion from images raises,
    naming the file."""
    data = read_hyperstyle_checkpoint(path)
    opts = data["opts"]
    encoder_type = opts.get("encoder_type", OFFICIAL_ENCODER_TYPE)
    if encoder_type != OFFICIAL_ENCODER_TYPE:
        raise CheckpointError(f"{PURPOSE} '{path}': encoder_type {encoder_type!r} is not supported "
                              f"(only {OFFICIAL_ENCODER_TYPE})")
    decoder = official_decoder(data, generator, path, PURPOSE)
    if opts.get("output_size") is not None and int(opts["output_size"]) != decoder.size:
        raise CheckpointError(f"{PURPOSE} '{path}': opts output_size {opts['output_size']} but the generator is "
                              f"{decoder.size} px")
    own = opts.get(CONFIG_KEY) if isinstance(opts.get(CONFIG_KEY), Mapping) else {}
    slot_shapes = decoder.weight_slot_shapes()
    try:
        arguments = dict(slot_shapes=slot_shapes,
                         layers_to_tune=parse_layers_to_tune(opts.get("layers_to_tune", None), len(slot_shapes)),
                         input_nc=int(opts.get("input_nc", 6)),
                         input_size=int(own.get("input_size", DEFAULT_INPUT_SIZE)),
                         shared_layers=own.get("shared_layers"))
        shown = {k: v for k, v in arguments.items() if k != "slot_shapes"}
        purpose = f"{PURPOSE} '{path}' (hypernet, {shown})"
        hypernet = build_unfilled(HyperNetwork, data["hypernet"], purpose, **arguments)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{PURPOSE} '{path}': cannot build the hypernetwork ({error})") from error
    load_state_strict(hypernet, data["hypernet"], purpose)
    encoder, missing = _w_encoder(w_encoder, opts, decoder, data["latent_avg"], path)
    if n_iters is None:
        n_iters = int(own.get("n_iters", opts.get("n_iters_per_batch") or DEFAULT_N_ITERS))
    return HyperStyle(hypernet, decoder, encoder, n_iters, opts=opts, latent_avg=data["latent_avg"],
                      missing_w_encoder=missing).eval()


def attach_w_encoder(model: HyperStyle, w_encoder: str | Path | LatentEncoder | Inverter) -> HyperStyle:
    """Pair a HyperStyle (e.g. one loaded without its W-encoder) with a W-encoder file or module; the model's
    stored ``latent_avg`` is added to the encoder's output, as :func:`load_hyperstyle` does."""
    if isinstance(w_encoder, Inverter):
        w_encoder = w_encoder.encoder
    if not isinstance(w_encoder, LatentEncoder):
        require_file(w_encoder, W_ENCODER_PURPOSE)
        w_encoder = load_w_encoder(w_encoder, generator=model.decoder).encoder
    return model.attach_w_encoder(_with_latent_avg(w_encoder, model.decoder, model._latent_avg))


def save_hyperstyle(path: str | Path, model: HyperStyle, opts: Mapping[str, Any] | argparse.Namespace | None = None,
                    w_encoder_path: str | Path | None = None) -> Path:
    """Write ``model`` in the official layout (``hypernet.*``, ``decoder.*``, ``opts``, ``latent_avg``). With
    ``w_encoder_path`` the W-encoder is written there too (official W-encoder layout) and recorded as
    ``opts["w_encoder_checkpoint_path"]``; otherwise the existing entry (if any) is kept."""
    opts = vars(opts) if isinstance(opts, argparse.Namespace) else dict(opts or {})
    merged = {**model.opts, **opts}
    if w_encoder_path is not None:
        w_encoder_path = save_encoder_checkpoint(w_encoder_path, Inverter(model.require_w_encoder(), model.decoder))
        merged["w_encoder_checkpoint_path"] = str(w_encoder_path)
    hypernet = model.hypernet
    merged.update({
        "encoder_type": OFFICIAL_ENCODER_TYPE,
        "input_nc": hypernet.input_nc,
        "output_size": model.decoder.size,
        "n_hypernet_outputs": hypernet.n_outputs,
        "layers_to_tune": ",".join(str(s) for s in hypernet.layers_to_tune),
        "n_iters_per_batch": model.n_iters,
        "load_w_encoder": True,
        "w_encoder_type": "WEncoder",
        CONFIG_KEY: {"input_size": hypernet.input_size, "shared_layers": list(hypernet.shared_layers),
                     "n_iters": model.n_iters},
    })
    state = cpu_state(hypernet, "hypernet.")
    state.update(cpu_state(model.decoder.generator, "decoder."))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = {"state_dict": state, "opts": merged}
    if model.latent_avg is not None:
        saved["latent_avg"] = model.latent_avg.detach().cpu().clone()
    torch.save(saved, path)
    return path


__all__ = ["CONFIG_KEY", "attach_w_encoder", "load_hyperstyle", "read_hyperstyle_checkpoint", "save_hyperstyle"]
