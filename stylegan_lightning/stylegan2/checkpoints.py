"""Generator / discriminator checkpoints: import from every public format, export to rosinality ``.pt``.

Supported inputs (detected from the content, not the file name):

- rosinality ``.pt``: ``{"g_ema" | "g", ["d"], ["latent_avg"], ...}`` (also training checkpoints with ``args``);
- NVlabs stylegan2-ada-pytorch / stylegan3 ``.pkl`` (StyleGAN2 generators), read without executing code;
- pSp / e4e / HyperStyle ``.pt``: ``{"state_dict": {"decoder.*": ...}, "latent_avg", "opts"}``;
- this project's Lightning checkpoints and exports (``{"state_dict": {...generator...}}``).

The generator architecture is read from the tensor shapes (size, style_dim, n_mlp, channel layout: a rosinality
``channel_multiplier`` / ``channel_max`` layout when one matches, else an explicit ``channels`` table, as NVlabs
networks trained with stylegan3's ``--cbase/--cmax`` and the CPU face prior have); exports also record it under
``"generator_config"``. Only ``lr_mlp`` cannot be seen in the weights: it defaults to the
official 0.01 and can be overridden.

Hostile files are refused with a :class:`CheckpointError` naming the file before anything large is built: a
stored ``generator_config`` must hold positive integers (``n_mlp`` at most the number of stored tensors) and a
positive finite ``lr_mlp``, the network it describes is first built on the meta device and compared with the
stored tensor shapes (so it can never ask for more memory than the file holds), and every generator tensor and
``latent_avg`` must be finite (the first NaN / Inf tensor is named).
"""

from __future__ import annotations

import math
import numbers
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from ..serialization import (CheckpointError, check_before_building, check_finite, config_size, cpu_state,
                             load_state_strict, require_file, safe_torch_load)
from .discriminator import Discriminator
from .generator import Generator, channel_layout
from .nvlabs import discriminator_to_rosinality, generator_to_rosinality, read_nvlabs_pickle

PURPOSE = "StyleGAN2 generator checkpoint"
_GENERATOR_MARKERS = ("conv1.conv.weight", "to_rgb1.conv.weight", "input.input")
_DISCRIMINATOR_MARKERS = ("final_conv.0.weight", "final_linear.1.weight", "convs.0.0.weight")
_SIZE_KEYS = ("size", "style_dim", "n_mlp", "channel_multiplier", "channel_max")  # positive integers when given


# ---------------------------------------------------------------------------------------------- reading files
# torch.save's pre-zip format starts with this pickled magic number (a protocol-2 LONG1)
_LEGACY_TORCH_HEADER = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."


def _is_plain_pickle(path: Path) -> bool:
    """A plain pickle (NVlabs networks), as opposed to a torch.save file (zip or legacy format).
    Decided from the leading bytes only: nothing is unpickled here."""
    if zipfile.is_zipfile(path):
        return False
    with open(path, "rb") as handle:
        head = handle.read(len(_LEGACY_TORCH_HEADER))
    return len(head) >= 2 and head[0] == 0x80 and head != _LEGACY_TORCH_HEADER


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a generator-bearing file into a normalised dict:
    ``{"generator": state_dict | None, "discriminator": state_dict | None, "latent_avg": tensor | None,
    "config": dict, "format": str}`` (``format``: ``"NVlabs pickle"``, ``"rosinality (g_ema)"`` or ``"state dict
    (generator under 'PREFIX')"``); a generator tensor or ``latent_avg`` holding NaN / Inf raises
    :class:`CheckpointError`."""
    path = require_file(path, PURPOSE)
    data = _read_checkpoint(path)
    check_finite({**data["generator"], "latent_avg": data["latent_avg"]}, f"{PURPOSE} '{path}'")
    return data


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """:func:`read_checkpoint` without the finiteness check."""
    if _is_plain_pickle(path):
        networks = read_nvlabs_pickle(path)
        generator_module = networks.get("G_ema") or networks.get("G")
        if generator_module is None:
            raise CheckpointError(f"NVlabs pickle '{path}' has neither G_ema nor G")
        generator, info = generator_to_rosinality(generator_module)
        discriminator = discriminator_to_rosinality(networks["D"]) if networks.get("D") is not None else None
        return {"generator": generator, "discriminator": discriminator, "latent_avg": info["latent_avg"],
                "config": {"lr_mlp": info["lr_mlp"]}, "format": "NVlabs pickle"}

    ckpt = safe_torch_load(path, PURPOSE)
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"'{path}' holds a {type(ckpt).__name__}, not a checkpoint dict")
    config = ckpt.get("generator_config") or {}
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{PURPOSE} '{path}': 'generator_config' is a {type(config).__name__}, not a dict")
    config = dict(config)
    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise CheckpointError(f"{PURPOSE} '{path}': 'latent_avg' is a {type(latent_avg).__name__}, not a tensor")
    if "g_ema" in ckpt or "g" in ckpt:  # rosinality
        key = "g_ema" if ckpt.get("g_ema") is not None else "g"
        if not isinstance(ckpt[key], Mapping):
            raise CheckpointError(f"{PURPOSE} '{path}': {key!r} is a {type(ckpt[key]).__name__}, not a state dict")
        return {"generator": dict(ckpt[key]), "discriminator": ckpt.get("d"), "latent_avg": latent_avg,
                "config": config, "format": f"rosinality ({key})"}
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"'{path}' has no state dict")
    generator_prefix = find_prefix(state, _GENERATOR_MARKERS)
    if generator_prefix is None:
        raise CheckpointError(f"no StyleGAN2 generator found in '{path}' (looked for g_ema / g / *conv1.conv.weight)")
    generator = strip_prefix(state, generator_prefix)
    if latent_avg is None:  # FrozenGenerator keeps it beside the wrapped generator
        parent = generator_prefix[: generator_prefix[:-1].rfind(".") + 1] if generator_prefix else None
        latent_avg = state.get(parent + "latent_avg") if parent is not None else None
    discriminator_prefix = find_prefix(state, _DISCRIMINATOR_MARKERS)
    discriminator = strip_prefix(state, discriminator_prefix) if discriminator_prefix is not None else None
    return {"generator": generator, "discriminator": discriminator, "latent_avg": latent_avg, "config": config,
            "format": f"state dict (generator under '{generator_prefix}')"}


def find_prefix(state: Mapping[str, Any], markers: tuple[str, ...]) -> str | None:
    """The key prefix under which all ``markers`` exist (e.g. ``"decoder."``); EMA copies win over others."""
    candidates = []
    for key in state:
        if key.endswith(markers[0]):
            prefix = key[: len(key) - len(markers[0])]
            if all(prefix + marker in state for marker in markers[1:]):
                candidates.append(prefix)
    if not candidates:
        return None
    candidates.sort(key=lambda p: ("ema" not in p, len(p)))
    return candidates[0]


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


# ---------------------------------------------------------------------------------------------- architecture
def infer_generator_config(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Generator constructor arguments recovered from a rosinality-layout state dict."""
    try:
        # count layers by index (weight or bias), so one missing tensor is reported as missing, not as a shorter
        # mapping network with an 'unexpected' leftover
        n_mlp = len({m.group(1) for k in state if (m := re.fullmatch(r"style\.(\d+)\.(?:weight|bias)", k))})
        style_dim = state["conv1.conv.modulation.weight"].shape[1]
        n_blocks = len({k.split(".")[1] for k in state if k.startswith("to_rgbs.")})
        size = 4 * 2**n_blocks
        observed = {4: state["conv1.conv.weight"].shape[1]}
        for j in range(n_blocks):
            observed[2 ** (j + 3)] = state[f"convs.{2 * j}.conv.weight"].shape[1]
    except KeyError as error:
        raise CheckpointError(f"not a StyleGAN2 generator state dict: missing {error}") from error
    blur_kernel = [1, 3, 3, 1]
    if "to_rgbs.0.upsample.kernel" in state:
        sums = state["to_rgbs.0.upsample.kernel"].float().sum(1)
        blur_kernel = [round(float(v), 6) for v in (sums / sums[0])]
    if size > 2048:  # rosinality's channel table ends there
        raise CheckpointError(f"not a StyleGAN2 generator state dict: {n_blocks} to_rgbs blocks ({size} px)")
    cap_choices = [None] + sorted(set(observed.values()))
    for multiplier in (2, 1, 4, 8):
        for cap in cap_choices:
            if channel_layout(size, multiplier, cap) == observed:
                return dict(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=multiplier,
                            channel_max=cap, blur_kernel=blur_kernel)
    return dict(size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=2, channel_max=None,
                channels=observed, blur_kernel=blur_kernel)


def infer_discriminator_channels(state: Mapping[str, torch.Tensor], size: int) -> dict[int, int]:
    """The ``{resolution: channels}`` table of a rosinality-layout discriminator state dict of ``size`` px (FromRGB
    width at ``size``, then each residual block's output width)."""
    try:
        observed = {size: state["convs.0.0.weight"].shape[0]}
        for n in range(1, int(math.log2(size)) - 1):
            observed[size >> n] = state[f"convs.{n}.conv2.1.weight"].shape[0]
    except KeyError as error:
        raise CheckpointError(f"not a StyleGAN2 discriminator state dict for {size} px: missing {error}") from error
    return dict(sorted(observed.items()))


def check_generator_config(config: Mapping[str, Any], purpose: str, n_tensors: int) -> dict[str, Any]:
    """``config`` (generator constructor arguments from a file) with its sizes checked: positive integers, ``n_mlp``
    at most ``n_tensors`` (each mapping layer stores tensors), ``lr_mlp`` a positive finite number; a
    :class:`CheckpointError` naming ``purpose`` and the key otherwise."""
    checked = dict(config)
    for key in _SIZE_KEYS:
        if key in checked:  # None values were dropped by the caller
            checked[key] = config_size(config, key, purpose, n_tensors if key == "n_mlp" else None)
    if checked.get("channels") is not None:
        checked["channels"] = _checked_channel_table(checked["channels"], purpose, n_tensors)
    lr_mlp = checked.get("lr_mlp")
    if lr_mlp is not None and (isinstance(lr_mlp, bool) or not isinstance(lr_mlp, numbers.Real)
                               or not math.isfinite(lr_mlp) or lr_mlp <= 0):
        raise CheckpointError(f"{purpose}: configuration 'lr_mlp' must be a positive number, got {lr_mlp!r:.40}")
    return checked


def _checked_channel_table(channels: Any, purpose: str, n_tensors: int) -> dict[int, int]:
    """A stored ``channels`` table: at most one entry per stored tensor, each a positive integer (the shapes are
    compared with the file's tensors before anything is built)."""
    if not isinstance(channels, Mapping) or not 1 <= len(channels) <= n_tensors:
        raise CheckpointError(f"{purpose}: configuration 'channels' must be a table resolution -> channels")
    return {key: config_size(channels, key, f"{purpose}: 'channels'") for key in channels}


def build_generator(state: Mapping[str, torch.Tensor], latent_avg: torch.Tensor | None = None,
                    purpose: str = "generator weights", **config: Any) -> Generator:
    """A :class:`Generator` loaded strictly from a rosinality-layout ``state`` (architecture inferred,
    ``config`` overrides, checked by :func:`check_generator_config`), carrying ``latent_avg`` when given. The
    network is compared with ``state`` on the meta device before it is built (``purpose`` names the file in
    errors)."""
    overrides = check_generator_config({k: v for k, v in config.items() if v is not None}, purpose, len(state))
    arguments = {**infer_generator_config(state), **overrides}
    purpose = f"{purpose} ({arguments})"
    check_before_building(lambda: Generator(**arguments), state, purpose)
    generator = load_state_strict(Generator(**arguments), state, purpose)
    if latent_avg is not None:
        generator.latent_avg = latent_avg.detach().float().reshape(-1, generator.style_dim).mean(0)
    return generator


def load_generator(path: str | Path, **config: Any) -> Generator:
    """Load a StyleGAN2 generator from any supported file (see the module docstring).

    ``config`` overrides constructor arguments that the weights do not reveal (chiefly ``lr_mlp``). The returned
    generator carries ``latent_avg`` (from the file, else ``None``).
    """
    data = read_checkpoint(path)
    return build_generator(data["generator"], data["latent_avg"], f"{PURPOSE} '{path}'",
                           **{**data["config"], **config})


def build_discriminator(state: Mapping[str, torch.Tensor], generator_state: Mapping[str, torch.Tensor],
                        **config: Any) -> Discriminator:
    """A :class:`Discriminator` loaded strictly from ``state``, as large as the generator of ``generator_state``,
    with the channel layout read from ``state``'s own shapes (``config`` overrides)."""
    generator_config = infer_generator_config(generator_state)
    size = generator_config["size"]
    observed = infer_discriminator_channels(state, size)
    arguments: dict[str, Any] = dict(size=size, blur_kernel=generator_config["blur_kernel"])
    rosinality = {key: generator_config[key] for key in ("channel_multiplier", "channel_max")}
    if channel_layout(size, **rosinality) == observed:
        arguments.update(rosinality)
    else:
        arguments["channels"] = observed
    arguments.update({k: v for k, v in config.items() if v is not None})
    return load_state_strict(Discriminator(**arguments), state, f"discriminator weights ({arguments})")


def load_discriminator(path: str | Path, **config: Any) -> Discriminator:
    """Load the discriminator stored beside a generator (rosinality ``"d"``, NVlabs ``D``, Lightning modules)."""
    data = read_checkpoint(path)
    if data["discriminator"] is None:
        raise CheckpointError(f"'{path}' holds no discriminator (official exports often keep only g_ema)")
    return build_discriminator(data["discriminator"], data["generator"], **config)


def save_generator(
    path: str | Path,
    generator: Generator,
    latent_avg: torch.Tensor | None = None,
    discriminator: Discriminator | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``{"g_ema", "latent_avg", ["d"], "generator_config"}`` -- the rosinality ``.pt`` layout that pSp,
    e4e, HyperStyle and this toolkit load unchanged. ``dtype=torch.float16`` stores the networks' weights in half
    precision (half the file, for shipping a model; every loader casts them back to float32); ``latent_avg`` stays
    float32."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    latent_avg = latent_avg if latent_avg is not None else generator.latent_avg
    payload: dict[str, Any] = {"g_ema": cpu_state(generator, dtype=dtype),
                               "generator_config": dict(generator.config)}
    if latent_avg is not None:
        payload["latent_avg"] = latent_avg.detach().cpu().reshape(-1)[: generator.style_dim].clone()
    if discriminator is not None:
        payload["d"] = cpu_state(discriminator, dtype=dtype)
    torch.save(payload, path)
    return path


def convert_checkpoint(source: str | Path, destination: str | Path, with_discriminator: bool = True,
                       dtype: torch.dtype | None = None, **config: Any) -> dict[str, Any]:
    """Convert any supported generator file into a rosinality ``.pt`` (weights stored as ``dtype``, see
    :func:`save_generator`); returns a short report."""
    data = read_checkpoint(source)
    generator = build_generator(data["generator"], data["latent_avg"], f"{PURPOSE} '{source}'",
                                **{**data["config"], **config})
    discriminator = None
    if with_discriminator and data["discriminator"] is not None:
        discriminator = build_discriminator(data["discriminator"], data["generator"])
    save_generator(destination, generator, discriminator=discriminator, dtype=dtype)
    return {"source": str(source), "destination": str(destination), "config": generator.config,
            "weights stored as": str(dtype or torch.float32).removeprefix("torch."),
            "latent_avg": generator.latent_avg is not None, "discriminator": discriminator is not None,
            "parameters": sum(p.numel() for p in generator.parameters())}
