"""NVlabs stylegan2-ada-pytorch / stylegan3 ``.pkl`` files, read without executing the code they embed.

Those pickles store each network as a "persistent object": the class's *source code* plus its ``__dict__``.
Here every such object becomes an inert :class:`PersistentModuleState` (the source is never compiled), tensors
are rebuilt through the restricted unpickler of :mod:`stylegan_lightning.serialization`, and the parameters
are renamed to rosinality's layout (``mapping.fc{i}`` -> ``style.{i+1}``, ``synthesis.b{R}.conv{0,1}`` ->
``convs.*``, ``torgb`` -> ``to_rgbs.*``, ``noise_const`` -> ``noises.noise_*``, ...).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..serialization import CheckpointError, restricted_pickle_load


class PersistentModuleState:
    """What an NVlabs persistent module pickles: class name, constructor arguments and ``__dict__``."""

    def __init__(self, meta: dict):
        if not isinstance(meta, dict) or meta.get("type") != "class":
            raise CheckpointError("unexpected persistent-object record in NVlabs pickle")
        self.class_name = meta.get("class_name", "?")
        self.state = meta.get("state") or {}

    @property
    def init_kwargs(self) -> dict:
        return dict(self.state.get("_init_kwargs") or {})

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Flattened ``{name: tensor}`` of parameters and buffers, like ``nn.Module.state_dict``."""
        out: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if isinstance(value, torch.Tensor):
                    out[prefix + name] = value.detach()
        for name, child in (self.state.get("_modules") or {}).items():
            if isinstance(child, PersistentModuleState):
                out.update(child.tensors(f"{prefix}{name}."))
        return out


class _EasyDict(dict):
    """Inert stand-in for ``dnnlib.EasyDict`` (a dict with attribute access)."""


class _TensorFlowNetwork:
    # TF pickles (protocol 3) rebuild ``Network`` with NEWOBJ, i.e. ``cls.__new__(cls)`` without ``__init__``, then
    # BUILD; raising in ``__new__`` covers that and direct calls alike.
    def __new__(cls, *args, **kwargs):
        raise CheckpointError(
            "this is a TensorFlow StyleGAN2 pickle; convert it to PyTorch first (e.g. with stylegan2-ada-pytorch's "
            "legacy converter, or to a rosinality .pt with rosinality's convert_weight.py)"
        )


_NVLABS_GLOBALS = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentModuleState,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("dnnlib.tflib.network", "_import_module_src"): _TensorFlowNetwork,
    ("dnnlib.tflib.network", "Network"): _TensorFlowNetwork,
}


def read_nvlabs_pickle(path: str | Path) -> dict[str, Any]:
    """The top-level dict of an NVlabs network pickle (``G``, ``D``, ``G_ema``, ...) with inert modules."""
    data = restricted_pickle_load(path, _NVLABS_GLOBALS, "NVlabs network pickle")
    if not isinstance(data, dict) or not any(isinstance(v, PersistentModuleState) for v in data.values()):
        raise CheckpointError(f"'{path}' is a pickle but not an NVlabs network pickle (no G / G_ema / D networks)")
    return data


def _resolution_blocks(tensors: dict[str, torch.Tensor], prefix: str) -> list[int]:
    blocks = {int(key[len(prefix):].split(".")[0]) for key in tensors if key.startswith(prefix)}
    return sorted(blocks)


def generator_to_rosinality(module: PersistentModuleState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Rename an NVlabs ``Generator``'s tensors to rosinality's layout.

    Returns ``(state_dict, info)`` where ``info`` holds ``latent_avg`` and ``lr_mlp``. Conditional generators,
    non-RGB output, ``z_dim != w_dim`` and non-'skip' architectures have no rosinality equivalent and raise.
    """
    kwargs = module.init_kwargs
    src = module.tensors()
    if kwargs.get("c_dim", 0):
        raise CheckpointError("conditional NVlabs generators (c_dim > 0) have no rosinality equivalent")
    if kwargs.get("img_channels", 3) != 3:
        raise CheckpointError("only RGB generators are supported")
    synthesis_kwargs = kwargs.get("synthesis_kwargs") or {}
    if synthesis_kwargs.get("architecture", "skip") != "skip":
        raise CheckpointError(f"only the 'skip' generator architecture is supported, not "
                              f"{synthesis_kwargs['architecture']!r}")
    if "synthesis.b4.const" not in src:
        raise CheckpointError("NVlabs pickle generator has no synthesis.b4.const: is this a StyleGAN3 generator? "
                              "Only StyleGAN2 generators map onto the rosinality layout")
    fc_layers = sorted(int(k.split(".")[1][2:]) for k in src if k.startswith("mapping.fc") and k.endswith(".weight"))
    if src["mapping.fc0.weight"].shape[0] != src["mapping.fc0.weight"].shape[1]:
        raise CheckpointError("z_dim != w_dim is not supported by the rosinality generator layout")

    out: dict[str, torch.Tensor] = {}
    for i in fc_layers:
        out[f"style.{i + 1}.weight"] = src[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = src[f"mapping.fc{i}.bias"]
    out["input.input"] = src["synthesis.b4.const"].unsqueeze(0)

    def styled_conv(dst: str, layer: str, noise_index: int) -> None:
        out[f"{dst}.conv.weight"] = src[f"{layer}.weight"].unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = src[f"{layer}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = src[f"{layer}.affine.bias"]
        out[f"{dst}.noise.weight"] = src[f"{layer}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = src[f"{layer}.bias"]
        noise = src[f"{layer}.noise_const"]
        out[f"noises.noise_{noise_index}"] = noise.reshape(1, 1, *noise.shape[-2:])

    def to_rgb(dst: str, layer: str) -> None:
        out[f"{dst}.conv.weight"] = src[f"{layer}.weight"].unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = src[f"{layer}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = src[f"{layer}.affine.bias"]
        out[f"{dst}.bias"] = src[f"{layer}.bias"].reshape(1, -1, 1, 1)

    styled_conv("conv1", "synthesis.b4.conv1", 0)
    to_rgb("to_rgb1", "synthesis.b4.torgb")
    for res in _resolution_blocks(src, "synthesis.b"):
        if res == 4:
            continue
        i = int(math.log2(res)) - 2
        styled_conv(f"convs.{2 * i - 2}", f"synthesis.b{res}.conv0", 2 * i - 1)
        styled_conv(f"convs.{2 * i - 1}", f"synthesis.b{res}.conv1", 2 * i)
        to_rgb(f"to_rgbs.{i - 1}", f"synthesis.b{res}.torgb")
        # rosinality's blur buffers are the NVlabs resample filter scaled by up**2 = 4
        out[f"convs.{2 * i - 2}.conv.blur.kernel"] = src[f"synthesis.b{res}.conv0.resample_filter"] * 4
        out[f"to_rgbs.{i - 1}.upsample.kernel"] = src[f"synthesis.b{res}.resample_filter"] * 4
    mapping_kwargs = kwargs.get("mapping_kwargs") or {}
    info = {"latent_avg": src.get("mapping.w_avg"), "lr_mlp": float(mapping_kwargs.get("lr_multiplier", 0.01))}
    return out, info


def discriminator_to_rosinality(module: PersistentModuleState) -> dict[str, torch.Tensor]:
    """Rename an NVlabs 'resnet' ``Discriminator``'s tensors to rosinality's ``Discriminator`` layout."""
    kwargs = module.init_kwargs
    if kwargs.get("c_dim", 0):
        raise CheckpointError("conditional NVlabs discriminators (c_dim > 0) have no rosinality equivalent")
    if kwargs.get("architecture", "resnet") != "resnet":
        raise CheckpointError("only the 'resnet' discriminator architecture is supported")
    epilogue = kwargs.get("epilogue_kwargs") or {}
    if epilogue.get("mbstd_num_channels", 1) != 1:
        raise CheckpointError("only one minibatch-stddev channel is supported")
    src = module.tensors()
    resolutions = sorted((r for r in _resolution_blocks(src, "b") if r > 4), reverse=True)
    top = resolutions[0]
    out = {"convs.0.0.weight": src[f"b{top}.fromrgb.weight"], "convs.0.1.bias": src[f"b{top}.fromrgb.bias"]}
    for n, res in enumerate(resolutions, start=1):
        block = f"b{res}"
        out[f"convs.{n}.conv1.0.weight"] = src[f"{block}.conv0.weight"]
        out[f"convs.{n}.conv1.1.bias"] = src[f"{block}.conv0.bias"]
        out[f"convs.{n}.conv2.0.kernel"] = src[f"{block}.conv1.resample_filter"]
        out[f"convs.{n}.conv2.1.weight"] = src[f"{block}.conv1.weight"]
        out[f"convs.{n}.conv2.2.bias"] = src[f"{block}.conv1.bias"]
        out[f"convs.{n}.skip.0.kernel"] = src[f"{block}.skip.resample_filter"]
        out[f"convs.{n}.skip.1.weight"] = src[f"{block}.skip.weight"]
    out["final_conv.0.weight"] = src["b4.conv.weight"]
    out["final_conv.1.bias"] = src["b4.conv.bias"]
    out["final_linear.0.weight"] = src["b4.fc.weight"]
    out["final_linear.0.bias"] = src["b4.fc.bias"]
    out["final_linear.1.weight"] = src["b4.out.weight"]
    out["final_linear.1.bias"] = src["b4.out.bias"]
    return out
