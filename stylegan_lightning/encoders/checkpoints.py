"""Official pSp / e4e / HyperStyle W-encoder checkpoints: loading into an :class:`~.inverter.Inverter`, and
writing our encoders in the same layout.

Layout (the ``Coach.__get_save_dict`` of the official repositories)::

    {"state_dict": {"encoder.<encoder keys>": ..., "decoder.<rosinality generator keys>": ...},
     "opts": vars(training options), "latent_avg": [n_styles, 512] (or [512] / [1, 512]), ...}

How the architecture is chosen:

- kind: the loader's (``load_psp`` / ``load_e4e`` / ``load_w_encoder``), checked against ``opts["encoder_type"]``
  (``GradualStyleEncoder`` -> psp, ``Encoder4Editing`` -> e4e, ``WEncoder`` / ``BackboneEncoderUsingLastLayerIntoW``
  -> w). :func:`load_encoder` takes it from ``encoder_type``. The W loader accepts any ``encoder_type`` (HyperStyle
  overrides it with ``--w_encoder_type`` too) and lets strict loading judge the weights.
- n_styles / style_dim: the decoder's ``n_latent`` / ``style_dim``; ``opts["n_styles"]`` or, failing that,
  ``opts["output_size"]`` / ``opts["stylegan_size"]`` must agree.
- backbone: files written here carry the full encoder configuration under ``opts["stylegan_lightning_encoder"]``
  (ignored by the official code). Otherwise ``opts["input_nc"]`` where the official class reads it (pSp's
  encoders) and the weights for the rest: stage widths and unit counts from ``body.N.res_layer.1.weight``, SE gates
  from ``res_layer.5``, the input size from the number of convolutions of ``styles.0`` (256 for the official
  layout; 256 for W-encoders, which pool).
- ``start_from_latent_avg``: ``opts["start_from_latent_avg"]`` when present, else on (HyperStyle's W-encoder
  always adds it). ``latent_avg``: the file's, else the generator's.

The encoder weights load strictly (one :class:`~stylegan_lightning.serialization.CheckpointError` naming every
missing, unexpected or mis-shaped tensor); the decoder goes through
:func:`~stylegan_lightning.stylegan2.checkpoints.build_generator` (architecture from the shapes).
Files are read with ``torch.load(weights_only=True)`` only. A stored encoder configuration must hold positive
integer sizes (at most the number of stored tensors for the unit counts) and the encoder it describes is compared
with the stored tensor shapes on the meta device before it is built, so a forged configuration cannot ask for more
memory than the file holds.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from ..serialization import (CheckpointError, build_unfilled, check_before_building, config_size, config_size_list,
                             cpu_state, load_state_strict, safe_torch_load)
from ..stylegan2.checkpoints import build_generator, strip_prefix
from ..stylegan2.frozen import FrozenGenerator
from ..stylegan2.generator import Generator
from .backbone import BackboneConfig, infer_backbone_config
from .factory import ENCODER_CLASSES, ENCODER_TYPES, normalize_kind
from .inverter import Inverter, LatentEncoder

PURPOSE = "encoder checkpoint"
CONFIG_KEY = "stylegan_lightning_encoder"  # our full encoder configuration inside opts
DEFAULT_INPUT_SIZE = 256
# official classes that build their input layer from opts.input_nc (e4e's and HyperStyle's hard-code 3 channels)
_READS_INPUT_NC = ("GradualStyleEncoder", "BackboneEncoderUsingLastLayerIntoW")
_STYLE_CONV = re.compile(r"styles\.0\.convs\.(\d+)\.weight")


# ------------------------------------------------------------------------------------------------- reading
def read_official_checkpoint(path: str | Path, purpose: str, prefix: str) -> dict[str, Any]:
    """``{"network": state, "decoder": state | None, "opts": dict, "latent_avg": tensor | None}`` from a file in
    the pSp / e4e / HyperStyle layout (``{prefix}*`` and ``decoder.*`` under ``state_dict`` or at the top level,
    ``opts``, ``latent_avg``); ``prefix`` names the method's network (``"encoder."``, ``"hypernet."``)."""
    ckpt = safe_torch_load(path, purpose)
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{purpose} '{path}' holds a {type(ckpt).__name__}, not a checkpoint dict")
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{purpose} '{path}': 'state_dict' is a {type(state).__name__}, not a dict")
    network = strip_prefix(state, prefix)
    if not network:
        raise CheckpointError(f"{purpose} '{path}' has no '{prefix}*' weights (keys start with: "
                              f"{sorted({str(k).split('.')[0] for k in state})[:8]})")
    opts = ckpt.get("opts") or {}
    if isinstance(opts, argparse.Namespace):
        opts = vars(opts)
    if not isinstance(opts, Mapping):
        raise CheckpointError(f"{purpose} '{path}': 'opts' is a {type(opts).__name__}, not a dict")
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise CheckpointError(f"{purpose} '{path}': 'latent_avg' is a {type(latent_avg).__name__}, not a tensor")
    return {"network": network, "decoder": strip_prefix(state, "decoder.") or None, "opts": dict(opts),
            "latent_avg": latent_avg}


def read_encoder_checkpoint(path: str | Path) -> dict[str, Any]:
    """``{"encoder": state, "decoder": state | None, "opts": dict, "latent_avg": tensor | None}`` from an
    official-layout file (``encoder.*`` / ``decoder.*`` under ``state_dict``, or at the top level)."""
    data = read_official_checkpoint(path, PURPOSE, "encoder.")
    data["encoder"] = data.pop("network")
    return data


def _resolve_kind(requested: str | None, opts: Mapping[str, Any], encoder_state: Mapping[str, Any],
                  path: str | Path) -> str:
    declared = opts.get("encoder_type")
    own = opts.get(CONFIG_KEY)
    if isinstance(own, Mapping) and own.get("kind") in ENCODER_CLASSES:
        declared_kind = own["kind"]
    elif declared is None:
        declared_kind = None
    elif declared in ENCODER_TYPES:
        declared_kind = ENCODER_TYPES[declared]
    elif requested == "w":
        declared_kind = None  # HyperStyle ignores the file's encoder_type for its W-encoder
    else:
        raise CheckpointError(f"{PURPOSE} '{path}': encoder_type {declared!r} is not supported (supported: "
                              f"{sorted(ENCODER_TYPES)})")
    if requested is None:
        if declared_kind is not None:
            return declared_kind
        if "linear.weight" in encoder_state and not any(k.startswith("styles.") for k in encoder_state):
            return "w"
        raise CheckpointError(f"{PURPOSE} '{path}': opts has no encoder_type, so pSp and e4e cannot be told apart; "
                              "use load_psp or load_e4e")
    lenient = requested == "w" and not isinstance(own, Mapping)  # HyperStyle's W loader ignores encoder_type
    if declared_kind is not None and declared_kind != requested and not lenient:
        loader = {"psp": "load_psp", "e4e": "load_e4e", "w": "load_w_encoder"}[declared_kind]
        raise CheckpointError(f"{PURPOSE} '{path}' holds a {declared or declared_kind} encoder ({declared_kind}), "
                              f"not {requested}; use {loader}")
    return requested


def _styles_from_opts(opts: Mapping[str, Any]) -> int | None:
    if opts.get("n_styles") is not None:
        return int(opts["n_styles"])
    for key in ("output_size", "stylegan_size"):
        if opts.get(key):
            return 2 * int(math.log2(int(opts[key]))) - 2
    return None


def _input_size(kind: str, config: BackboneConfig, encoder_state: Mapping[str, Any]) -> int:
    if kind == "w":
        return DEFAULT_INPUT_SIZE
    convs = [int(m.group(1)) for k in encoder_state if (m := _STYLE_CONV.fullmatch(k))]
    if not convs:
        return DEFAULT_INPUT_SIZE
    n_convs = len(convs)  # Sequential(conv, LeakyReLU, conv, ...): conv weights at even indices
    return 2 ** max(1, n_convs) * config.reduction


def _encoder_arguments(kind: str, opts: Mapping[str, Any], encoder_state: Mapping[str, Any],
                       n_styles: int, style_dim: int, input_size: int | None) -> dict[str, Any]:
    own = opts.get(CONFIG_KEY)
    if isinstance(own, Mapping):
        where, limit = f"{PURPOSE} opts[{CONFIG_KEY!r}]", len(encoder_state)
        config = BackboneConfig(tuple(config_size_list(own, "blocks", where, limit)),
                                tuple(config_size_list(own, "channels", where, 2**20)), own["mode"],
                                config_size(own, "input_nc", where))
        size = config_size({"input_size": DEFAULT_INPUT_SIZE, **own}, "input_size", where)
    else:
        config = infer_backbone_config(encoder_state)
        if opts.get("encoder_type") in _READS_INPUT_NC and opts.get("input_nc") is not None:
            config = BackboneConfig(config.blocks, config.channels, config.mode, int(opts["input_nc"]))
        size = _input_size(kind, config, encoder_state)
    return dict(n_styles=n_styles, style_dim=style_dim, input_size=int(input_size or size),
                blocks=config.blocks, channels=config.channels, mode=config.mode, input_nc=config.input_nc)


def official_decoder(data: Mapping[str, Any], generator: Any, path: str | Path, purpose: str) -> FrozenGenerator:
    """The frozen generator of an official-layout file read by :func:`read_official_checkpoint`: ``generator``
    (a :class:`FrozenGenerator`, :class:`Generator` or file) when given, else its ``decoder.*`` with its
    ``latent_avg``."""
    if generator is not None:
        if isinstance(generator, FrozenGenerator):
            return generator
        if isinstance(generator, Generator):
            return FrozenGenerator(generator)
        return FrozenGenerator.from_file(generator)
    if data["decoder"] is None:
        raise CheckpointError(f"{purpose} '{path}' has no 'decoder.*' generator; pass generator=...")
    latent_avg = data["latent_avg"]
    if latent_avg is not None:
        rows = latent_avg.detach().float().reshape(-1, latent_avg.shape[-1])
        latent_avg = rows[0] if bool((rows == rows[0]).all()) else rows.mean(0)
    return FrozenGenerator(build_generator(data["decoder"], latent_avg))


def load_encoder(path: str | Path, kind: str | None = None, generator: FrozenGenerator | Generator | str | Path |
                 None = None, input_size: int | None = None) -> Inverter:
    """Load an official-layout encoder checkpoint into an :class:`~.inverter.Inverter` (eval mode): encoder
    (strict), frozen generator (``decoder.*``, or ``generator`` when given), ``latent_avg`` and ``opts``.
    ``kind`` (``"psp"``, ``"e4e"``, ``"w"``) defaults to the file's ``encoder_type``; ``input_size`` overrides
    the encoder input size read from the weights. See the module docstring for how the architecture is chosen."""
    data = read_encoder_checkpoint(path)
    opts = data["opts"]
    kind = _resolve_kind(normalize_kind(kind) if kind is not None else None, opts, data["encoder"], path)
    decoder = official_decoder(data, generator, path, PURPOSE)
    n_styles, style_dim = decoder.n_latent, decoder.style_dim
    expected = _styles_from_opts(opts)
    if expected is not None and expected != n_styles:
        raise CheckpointError(f"{PURPOSE} '{path}': opts describe {expected} styles but the generator "
                              f"({decoder.size} px) takes {n_styles}")
    try:
        arguments = _encoder_arguments(kind, opts, data["encoder"], n_styles, style_dim, input_size)
    except CheckpointError as error:
        raise CheckpointError(f"'{path}': {error}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{PURPOSE} '{path}': cannot build the {kind} encoder ({error})") from error
    purpose = f"{PURPOSE} '{path}' ({ENCODER_CLASSES[kind].__name__}, {arguments})"
    check_before_building(lambda: ENCODER_CLASSES[kind](**arguments), data["encoder"], purpose)
    try:
        encoder = build_unfilled(ENCODER_CLASSES[kind], **arguments)
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{PURPOSE} '{path}': cannot build the {kind} encoder ({error})") from error
    load_state_strict(encoder, data["encoder"], purpose)
    start = opts.get("start_from_latent_avg")
    hyperstyle_w = (kind == "w" and CONFIG_KEY not in opts
                    and opts.get("encoder_type") != "BackboneEncoderUsingLastLayerIntoW")
    start = True if start is None or hyperstyle_w else bool(start)  # HyperStyle always adds latent_avg
    latent_avg = data["latent_avg"] if data["latent_avg"] is not None else decoder.latent_avg
    try:
        latent_encoder = LatentEncoder(encoder, n_styles, latent_avg, start, arguments["input_size"])
    except ValueError as error:
        raise CheckpointError(f"{PURPOSE} '{path}': {error}") from error
    return Inverter(latent_encoder, decoder, opts=opts).eval()


def load_psp(path: str | Path, generator: FrozenGenerator | Generator | str | Path | None = None,
             input_size: int | None = None) -> Inverter:
    """An official pSp checkpoint (``GradualStyleEncoder``) as an :class:`~.inverter.Inverter`."""
    return load_encoder(path, "psp", generator, input_size)


def load_e4e(path: str | Path, generator: FrozenGenerator | Generator | str | Path | None = None,
             input_size: int | None = None) -> Inverter:
    """An official e4e checkpoint (``Encoder4Editing``, all offsets on) as an :class:`~.inverter.Inverter`."""
    return load_encoder(path, "e4e", generator, input_size)


def load_w_encoder(path: str | Path, generator: FrozenGenerator | Generator | str | Path | None = None,
                   input_size: int | None = None) -> Inverter:
    """HyperStyle's W-encoder (``faces_w_encoder.pt``; also pSp's ``BackboneEncoderUsingLastLayerIntoW``) as an
    :class:`~.inverter.Inverter`."""
    return load_encoder(path, "w", generator, input_size)


# ------------------------------------------------------------------------------------------------- writing
def _encoder_opts(bundle: Inverter, opts: Mapping[str, Any]) -> dict[str, Any]:
    encoder = bundle.encoder.encoder
    kind = encoder.kind
    size = bundle.decoder.size
    encoder_type = opts.get("encoder_type") or bundle.opts.get("encoder_type")
    if encoder_type not in ENCODER_TYPES or ENCODER_TYPES[encoder_type] != kind:
        encoder_type = encoder.official_name
    config = encoder.config
    required = {
        "encoder_type": encoder_type,
        "input_nc": config.input_nc,
        "output_size": size,
        "stylegan_size": size,
        "n_styles": bundle.encoder.n_styles,
        "start_from_latent_avg": bundle.encoder.start_from_latent_avg,
        "learn_in_w": encoder_type == "BackboneEncoderUsingLastLayerIntoW",
        CONFIG_KEY: {"kind": kind, **config.as_dict(), "input_size": bundle.encoder.input_size,
                     "n_styles": bundle.encoder.n_styles, "style_dim": bundle.encoder.style_dim},
    }
    for key, value in required.items():
        if key in opts and key != CONFIG_KEY and opts[key] != value:
            raise ValueError(f"opts[{key!r}] = {opts[key]!r} contradicts the bundle ({value!r})")
    merged = {**bundle.opts, **dict(opts)}
    merged.update(required)
    return merged


def save_encoder_checkpoint(path: str | Path, bundle: Inverter,
                            opts: Mapping[str, Any] | argparse.Namespace | None = None) -> Path:
    """Write ``bundle`` in the official layout (``state_dict`` with ``encoder.*`` / ``decoder.*``, ``opts``,
    ``latent_avg``), loadable by :func:`load_encoder` and by the official pSp / e4e / HyperStyle code.

    ``opts`` (e.g. the training options) are stored after the bundle's own; the architecture entries
    (``encoder_type``, ``input_nc``, ``output_size`` / ``stylegan_size``, ``n_styles``, ``start_from_latent_avg``,
    ``learn_in_w``) are set from the bundle, and a contradicting value raises ``ValueError``.
    """
    if not isinstance(bundle, Inverter):
        raise TypeError(f"bundle must be an Inverter, got {type(bundle).__name__}")
    opts = vars(opts) if isinstance(opts, argparse.Namespace) else dict(opts or {})
    merged = _encoder_opts(bundle, opts)
    state = cpu_state(bundle.encoder.encoder, "encoder.")
    state.update(cpu_state(bundle.decoder.generator, "decoder."))
    latent_avg = bundle.latent_avg.detach().cpu().clone()
    if merged["learn_in_w"]:  # pSp adds a [1, 512] latent_avg to its single w
        if not bool((latent_avg == latent_avg[0]).all()):
            raise ValueError("a BackboneEncoderUsingLastLayerIntoW checkpoint needs one latent_avg for all styles")
        latent_avg = latent_avg[:1].clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "opts": merged, "latent_avg": latent_avg}, path)
    return path


__all__ = ["CONFIG_KEY", "load_e4e", "load_encoder", "load_psp", "load_w_encoder", "read_encoder_checkpoint",
           "save_encoder_checkpoint"]
