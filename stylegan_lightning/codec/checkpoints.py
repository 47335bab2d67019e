"""Codec files: a trained :class:`~.model.ScalableFaceCodec` with everything needed to decode (generator
included), and loading from either that file or a ``CodecModule`` Lightning checkpoint.

Layout (``torch.save``; read back with ``weights_only=True``)::

    {"format": "stylegan-lightning-codec", "format_version": 1,
     "spec": {"codec": {layer_split, code_channels, ..., mean_grid}, "encoder": {kind, input_size, blocks, channels, mode,
              input_nc, start_from_latent_avg}},
     "state_dict": the codec's state (encoder.*, generator.*, entropy models with their CDF tables, ...)}

``mean_grid`` (the coding path's mean grid) is absent from files written before it existed: they load with the
default, 256, the grid every format-version-2 stream of them is coded with.

A Lightning checkpoint of ``CodecModule`` holds the same ``spec`` under ``"codec_spec"`` and the state under
``"codec."`` in its ``state_dict``.

Before anything is built, the ``spec`` sizes must be positive integers (``depth`` and the encoder's ``blocks`` at
most the number of stored tensors) and the codec it describes is compared with the stored tensor shapes on the meta
device, so a forged ``spec`` cannot ask for more memory than the file holds (:class:`CheckpointError` otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..encoders.inverter import build_latent_encoder, encoder_spec
from ..serialization import (CheckpointError, check_before_building, config_mapping, config_size, config_size_list,
                             cpu_state, load_state_strict, safe_torch_load)
from ..stylegan2.checkpoints import strip_prefix
from ..stylegan2.frozen import FrozenGenerator
from .model import ScalableFaceCodec

CODEC_FORMAT = "stylegan-lightning-codec"
CODEC_FORMAT_VERSION = 1
PURPOSE = "codec file (a trained scalable face codec: `stylegan-lightning fit --config configs/codec.yaml`)"


def codec_spec(codec: ScalableFaceCodec) -> dict[str, Any]:
    """Plain-data description from which :func:`build_codec` rebuilds ``codec``'s architecture."""
    return {"codec": dict(codec.config), "encoder": encoder_spec(codec.encoder)}


def build_codec(generator: FrozenGenerator, spec: Mapping[str, Any]) -> ScalableFaceCodec:
    """A codec (random weights) of architecture ``spec`` over ``generator``."""
    return ScalableFaceCodec(generator, build_latent_encoder(spec["encoder"], generator), **spec["codec"])


def check_codec_spec(spec: Any, purpose: str, n_tensors: int) -> None:
    """Raise :class:`CheckpointError` (naming ``purpose`` and the key) unless every size in ``spec`` is a positive
    integer; layer counts (``depth``, encoder ``blocks``) are at most ``n_tensors``, the tensors the file stores."""
    codec, encoder = config_mapping(spec, "codec", purpose), config_mapping(spec, "encoder", purpose)
    for key in ("hyper_channels", "dim", "heads", "code_channels"):
        if key in codec and codec[key] is not None:
            config_size(codec, key, purpose)
    if "depth" in codec:
        config_size(codec, "depth", purpose, n_tensors)
    for key in ("input_size", "input_nc"):
        if key in encoder:
            config_size(encoder, key, purpose)
    config_size_list(encoder, "blocks", purpose, n_tensors)
    config_size_list(encoder, "channels", purpose, 2**20)


def save_codec(path: str | Path, codec: ScalableFaceCodec) -> Path:
    """Write ``codec`` as a self-contained codec file. Its CDF tables are rebuilt first (``update(force=True)``)
    unless they exist and match the entropy models' present weights (:attr:`ScalableFaceCodec.tables_are_current`),
    so a file never pairs trained weights with stale tables, and re-saving a loaded file keeps its tables as
    they are."""
    if not codec.tables_are_current:
        codec.update(force=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CODEC_FORMAT, "format_version": CODEC_FORMAT_VERSION, "spec": codec_spec(codec),
                "state_dict": cpu_state(codec)}, path)
    return path


def load_codec(path: str | Path, map_location: str | torch.device = "cpu") -> ScalableFaceCodec:
    """Load a codec file or a ``CodecModule`` Lightning checkpoint; returns the codec in eval mode with its CDF
    tables built (a codec file's stored tables are kept as they are, so every receiver codes with the sender's
    tables; a Lightning checkpoint's are rebuilt from its quantiles). Anything that does not fit raises
    :class:`CheckpointError` naming the file."""
    data = safe_torch_load(path, PURPOSE)
    if not isinstance(data, dict):
        raise CheckpointError(f"{PURPOSE} '{path}': not a codec file")
    is_codec_file = data.get("format") == CODEC_FORMAT
    if is_codec_file:
        if data.get("format_version") != CODEC_FORMAT_VERSION:
            raise CheckpointError(f"{PURPOSE} '{path}': format version {data.get('format_version')} is not "
                                  f"supported (this toolkit reads {CODEC_FORMAT_VERSION})")
        spec, state = data["spec"], data["state_dict"]
    elif "codec_spec" in data and isinstance(data.get("state_dict"), dict):
        spec, state = data["codec_spec"], strip_prefix(data["state_dict"], "codec.")
    else:
        raise CheckpointError(f"{PURPOSE} '{path}': neither a codec file nor a CodecModule checkpoint "
                              f"(keys: {sorted(data)[:8]})")
    purpose = f"{PURPOSE} '{path}'"
    if not isinstance(state, dict):
        raise CheckpointError(f"{purpose}: 'state_dict' is a {type(state).__name__}, not a dict")
    check_codec_spec(spec, purpose, len(state))
    generator = FrozenGenerator.from_state(state, "generator.")

    def build() -> ScalableFaceCodec:
        codec = build_codec(generator, spec)
        codec.resize_entropy_buffers(state)
        return codec

    check_before_building(build, state, purpose)
    try:
        codec = build()
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{purpose}: cannot rebuild the codec ({error})") from error
    load_state_strict(codec, state, purpose)
    codec.invalidate_fingerprint()
    # a codec file's tables are the sender's, bit for bit: keep them; a training checkpoint may hold tables older
    # than its weights: rebuild them
    if not (is_codec_file and codec.is_updated):
        codec.update(force=True)
    return codec.to(map_location).eval()
