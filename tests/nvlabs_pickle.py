"""Test helper (not a test module): write NVlabs stylegan2-ada-pytorch network pickles from our rosinality-layout
networks, plus deliberately malicious pickles.

The pickles mimic what ``training/training_loop.py`` writes: a dict ``{'G', 'D', 'G_ema', 'augment_pipe',
'training_set_kwargs'}`` in which every network is a *persistent object*, i.e. pickled as a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with ``meta = dict(type='class', version=...,
module_src=<source text>, class_name='training.networks.X', state=<the module __dict__>)``. Every sub-module of an
NVlabs network is itself a persistent object, so ``state['_modules']`` holds more of them. Tensors are pickled by
plain ``pickle`` (``torch._utils._rebuild_parameter`` / ``_rebuild_tensor_v2`` + ``torch.storage._load_from_bytes``).

The rosinality -> NVlabs renaming below is written from the format description (anchors.md B1/B2) and is
deliberately independent of ``stylegan_lightning.stylegan2.nvlabs``: a loader that gets the mapping wrong cannot
pass a round trip through this writer.
"""

from __future__ import annotations

import builtins
import contextlib
import math
import os
import pickle
import shlex
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

PERSISTENCE_MODULE = "torch_utils.persistence"
RECONSTRUCT_NAME = "_reconstruct_persistent_obj"

# Stand-in for training/networks.py. If a loader ever compiled or ran it, it would create MARKER_ENV's file.
FAKE_MODULE_SRC = '''\
"""training/networks.py (stand-in written by the tests)."""
import os as _os
_marker = _os.environ.get("STYLEGAN_TEST_SRC_MARKER")
if _marker:
    open(_marker, "w").write("module_src was executed")

class Generator:  # the real file defines the networks here
    pass
'''
MARKER_ENV = "STYLEGAN_TEST_SRC_MARKER"
PERSISTENCE_VERSION = 4  # meta['version'] as written by torch_utils/persistence.py


# ---------------------------------------------------------------------------------------------- pickling plumbing
def _reconstruct_persistent_obj(meta):  # pragma: no cover - only its pickled *name* matters
    raise RuntimeError("the test stand-in is never called")


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (pickled under that name while :func:`_fake_modules` is active)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class PersistentObject:
    """Pickles as ``_reconstruct_persistent_obj(meta)``, like a ``@persistence.persistent_class`` instance."""

    def __init__(self, meta: dict):
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


@contextlib.contextmanager
def _fake_modules() -> Iterator[None]:
    """Register throwaway ``torch_utils.persistence`` and ``dnnlib.util`` modules so that pickle records the real
    NVlabs global names; they are removed again afterwards."""
    names = ["torch_utils", PERSISTENCE_MODULE, "dnnlib", "dnnlib.util"]
    clashes = [name for name in names if name in sys.modules]
    if clashes:
        raise RuntimeError(f"refusing to shadow real modules {clashes}")
    created = {name: types.ModuleType(name) for name in names}
    saved = (_reconstruct_persistent_obj.__module__, _reconstruct_persistent_obj.__qualname__,
             EasyDict.__module__, EasyDict.__qualname__)
    _reconstruct_persistent_obj.__module__ = PERSISTENCE_MODULE
    _reconstruct_persistent_obj.__qualname__ = RECONSTRUCT_NAME
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    setattr(created[PERSISTENCE_MODULE], RECONSTRUCT_NAME, _reconstruct_persistent_obj)
    created["dnnlib.util"].EasyDict = EasyDict
    created["dnnlib"].EasyDict = EasyDict
    created["dnnlib"].util = created["dnnlib.util"]
    created["torch_utils"].persistence = created[PERSISTENCE_MODULE]
    sys.modules.update(created)
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)
        (_reconstruct_persistent_obj.__module__, _reconstruct_persistent_obj.__qualname__,
         EasyDict.__module__, EasyDict.__qualname__) = saved


def dump_with_nvlabs_names(obj: Any, path: str | Path, protocol: int | None = None) -> Path:
    """``pickle.dump`` ``obj`` with the NVlabs global names available."""
    path = Path(path)
    with _fake_modules(), open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)
    return path


# ---------------------------------------------------------------------------------------------- module records
def _param(t: torch.Tensor) -> torch.nn.Parameter:
    # snapshots are deep copies with requires_grad_(False); clone so every tensor owns its storage
    return torch.nn.Parameter(t.detach().clone().contiguous(), requires_grad=False)


def _buffer(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().contiguous()


def persistent_module(class_name: str, params: Mapping[str, Any] = (), buffers: Mapping[str, torch.Tensor] = (),
                      modules: Mapping[str, Any] = (), attrs: Mapping[str, Any] = (),
                      init_kwargs: Mapping[str, Any] = ()) -> PersistentObject:
    """A persistent object whose state is an ``nn.Module.__dict__`` as a snapshot pickles it."""
    state: dict[str, Any] = {
        "training": False,
        "_parameters": OrderedDict((k, _param(v) if isinstance(v, torch.Tensor) else v)
                                   for k, v in dict(params).items()),
        "_buffers": OrderedDict((k, _buffer(v)) for k, v in dict(buffers).items()),
        "_non_persistent_buffers_set": set(),
        "_backward_pre_hooks": OrderedDict(),
        "_backward_hooks": OrderedDict(),
        "_is_full_backward_hook": None,
        "_forward_hooks": OrderedDict(),
        "_forward_hooks_with_kwargs": OrderedDict(),
        "_forward_hooks_always_called": OrderedDict(),
        "_forward_pre_hooks": OrderedDict(),
        "_forward_pre_hooks_with_kwargs": OrderedDict(),
        "_state_dict_hooks": OrderedDict(),
        "_state_dict_pre_hooks": OrderedDict(),
        "_load_state_dict_pre_hooks": OrderedDict(),
        "_load_state_dict_post_hooks": OrderedDict(),
        "_modules": OrderedDict(modules),
        **dict(attrs),
        "_init_args": (),
        "_init_kwargs": EasyDict(init_kwargs),
    }
    meta = dict(type="class", version=PERSISTENCE_VERSION, module_src=FAKE_MODULE_SRC,
                class_name=f"training.networks.{class_name}", state=state)
    return PersistentObject(meta)


def resample_filter(kernel_1d) -> torch.Tensor:
    """NVlabs ``upfirdn2d.setup_filter``: the 2-D outer product of a 1-D FIR filter, normalised to sum 1."""
    k = torch.as_tensor(list(kernel_1d), dtype=torch.float32)
    f = torch.outer(k, k)
    return f / f.sum()


def _fc(weight, bias, lr_multiplier: float = 1.0, activation: str = "linear", bias_init: float = 0.0):
    in_features = weight.shape[1]
    return persistent_module(
        "FullyConnectedLayer", params={"weight": weight, "bias": bias},
        attrs={"activation": activation, "weight_gain": np.float64(lr_multiplier / np.sqrt(in_features)),
               "bias_gain": lr_multiplier},
        init_kwargs={"in_features": in_features, "out_features": weight.shape[0], "activation": activation,
                     "lr_multiplier": lr_multiplier, "bias_init": bias_init},
    )


# ---------------------------------------------------------------------------------------------- generator
def nvlabs_generator_tensors(sd: Mapping[str, torch.Tensor], w_avg: torch.Tensor) -> dict[str, torch.Tensor]:
    """Flat NVlabs names -> tensors for a rosinality generator state dict (``resample_filter`` buffers excluded).

    rosinality -> NVlabs: ``style.{i+1}`` -> ``mapping.fc{i}``; ``input.input`` [1,C,4,4] -> ``synthesis.b4.const``
    [C,4,4]; ``conv1`` -> ``b4.conv1``, ``to_rgb1`` -> ``b4.torgb``; for block resolution ``R = 2**(k+2)``
    (k >= 1): ``convs.{2k-2}`` -> ``bR.conv0``, ``convs.{2k-1}`` -> ``bR.conv1``, ``to_rgbs.{k-1}`` -> ``bR.torgb``;
    noise map of conv number m (conv1 = 0, convs.j = j+1) ``noises.noise_m`` [1,1,R,R] -> ``noise_const`` [R,R].
    """
    out: dict[str, torch.Tensor] = {}
    n_mlp = len({k.split(".")[1] for k in sd if k.startswith("style.")})
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"] = sd[f"style.{i + 1}.weight"]
        out[f"mapping.fc{i}.bias"] = sd[f"style.{i + 1}.bias"]
    out["mapping.w_avg"] = w_avg.reshape(-1)
    out["synthesis.b4.const"] = sd["input.input"][0]

    def layer(nv: str, ros: str, noise_index: int) -> None:
        out[f"{nv}.weight"] = sd[f"{ros}.conv.weight"][0]                 # [O, I, 3, 3]
        out[f"{nv}.bias"] = sd[f"{ros}.activate.bias"]
        out[f"{nv}.affine.weight"] = sd[f"{ros}.conv.modulation.weight"]
        out[f"{nv}.affine.bias"] = sd[f"{ros}.conv.modulation.bias"]
        out[f"{nv}.noise_strength"] = sd[f"{ros}.noise.weight"].reshape(())  # 0-dim
        out[f"{nv}.noise_const"] = sd[f"noises.noise_{noise_index}"][0, 0]  # [R, R]

    def torgb(nv: str, ros: str) -> None:
        out[f"{nv}.weight"] = sd[f"{ros}.conv.weight"][0]                 # [3, I, 1, 1]
        out[f"{nv}.bias"] = sd[f"{ros}.bias"].reshape(-1)                 # [3]
        out[f"{nv}.affine.weight"] = sd[f"{ros}.conv.modulation.weight"]
        out[f"{nv}.affine.bias"] = sd[f"{ros}.conv.modulation.bias"]

    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    n_up_blocks = len({k.split(".")[1] for k in sd if k.startswith("to_rgbs.")})
    for k in range(1, n_up_blocks + 1):
        res = 2 ** (k + 2)
        layer(f"synthesis.b{res}.conv0", f"convs.{2 * k - 2}", 2 * k - 1)
        layer(f"synthesis.b{res}.conv1", f"convs.{2 * k - 1}", 2 * k)
        torgb(f"synthesis.b{res}.torgb", f"to_rgbs.{k - 1}")
    return out


def nvlabs_generator(generator: torch.nn.Module, w_avg: torch.Tensor | None = None, lr_multiplier: float = 0.01,
                     hidden_payload: Any = None) -> PersistentObject:
    """The persistent-object tree of ``training.networks.Generator`` for our ``generator``.

    ``hidden_payload`` (any picklable object) is tucked into the state of ``synthesis.b4.conv1`` as an extra
    attribute: a loader must reject it without running it.
    """
    cfg = generator.config
    sd = generator.state_dict()
    style_dim = cfg["style_dim"]
    if w_avg is None:
        w_avg = generator.latent_avg if generator.latent_avg is not None else torch.zeros(style_dim)
    t = nvlabs_generator_tensors(sd, w_avg)
    filt = resample_filter(cfg["blur_kernel"])
    size = cfg["size"]
    channels = {4: sd["input.input"].shape[1]}
    channels.update({2 ** (k + 2): t[f"synthesis.b{2 ** (k + 2)}.conv1.weight"].shape[0]
                     for k in range(1, int(math.log2(size)) - 1)})
    num_ws = 2 * int(math.log2(size)) - 2

    mapping_kwargs = EasyDict(num_layers=cfg["n_mlp"], lr_multiplier=lr_multiplier)
    synthesis_kwargs = EasyDict(channel_base=32768 if cfg["channel_multiplier"] == 2 else 16384,
                                channel_max=cfg["channel_max"] or 512, num_fp16_res=0, conv_clamp=None,
                                architecture="skip")
    mapping = persistent_module(
        "MappingNetwork",
        buffers={"w_avg": t["mapping.w_avg"]},
        modules={f"fc{i}": _fc(t[f"mapping.fc{i}.weight"], t[f"mapping.fc{i}.bias"], lr_multiplier, "lrelu")
                 for i in range(cfg["n_mlp"])},
        attrs={"z_dim": style_dim, "c_dim": 0, "w_dim": style_dim, "num_ws": num_ws, "num_layers": cfg["n_mlp"],
               "w_avg_beta": 0.995},
        init_kwargs=dict(z_dim=style_dim, c_dim=0, w_dim=style_dim, num_ws=num_ws, **mapping_kwargs),
    )

    def synthesis_layer(name: str, res: int, up: int, extra: Mapping[str, Any] = ()) -> PersistentObject:
        weight = t[f"{name}.weight"]
        return persistent_module(
            "SynthesisLayer",
            params={"weight": weight, "noise_strength": t[f"{name}.noise_strength"], "bias": t[f"{name}.bias"]},
            buffers={"resample_filter": filt, "noise_const": t[f"{name}.noise_const"]},
            modules={"affine": _fc(t[f"{name}.affine.weight"], t[f"{name}.affine.bias"], bias_init=1)},
            attrs={"resolution": res, "up": up, "use_noise": True, "activation": "lrelu", "conv_clamp": None,
                   "padding": 1, "act_gain": np.float64(np.sqrt(2)), **dict(extra)},
            init_kwargs={"in_channels": weight.shape[1], "out_channels": weight.shape[0], "w_dim": style_dim,
                         "resolution": res, "kernel_size": 3, "up": up},
        )

    def torgb_layer(name: str) -> PersistentObject:
        weight = t[f"{name}.weight"]
        return persistent_module(
            "ToRGBLayer",
            params={"weight": weight, "bias": t[f"{name}.bias"]},
            modules={"affine": _fc(t[f"{name}.affine.weight"], t[f"{name}.affine.bias"], bias_init=1)},
            attrs={"conv_clamp": None, "weight_gain": np.float64(1 / np.sqrt(weight.shape[1]))},
            init_kwargs={"in_channels": weight.shape[1], "out_channels": 3, "w_dim": style_dim, "kernel_size": 1},
        )

    blocks = OrderedDict()
    for res in sorted(channels):
        prefix = f"synthesis.b{res}"
        children = OrderedDict()
        params = {}
        if res == 4:
            params["const"] = t[f"{prefix}.const"]
        else:
            children["conv0"] = synthesis_layer(f"{prefix}.conv0", res, 2)
        extra = {"payload": hidden_payload} if (res == 4 and hidden_payload is not None) else {}
        children["conv1"] = synthesis_layer(f"{prefix}.conv1", res, 1, extra)
        children["torgb"] = torgb_layer(f"{prefix}.torgb")
        blocks[f"b{res}"] = persistent_module(
            "SynthesisBlock", params=params, buffers={"resample_filter": filt}, modules=children,
            attrs={"in_channels": 0 if res == 4 else channels[res // 2], "w_dim": style_dim, "resolution": res,
                   "img_channels": 3, "is_last": res == size, "architecture": "skip", "use_fp16": False,
                   "channels_last": False, "num_conv": 1 if res == 4 else 2, "num_torgb": 1},
            init_kwargs={"in_channels": 0 if res == 4 else channels[res // 2], "out_channels": channels[res],
                         "w_dim": style_dim, "resolution": res, "img_channels": 3, "is_last": res == size},
        )
    synthesis = persistent_module(
        "SynthesisNetwork", modules=blocks,
        attrs={"w_dim": style_dim, "img_resolution": size, "img_resolution_log2": int(math.log2(size)),
               "img_channels": 3, "block_resolutions": sorted(channels), "num_ws": num_ws},
        init_kwargs=dict(w_dim=style_dim, img_resolution=size, img_channels=3, **synthesis_kwargs),
    )
    return persistent_module(
        "Generator", modules={"synthesis": synthesis, "mapping": mapping},
        attrs={"z_dim": style_dim, "c_dim": 0, "w_dim": style_dim, "img_resolution": size, "img_channels": 3,
               "num_ws": num_ws},
        init_kwargs=dict(z_dim=style_dim, c_dim=0, w_dim=style_dim, img_resolution=size, img_channels=3,
                         mapping_kwargs=mapping_kwargs, synthesis_kwargs=synthesis_kwargs),
    )


# ---------------------------------------------------------------------------------------------- discriminator
def nvlabs_discriminator_tensors(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Flat NVlabs 'resnet' discriminator names -> tensors for our ``Discriminator`` state dict
    (``resample_filter`` buffers excluded).

    ``convs.0`` (1x1 FromRGB) -> ``b{top}.fromrgb``; residual block n (n = 1 at the top resolution) ->
    ``b{top / 2**(n-1)}``: ``conv1.0`` -> ``conv0``, ``conv2.1``/``conv2.2`` -> ``conv1``, ``skip.1`` -> ``skip``;
    ``final_conv`` -> ``b4.conv``, ``final_linear.0`` -> ``b4.fc``, ``final_linear.1`` -> ``b4.out``.
    """
    n_blocks = len({k.split(".")[1] for k in sd if k.startswith("convs.")}) - 1
    top = 4 * 2**n_blocks
    out = {f"b{top}.fromrgb.weight": sd["convs.0.0.weight"], f"b{top}.fromrgb.bias": sd["convs.0.1.bias"]}
    for n in range(1, n_blocks + 1):
        b = f"b{top // 2 ** (n - 1)}"
        out[f"{b}.conv0.weight"] = sd[f"convs.{n}.conv1.0.weight"]
        out[f"{b}.conv0.bias"] = sd[f"convs.{n}.conv1.1.bias"]
        out[f"{b}.conv1.weight"] = sd[f"convs.{n}.conv2.1.weight"]
        out[f"{b}.conv1.bias"] = sd[f"convs.{n}.conv2.2.bias"]
        out[f"{b}.skip.weight"] = sd[f"convs.{n}.skip.1.weight"]
    out["b4.conv.weight"] = sd["final_conv.0.weight"]
    out["b4.conv.bias"] = sd["final_conv.1.bias"]
    for ros, nv in (("final_linear.0", "b4.fc"), ("final_linear.1", "b4.out")):
        out[f"{nv}.weight"] = sd[f"{ros}.weight"]
        out[f"{nv}.bias"] = sd[f"{ros}.bias"]
    return out


def nvlabs_discriminator(discriminator: torch.nn.Module) -> PersistentObject:
    """The persistent-object tree of a 'resnet' ``training.networks.Discriminator``."""
    cfg = discriminator.config
    t = nvlabs_discriminator_tensors(discriminator.state_dict())
    filt = resample_filter(cfg["blur_kernel"])
    size = cfg["size"]

    def conv(name: str, down: int, bias: bool = True, activation: str = "lrelu") -> PersistentObject:
        weight = t[f"{name}.weight"]
        return persistent_module(
            "Conv2dLayer",
            params={"weight": weight, "bias": t[f"{name}.bias"] if bias else None},  # NVlabs keeps bias=None
            buffers={"resample_filter": filt},
            attrs={"activation": activation, "up": 1, "down": down, "conv_clamp": None,
                   "padding": weight.shape[-1] // 2, "weight_gain": np.float64(1 / np.sqrt(weight[0].numel())),
                   "act_gain": np.float64(np.sqrt(2) if activation == "lrelu" else 1.0)},
            init_kwargs={"in_channels": weight.shape[1], "out_channels": weight.shape[0],
                         "kernel_size": weight.shape[-1], "bias": bias, "activation": activation, "down": down},
        )

    blocks = OrderedDict()
    res = size
    while res > 4:
        b = f"b{res}"
        children = OrderedDict()
        if res == size:
            children["fromrgb"] = conv(f"{b}.fromrgb", 1)
        children["conv0"] = conv(f"{b}.conv0", 1)
        children["conv1"] = conv(f"{b}.conv1", 2)
        children["skip"] = conv(f"{b}.skip", 2, bias=False, activation="linear")
        blocks[b] = persistent_module(
            "DiscriminatorBlock", buffers={"resample_filter": filt}, modules=children,
            attrs={"resolution": res, "img_channels": 3, "first_layer_idx": 0, "architecture": "resnet",
                   "use_fp16": False, "channels_last": False, "num_layers": 3},
            init_kwargs={"in_channels": 0 if res == size else t[f"{b}.conv0.weight"].shape[1],
                         "tmp_channels": t[f"{b}.conv0.weight"].shape[0],
                         "out_channels": t[f"{b}.conv1.weight"].shape[0], "resolution": res, "img_channels": 3,
                         "architecture": "resnet"},
        )
        res //= 2
    channels4 = t["b4.conv.weight"].shape[0]
    blocks["b4"] = persistent_module(
        "DiscriminatorEpilogue",
        modules=OrderedDict(
            mbstd=persistent_module("MinibatchStdLayer", attrs={"group_size": 4, "num_channels": 1},
                                    init_kwargs={"group_size": 4, "num_channels": 1}),
            conv=conv("b4.conv", 1),
            fc=_fc(t["b4.fc.weight"], t["b4.fc.bias"], activation="lrelu"),
            out=_fc(t["b4.out.weight"], t["b4.out.bias"]),
        ),
        attrs={"in_channels": channels4, "cmap_dim": 0, "resolution": 4, "img_channels": 3, "architecture": "resnet"},
        init_kwargs={"in_channels": channels4, "cmap_dim": 0, "resolution": 4, "img_channels": 3,
                     "mbstd_group_size": 4, "mbstd_num_channels": 1},
    )
    return persistent_module(
        "Discriminator", modules=blocks,
        attrs={"c_dim": 0, "img_resolution": size, "img_resolution_log2": int(math.log2(size)), "img_channels": 3,
               "block_resolutions": [r for r in (2**i for i in range(int(math.log2(size)), 2, -1))]},
        init_kwargs=dict(c_dim=0, img_resolution=size, img_channels=3, architecture="resnet",
                         channel_base=32768 if cfg["channel_multiplier"] == 2 else 16384,
                         channel_max=cfg["channel_max"] or 512, num_fp16_res=0, conv_clamp=None, cmap_dim=None,
                         block_kwargs=EasyDict(), mapping_kwargs=EasyDict(),
                         epilogue_kwargs=EasyDict(mbstd_group_size=4)),
    )


# ---------------------------------------------------------------------------------------------- whole files
def write_nvlabs_pickle(path: str | Path, g_ema: torch.nn.Module, discriminator: torch.nn.Module | None = None,
                        g: torch.nn.Module | None = None, w_avg: torch.Tensor | None = None,
                        lr_multiplier: float = 0.01, hidden_payload: Any = None,
                        protocol: int | None = None) -> Path:
    """Write a stylegan2-ada-pytorch snapshot ``network-snapshot-*.pkl`` for our networks.

    ``G`` is ``g`` (the non-EMA copy; defaults to ``g_ema``), ``G_ema`` is ``g_ema``, ``D`` is ``discriminator``
    (``None`` if not given). ``hidden_payload`` goes into G_ema's state (see :func:`nvlabs_generator`).
    """
    data = {
        "G": nvlabs_generator(g if g is not None else g_ema, w_avg, lr_multiplier),
        "D": nvlabs_discriminator(discriminator) if discriminator is not None else None,
        "G_ema": nvlabs_generator(g_ema, w_avg, lr_multiplier, hidden_payload),
        "augment_pipe": None,
        "training_set_kwargs": EasyDict(class_name="training.dataset.ImageFolderDataset", path="ffhq.zip",
                                        use_labels=False, max_size=70000, xflip=True,
                                        resolution=g_ema.config["size"], random_seed=0),
    }
    return dump_with_nvlabs_names(data, path, protocol)


# ---------------------------------------------------------------------------------------------- hostile files
class Exploit:
    """Unpickling this runs code that creates ``marker`` (``how``: 'exec' -> builtins.exec, 'system' ->
    os.system, 'eval' -> builtins.eval)."""

    def __init__(self, marker: str | Path, how: str = "exec"):
        self.marker = str(marker)
        self.how = how

    def __reduce__(self):
        code = f"open({self.marker!r}, 'w').write('pwned')"
        if self.how == "exec":
            return (builtins.exec, (code,))
        if self.how == "eval":
            return (builtins.eval, (code,))
        if self.how == "system":
            return (os.system, (f"touch {shlex.quote(self.marker)}",))
        raise ValueError(self.how)


def write_malicious_pickle(path: str | Path, marker: str | Path, how: str = "exec",
                           protocol: int | None = None) -> Path:
    """A standalone pickle whose only content creates ``marker`` when unpickled."""
    path = Path(path)
    with open(path, "wb") as handle:
        pickle.dump({"G_ema": Exploit(marker, how)}, handle, protocol=protocol)
    return path


def write_nvlabs_pickle_with_payload(path: str | Path, g_ema: torch.nn.Module, marker: str | Path,
                                     discriminator: torch.nn.Module | None = None, how: str = "exec") -> Path:
    """A valid NVlabs pickle with an :class:`Exploit` hidden in a synthesis layer's state."""
    return write_nvlabs_pickle(path, g_ema, discriminator, hidden_payload=Exploit(marker, how))


class _TFNetwork:
    """Shape of ``dnnlib.tflib.network.Network`` as TensorFlow StyleGAN2 pickles store it (``__getstate__`` dict)."""

    def __init__(self, name: str):
        self.name = name

    def __getstate__(self):
        return {"version": 4, "name": self.name, "static_kwargs": {"resolution": 16}, "components": {},
                "build_module_src": "def G_main(*args, **kwargs):\n    pass\n", "build_func_name": "G_main",
                "variables": [(f"{self.name}/dense/weight", np.zeros((2, 2), np.float32))]}


def write_tensorflow_pickle(path: str | Path, protocol: int = 3) -> Path:
    """A TensorFlow-era StyleGAN2 pickle: ``(G, D, Gs)`` of ``dnnlib.tflib.network.Network`` objects
    (written by Python 3.6/3.7's default protocol 3: NEWOBJ + BUILD, so the class's ``__init__`` is not called)."""
    path = Path(path)
    names = ["dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"]
    if any(name in sys.modules for name in names):
        raise RuntimeError("refusing to shadow a real dnnlib")
    created = {name: types.ModuleType(name) for name in names}
    created["dnnlib.tflib.network"].Network = _TFNetwork
    saved = (_TFNetwork.__module__, _TFNetwork.__qualname__)
    _TFNetwork.__module__, _TFNetwork.__qualname__ = "dnnlib.tflib.network", "Network"
    sys.modules.update(created)
    try:
        with open(path, "wb") as handle:
            pickle.dump((_TFNetwork("G"), _TFNetwork("D"), _TFNetwork("Gs")), handle, protocol=protocol)
    finally:
        for name in names:
            sys.modules.pop(name, None)
        _TFNetwork.__module__, _TFNetwork.__qualname__ = saved
    return path
