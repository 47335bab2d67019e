"""Checkpoint import / export: every supported layout must give bit-identical networks, and hostile or broken
files must fail with a CheckpointError (never run code, never leak a raw RuntimeError / EOFError).

NVlabs pickles are produced by ``tests/nvlabs_pickle.py``, whose pkl naming is written independently of the
library's mapping, so a round trip checks the mapping rather than restating it.
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from stylegan_lightning.serialization import CheckpointError, UnsafeCheckpointError
from stylegan_lightning.stylegan2 import (
    Discriminator,
    FrozenGenerator,
    Generator,
    channel_layout,
    convert_checkpoint,
    infer_generator_config,
    load_discriminator,
    load_generator,
    read_checkpoint,
    save_generator,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nvlabs_pickle as nv  # noqa: E402  (test helper beside this file)

STYLE_DIM = 32


# ---------------------------------------------------------------------------------------------- helpers
def render(generator: Generator, w: torch.Tensor) -> torch.Tensor:
    """Images for fixed w with the stored (constant) noise maps."""
    with torch.no_grad():
        return generator([w], input_is_latent=True, randomize_noise=False)[0]


def fixed_w(n: int = 2, seed: int = 123, dim: int = STYLE_DIM) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def fixed_images(size: int, n: int = 4, seed: int = 7) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def make_discriminator(size: int = 32, seed: int = 1, channel_max: int = 16, **kwargs) -> Discriminator:
    """A small discriminator with non-zero biases, so every tensor influences the logits."""
    torch.manual_seed(seed)
    d = Discriminator(size, channel_max=channel_max, **kwargs)
    with torch.no_grad():
        for name, param in d.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.1)
    return d.eval()


def logits(d: Discriminator, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return d(x)


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].shape == sb[key].shape, key
        assert torch.equal(sa[key], sb[key]), key


def state_of(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def adam_state(module: nn.Module) -> dict:
    """What ``torch.optim.Adam(...).state_dict()`` holds after a few steps (built by hand: a real step is slow
    the first time it runs)."""
    params = list(module.parameters())
    return {"state": {i: {"step": torch.tensor(3.0), "exp_avg": torch.randn_like(p), "exp_avg_sq": torch.rand_like(p)}
                      for i, p in enumerate(params)},
            "param_groups": [{"lr": 0.002, "betas": (0.0, 0.99), "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
                              "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
                              "fused": None, "params": list(range(len(params)))}]}


@pytest.fixture
def g32(tiny_generator) -> Generator:
    return tiny_generator(32, seed=0)


@pytest.fixture
def latent_avg() -> torch.Tensor:
    return torch.randn(STYLE_DIM, generator=torch.Generator().manual_seed(5))


# ============================================================================================== rosinality .pt
def test_rosinality_g_ema_with_latent_avg(tmp_path, g32, latent_avg):
    path = tmp_path / "stylegan2-ffhq-config-f.pt"
    torch.save({"g_ema": g32.state_dict(), "latent_avg": latent_avg}, path)

    loaded = load_generator(path)
    assert_same_state(g32, loaded)
    w = fixed_w()
    assert torch.equal(render(loaded, w), render(g32, w))
    assert torch.equal(loaded.latent_avg, latent_avg)
    # truncation towards the file's latent_avg is what truncation_latent=latent_avg gives on the source
    with torch.no_grad():
        ours = loaded([w], input_is_latent=True, randomize_noise=False, truncation=0.5)[0]
        ref = g32([w], input_is_latent=True, randomize_noise=False, truncation=0.5, truncation_latent=latent_avg)[0]
    assert torch.equal(ours, ref)


def test_rosinality_g_only_has_no_latent_avg(tmp_path, g32):
    path = tmp_path / "g.pt"
    torch.save({"g": g32.state_dict()}, path)
    loaded = load_generator(path)
    assert loaded.latent_avg is None
    w = fixed_w()
    assert torch.equal(render(loaded, w), render(g32, w))


def test_rosinality_legacy_torch_format(tmp_path, g32, latent_avg):
    """Pre-1.6 ``torch.save`` files (not zip) are read too."""
    path = tmp_path / "legacy.pt"
    torch.save({"g_ema": g32.state_dict(), "latent_avg": latent_avg}, path, _use_new_zipfile_serialization=False)
    assert not path.read_bytes().startswith(b"PK")
    loaded = load_generator(path)
    w = fixed_w()
    assert torch.equal(render(loaded, w), render(g32, w))
    assert torch.equal(loaded.latent_avg, latent_avg)


def test_rosinality_training_checkpoint(tmp_path, tiny_generator):
    """rosinality train.py's ``{"g","d","g_ema","g_optim","d_optim","args","ada_aug_p"}``: g_ema wins over g."""
    g = tiny_generator(32, seed=1)
    g_ema = tiny_generator(32, seed=2)
    d = make_discriminator(32, seed=3)
    g_optim, d_optim = adam_state(g), adam_state(d)
    args = argparse.Namespace(path="ffhq_lmdb", iter=800000, batch=16, n_sample=64, size=32, r1=10.0,
                              path_regularize=2.0, mixing=0.9, ckpt=None, lr=0.002, channel_multiplier=2,
                              augment=False, augment_p=0.0, ada_target=0.6, local_rank=0, latent=512, n_mlp=8)
    path = tmp_path / "000100.pt"
    torch.save({"g": g.state_dict(), "d": d.state_dict(), "g_ema": g_ema.state_dict(),
                "g_optim": g_optim, "d_optim": d_optim, "args": args,
                "ada_aug_p": 0.0}, path)

    loaded = load_generator(path)
    w = fixed_w()
    assert torch.equal(render(loaded, w), render(g_ema, w))
    assert not torch.equal(render(loaded, w), render(g, w))
    assert loaded.latent_avg is None

    loaded_d = load_discriminator(path)
    assert_same_state(d, loaded_d)
    x = fixed_images(32)
    assert torch.equal(logits(loaded_d, x), logits(d, x))


# ============================================================================================== architecture
def _real_kernels(blur_kernel) -> dict[str, torch.Tensor]:
    g = Generator(8, style_dim=4, n_mlp=1, channel_max=4, blur_kernel=blur_kernel)
    sd = g.state_dict()
    return {"upsample": sd["to_rgbs.0.upsample.kernel"], "blur": sd["convs.0.conv.blur.kernel"]}


def shapes_only_state(**config) -> dict[str, torch.Tensor]:
    """A generator state dict with the right shapes but no real weights (full-size layouts stay cheap)."""
    with torch.device("meta"):
        sd = Generator(**config).state_dict()
    kernels = _real_kernels(config.get("blur_kernel", (1, 3, 3, 1)))
    out = {}
    for key, value in sd.items():
        if key.endswith("upsample.kernel"):
            out[key] = kernels["upsample"]
        elif key.endswith("blur.kernel"):
            out[key] = kernels["blur"]
        else:
            out[key] = torch.zeros(()).expand(value.shape)
    return out


# configs whose constructor arguments are fully visible in the tensor shapes
OBSERVABLE = [
    dict(size=8, style_dim=32, n_mlp=1, channel_multiplier=2, channel_max=None),
    dict(size=32, style_dim=32, n_mlp=2, channel_multiplier=2, channel_max=16),
    dict(size=64, style_dim=64, n_mlp=3, channel_multiplier=2, channel_max=None),
    dict(size=64, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=None),
    dict(size=64, style_dim=32, n_mlp=4, channel_multiplier=1, channel_max=384),
    dict(size=64, style_dim=48, n_mlp=2, channel_multiplier=2, channel_max=128),
    dict(size=128, style_dim=512, n_mlp=8, channel_multiplier=1, channel_max=None),
    dict(size=16, style_dim=16, n_mlp=2, channel_multiplier=2, channel_max=8, blur_kernel=[1, 2, 1]),
]
# configs where channel_multiplier / channel_max do not change any shape: any equivalent layout is correct
AMBIGUOUS = [
    dict(size=32, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=None),  # < 64: multiplier unused
    dict(size=64, style_dim=32, n_mlp=2, channel_multiplier=1, channel_max=64),    # cap hides the multiplier
    dict(size=64, style_dim=32, n_mlp=2, channel_multiplier=2, channel_max=512),   # cap above every layer
]


@pytest.mark.parametrize("config", OBSERVABLE, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_infer_config_recovers_constructor_arguments(config):
    inferred = infer_generator_config(shapes_only_state(**config))
    expected = {**dict(blur_kernel=[1, 3, 3, 1]), **config}
    assert inferred == {k: expected[k] for k in inferred}
    assert set(inferred) >= {"size", "style_dim", "n_mlp", "channel_multiplier", "channel_max", "blur_kernel"}


@pytest.mark.parametrize("config", AMBIGUOUS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_infer_config_gives_an_equivalent_layout(config):
    inferred = infer_generator_config(shapes_only_state(**config))
    for key in ("size", "style_dim", "n_mlp"):
        assert inferred[key] == config[key]
    assert channel_layout(inferred["size"], inferred["channel_multiplier"], inferred["channel_max"]) == \
        channel_layout(config["size"], config["channel_multiplier"], config["channel_max"])
    with torch.device("meta"):
        a = {k: v.shape for k, v in Generator(**inferred).state_dict().items()}
        b = {k: v.shape for k, v in Generator(**config).state_dict().items()}
    assert a == b


def test_infer_config_of_a_real_tiny_generator(tiny_generator):
    g = tiny_generator(16, n_mlp=3, style_dim=24, channel_max=16, channel_multiplier=2)
    inferred = infer_generator_config(g.state_dict())
    assert inferred == {k: g.config[k] for k in inferred}


# ============================================================================================== pSp / e4e / Lightning
def _encoder_tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(11)
    return {"encoder.input_layer.0.weight": torch.randn(8, 3, 3, 3),
            "encoder.body.0.shortcut_layer.1.weight": torch.randn(8),
            "encoder.styles.0.convs.0.weight": torch.randn(8, 8, 3, 3),
            "encoder.latlayer1.weight": torch.randn(8, 8, 1, 1)}


def test_psp_checkpoint_loads_decoder(tmp_path, g32, latent_avg):
    state = {**_encoder_tensors(), **{f"decoder.{k}": v for k, v in g32.state_dict().items()}}
    opts = {"exp_dir": "experiments/ffhq", "encoder_type": "GradualStyleEncoder", "input_nc": 3, "output_size": 32,
            "start_from_latent_avg": True, "learn_in_w": False, "lpips_lambda": 0.8, "checkpoint_path": None,
            "stylegan_weights": "pretrained_models/stylegan2-ffhq-config-f.pt", "batch_size": 8}
    path = tmp_path / "psp_ffhq_encode.pt"
    torch.save({"state_dict": state, "opts": opts, "latent_avg": latent_avg}, path)

    loaded = load_generator(path)
    assert_same_state(g32, loaded)
    w = fixed_w()
    assert torch.equal(render(loaded, w), render(g32, w))
    assert torch.equal(loaded.latent_avg, latent_avg)


def test_e4e_checkpoint_with_w_plus_latent_avg(tmp_path, g32, latent_avg):
    """e4e / HyperStyle store latent_avg repeated to [n_latent, style_dim]; the loader keeps one w."""
    repeated = latent_avg.unsqueeze(0).repeat(g32.n_latent, 1)
    state = {**_encoder_tensors(), **{f"decoder.{k}": v for k, v in g32.state_dict().items()}}
    path = tmp_path / "e4e_ffhq_encode.pt"
    torch.save({"state_dict": state, "opts": {"encoder_type": "Encoder4Editing"}, "latent_avg": repeated}, path)
    loaded = load_generator(path)
    assert loaded.latent_avg.shape == (STYLE_DIM,)
    torch.testing.assert_close(loaded.latent_avg, latent_avg, rtol=0, atol=1e-6)
    w = fixed_w()
    assert torch.equal(render(loaded, w), render(g32, w))


class _Method(nn.Module):
    """How a method's LightningModule nests the frozen prior: ``self.model.generator = FrozenGenerator(...)``."""

    def __init__(self, generator: Generator, latent_avg: torch.Tensor, discriminator: Discriminator | None = None):
        super().__init__()
        self.model = nn.Module()
        self.model.encoder = nn.Conv2d(3, 4, 3)
        self.model.generator = FrozenGenerator(generator, latent_avg=latent_avg)
        if discriminator is not None:
            self.model.discriminator = discriminator


def test_lightning_checkpoint_with_frozen_generator(tmp_path, g32, latent_avg):
    d = make_discriminator(32, seed=4)
    method = _Method(g32, latent_avg, d)
    state = method.state_dict()
    assert "model.generator.latent_avg" in state and "model.generator.generator.conv1.conv.weight" in state
    path = tmp_path / "epoch=3-step=100.ckpt"
    torch.save({"epoch": 3, "global_step": 100, "pytorch-lightning_version": "2.6.6", "state_dict": state,
                "loops": {}, "callbacks": {}, "optimizer_states": [], "lr_schedulers": [],
                "hparams_name": "kwargs", "hyper_parameters": {"lr": 1e-4, "size": 32}}, path)

    loaded = load_generator(path)
    assert torch.equal(loaded.latent_avg, latent_avg)
    w = fixed_w()
    assert torch.equal(render(loaded, w), render(g32, w))
    frozen = FrozenGenerator.from_file(path)
    assert torch.equal(frozen.latent_avg, latent_avg)
    assert torch.equal(frozen(w, noise="const"), render(g32, w))

    loaded_d = load_discriminator(path)
    x = fixed_images(32)
    assert torch.equal(logits(loaded_d, x), logits(d, x))


def test_lightning_checkpoint_prefers_the_ema_copy(tmp_path, tiny_generator):
    g, g_ema = tiny_generator(16, seed=1), tiny_generator(16, seed=2)
    state = {**{f"generator.{k}": v for k, v in g.state_dict().items()},
             **{f"generator_ema.{k}": v for k, v in g_ema.state_dict().items()}}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.6.6"}, path)
    w = fixed_w()
    assert torch.equal(render(load_generator(path), w), render(g_ema, w))


# ============================================================================================== NVlabs .pkl
def _recording_load(path: Path):
    """Unpickle an NVlabs pickle with *our* stand-ins (test-side, trusted file): persistent objects become their
    ``meta`` dicts, so the written format can be inspected."""
    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
                return lambda meta: {"__meta__": meta}
            if (module, name) == ("dnnlib.util", "EasyDict"):
                return nv.EasyDict
            return super().find_class(module, name)

    with open(path, "rb") as handle:
        return Recorder(handle).load()


def _flatten(obj, prefix=""):
    """``{name: (kind, value)}`` for every parameter / buffer of a recorded persistent-object tree."""
    state = obj["__meta__"]["state"]
    out = {}
    for kind in ("_parameters", "_buffers"):
        for name, value in state[kind].items():
            if value is not None:
                out[prefix + name] = (kind, value)
    for name, child in state["_modules"].items():
        out.update(_flatten(child, f"{prefix}{name}."))
    return out


def _walk(obj):
    yield obj["__meta__"]
    for child in obj["__meta__"]["state"]["_modules"].values():
        yield from _walk(child)


def test_helper_writes_the_nvlabs_format(tmp_path, tiny_generator, latent_avg):
    """The test pickle itself: names, shapes, kinds and record layout of a stylegan2-ada-pytorch snapshot."""
    import numpy as np

    g = tiny_generator(16)
    d = make_discriminator(16)
    path = nv.write_nvlabs_pickle(tmp_path / "snap.pkl", g, d, w_avg=latent_avg)
    assert not {"dnnlib", "dnnlib.util", "torch_utils", "torch_utils.persistence"} & set(sys.modules)
    raw = path.read_bytes()
    for name in (b"_reconstruct_persistent_obj", b"torch_utils.persistence", b"dnnlib.util", b"EasyDict",
                 b"_rebuild_parameter", b"_rebuild_tensor_v2", b"_load_from_bytes", b"training.networks.Generator"):
        assert name in raw, name

    data = _recording_load(path)
    assert set(data) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert data["augment_pipe"] is None and isinstance(data["training_set_kwargs"], nv.EasyDict)
    meta = data["G_ema"]["__meta__"]
    assert meta["type"] == "class" and meta["class_name"] == "training.networks.Generator"
    assert isinstance(meta["module_src"], str) and "class Generator" in meta["module_src"]
    kwargs = meta["state"]["_init_kwargs"]
    assert isinstance(kwargs, nv.EasyDict)
    assert (kwargs.z_dim, kwargs.w_dim, kwargs.c_dim, kwargs.img_resolution, kwargs.img_channels) == (32, 32, 0, 16, 3)
    assert kwargs.mapping_kwargs == {"num_layers": 2, "lr_multiplier": 0.01}
    assert kwargs.synthesis_kwargs.architecture == "skip" and kwargs.synthesis_kwargs.channel_max == 16
    for record in _walk(data["G_ema"]):
        state = record["state"]
        assert record["class_name"].startswith("training.networks.")
        assert state["training"] is False and isinstance(state["_non_persistent_buffers_set"], set)
        assert all(isinstance(p, nn.Parameter) for p in state["_parameters"].values() if p is not None)
    gains = [r["state"]["weight_gain"] for r in _walk(data["G_ema"]) if "weight_gain" in r["state"]]
    assert gains and all(type(v) is np.float64 for v in gains)

    flat = _flatten(data["G_ema"])
    expected_g = {"mapping.fc0.weight", "mapping.fc0.bias", "mapping.fc1.weight", "mapping.fc1.bias",
                  "mapping.w_avg", "synthesis.b4.const", "synthesis.b4.resample_filter",
                  "synthesis.b8.resample_filter", "synthesis.b16.resample_filter"}
    for layer in ("b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1"):
        expected_g |= {f"synthesis.{layer}.{n}" for n in ("weight", "bias", "affine.weight", "affine.bias",
                                                          "noise_strength", "noise_const", "resample_filter")}
    for block in ("b4", "b8", "b16"):
        expected_g |= {f"synthesis.{block}.torgb.{n}" for n in ("weight", "bias", "affine.weight", "affine.bias")}
    assert set(flat) == expected_g
    assert flat["mapping.w_avg"][0] == "_buffers" and torch.equal(flat["mapping.w_avg"][1], latent_avg)
    assert flat["synthesis.b4.const"][1].shape == (16, 4, 4)
    assert flat["synthesis.b8.conv0.weight"][1].shape == (16, 16, 3, 3)
    assert flat["synthesis.b8.conv0.noise_strength"][1].shape == ()
    assert flat["synthesis.b8.conv0.noise_const"][0] == "_buffers"
    assert flat["synthesis.b16.conv1.noise_const"][1].shape == (16, 16)
    assert flat["synthesis.b8.torgb.weight"][1].shape == (3, 16, 1, 1)
    assert flat["synthesis.b8.torgb.bias"][1].shape == (3,)
    f = flat["synthesis.b8.resample_filter"][1]
    assert f.shape == (4, 4) and float(f.sum()) == 1.0
    # rosinality's upsampling blur buffers are 4 x NVlabs' normalised filter
    assert torch.equal(g.state_dict()["convs.0.conv.blur.kernel"], 4 * f)
    assert torch.equal(g.state_dict()["to_rgbs.0.upsample.kernel"], 4 * f)

    flat_d = _flatten(data["D"])
    expected_d = {"b16.fromrgb.weight", "b16.fromrgb.bias", "b16.fromrgb.resample_filter",
                  "b4.conv.weight", "b4.conv.bias", "b4.conv.resample_filter",
                  "b4.fc.weight", "b4.fc.bias", "b4.out.weight", "b4.out.bias"}
    for block in ("b16", "b8"):
        expected_d |= {f"{block}.resample_filter", f"{block}.skip.weight", f"{block}.skip.resample_filter"}
        expected_d |= {f"{block}.conv{i}.{n}" for i in (0, 1) for n in ("weight", "bias", "resample_filter")}
    assert set(flat_d) == expected_d
    assert flat_d["b4.conv.weight"][1].shape == (16, 17, 3, 3)
    assert flat_d["b4.fc.weight"][1].shape == (16, 256)
    # rosinality's downsampling blur buffers equal the normalised filter
    assert torch.equal(d.state_dict()["convs.1.conv2.0.kernel"], flat_d["b16.conv1.resample_filter"][1])


@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_nvlabs_pickle_generator_roundtrip(tmp_path, tiny_generator, latent_avg, size, protocol):
    g_ema = tiny_generator(size, seed=0)
    g = tiny_generator(size, seed=9)  # the non-EMA 'G' must not be the one loaded
    path = nv.write_nvlabs_pickle(tmp_path / "network-snapshot-000100.pkl", g_ema, g=g, w_avg=latent_avg,
                                  protocol=protocol)
    loaded = load_generator(path)
    assert_same_state(g_ema, loaded)
    w = fixed_w()
    assert torch.equal(render(loaded, w), render(g_ema, w))
    assert torch.equal(loaded.latent_avg, latent_avg)
    assert loaded.config == g_ema.config


def test_nvlabs_pickle_mapping_lr_multiplier(tmp_path, tiny_generator):
    """lr_multiplier is not visible in the weights: it comes from mapping_kwargs, and z -> image agrees."""
    g = tiny_generator(16, lr_mlp=0.1)
    path = nv.write_nvlabs_pickle(tmp_path / "lr.pkl", g, w_avg=torch.zeros(STYLE_DIM), lr_multiplier=0.1)
    loaded = load_generator(path)
    assert loaded.config["lr_mlp"] == pytest.approx(0.1)
    z = fixed_w(seed=3)
    with torch.no_grad():
        assert torch.equal(loaded([z], randomize_noise=False)[0], g([z], randomize_noise=False)[0])


def test_nvlabs_pickle_module_source_is_never_run(tmp_path, tiny_generator, monkeypatch):
    marker = tmp_path / "module_src_ran"
    monkeypatch.setenv(nv.MARKER_ENV, str(marker))
    exec(compile(nv.FAKE_MODULE_SRC, "networks.py", "exec"), {})  # the source really would create the marker
    assert marker.exists()
    marker.unlink()
    path = nv.write_nvlabs_pickle(tmp_path / "src.pkl", tiny_generator(16), make_discriminator(16))
    load_generator(path)
    load_discriminator(path)
    assert not marker.exists()


def test_nvlabs_pickle_discriminator(tmp_path, tiny_generator):
    d = make_discriminator(32, seed=2)
    path = nv.write_nvlabs_pickle(tmp_path / "gd.pkl", tiny_generator(32), d)
    loaded = load_discriminator(path)
    assert_same_state(d, loaded)
    x = fixed_images(32)
    assert torch.equal(logits(loaded, x), logits(d, x))


def test_nvlabs_pickle_without_discriminator(tmp_path, tiny_generator):
    path = nv.write_nvlabs_pickle(tmp_path / "g_only.pkl", tiny_generator(16))
    assert read_checkpoint(path)["discriminator"] is None
    with pytest.raises(CheckpointError, match="no discriminator"):
        load_discriminator(path)


def test_convert_nvlabs_pickle_to_rosinality(tmp_path, g32, latent_avg):
    d = make_discriminator(32, seed=2)
    pkl = nv.write_nvlabs_pickle(tmp_path / "ffhq.pkl", g32, d, w_avg=latent_avg)
    out = tmp_path / "out" / "ffhq.pt"
    report = convert_checkpoint(pkl, out)
    assert report["latent_avg"] is True and report["discriminator"] is True
    assert report["parameters"] == sum(p.numel() for p in g32.parameters())

    saved = torch.load(out, map_location="cpu", weights_only=True)
    assert {"g_ema", "latent_avg", "generator_config", "d"} <= set(saved)
    config = saved["generator_config"]
    assert {k: config[k] for k in ("size", "style_dim", "n_mlp", "channel_max", "lr_mlp")} == \
        {k: g32.config[k] for k in ("size", "style_dim", "n_mlp", "channel_max", "lr_mlp")}
    assert list(saved["g_ema"]) == list(Generator(**config).state_dict())
    assert torch.equal(saved["latent_avg"], latent_avg)

    loaded = load_generator(out)
    w = fixed_w()
    assert torch.equal(render(loaded, w), render(g32, w))
    assert torch.equal(loaded.latent_avg, latent_avg)
    x = fixed_images(32)
    assert torch.equal(logits(load_discriminator(out), x), logits(d, x))

    no_d = tmp_path / "no_d.pt"
    convert_checkpoint(pkl, no_d, with_discriminator=False)
    assert "d" not in torch.load(no_d, map_location="cpu", weights_only=True)


def test_cli_convert(tmp_path, g32, latent_avg):
    cli = pytest.importorskip("stylegan_lightning.cli")
    pkl = nv.write_nvlabs_pickle(tmp_path / "ffhq.pkl", g32, make_discriminator(32), w_avg=latent_avg)
    out = tmp_path / "ffhq.pt"
    assert cli.main(["convert", str(pkl), str(out)]) == 0
    loaded = load_generator(out)
    w = fixed_w()
    assert torch.equal(render(loaded, w), render(g32, w))
    assert torch.equal(loaded.latent_avg, latent_avg)


def test_cli_convert_half_precision(tmp_path, g32, latent_avg):
    """``convert --half``: float16 weights (the file for shipping a model) that load back as float32 and draw the
    same images up to half-precision rounding of the weights."""
    cli = pytest.importorskip("stylegan_lightning.cli")
    full, half = tmp_path / "full.pt", tmp_path / "half.pt"
    save_generator(full, g32, latent_avg=latent_avg)
    assert cli.main(["convert", str(full), str(half), "--half"]) == 0
    raw = torch.load(half, map_location="cpu", weights_only=True)
    assert {v.dtype for v in raw["g_ema"].values()} == {torch.float16} and raw["latent_avg"].dtype == torch.float32
    weight_bytes = sum(v.numel() * v.element_size() for v in raw["g_ema"].values())
    assert weight_bytes * 2 == sum(v.numel() * v.element_size() for v in g32.state_dict().values())
    loaded = load_generator(half)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    expected = {k: v.half().float() for k, v in g32.state_dict().items()}
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())  # exactly the rounded weights
    w = fixed_w()
    assert (render(loaded, w) - render(g32, w)).abs().max() < 0.05
    assert torch.equal(loaded.latent_avg, latent_avg)


# ============================================================================================== security
LOADERS = {
    "load_generator": lambda p, tmp: load_generator(p),
    "load_discriminator": lambda p, tmp: load_discriminator(p),
    "convert_checkpoint": lambda p, tmp: convert_checkpoint(p, tmp / "converted.pt"),
    "FrozenGenerator.from_file": lambda p, tmp: FrozenGenerator.from_file(p),
}


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize("how", ["exec", "system", "eval"])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_standalone_pickle_is_refused(tmp_path, loader, how, protocol):
    """protocol 0 has no 0x80 header, so it takes the torch.load path; 2 and 4 the allow-list path."""
    marker = tmp_path / "pwned"
    path = nv.write_malicious_pickle(tmp_path / "evil.pkl", marker, how=how, protocol=protocol)
    with pytest.raises(UnsafeCheckpointError):
        LOADERS[loader](path, tmp_path)
    assert not marker.exists()
    assert not (tmp_path / "converted.pt").exists()


@pytest.mark.parametrize("how", ["exec", "system"])
def test_malicious_object_hidden_in_nvlabs_state_is_refused(tmp_path, tiny_generator, how):
    marker = tmp_path / "pwned"
    path = nv.write_nvlabs_pickle_with_payload(tmp_path / "trojan.pkl", tiny_generator(16), marker,
                                               make_discriminator(16), how=how)
    assert b"training.networks.Generator" in path.read_bytes()  # otherwise a valid snapshot
    for loader in LOADERS.values():
        with pytest.raises(UnsafeCheckpointError, match="system|exec"):
            loader(path, tmp_path)
        assert not marker.exists()


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_object_in_torch_save_is_refused(tmp_path, g32, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": g32.state_dict(), "latent_avg": torch.zeros(STYLE_DIM), "extra": nv.Exploit(marker)},
               path, _use_new_zipfile_serialization=zip_format)
    for loader in LOADERS.values():
        with pytest.raises(UnsafeCheckpointError):
            loader(path, tmp_path)
        assert not marker.exists()


class _EvilStorage:
    """Pickles as ``torch.storage._load_from_bytes(<torch.save blob holding an Exploit>)``: the nested blob must be
    read as safely as the outer file."""

    def __init__(self, blob: bytes):
        self.blob = blob

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.blob,))


def test_malicious_object_inside_embedded_storage_blob_is_refused(tmp_path):
    import io

    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save(nv.Exploit(marker), buffer, _use_new_zipfile_serialization=False)
    path = tmp_path / "nested.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"G_ema": _EvilStorage(buffer.getvalue())}, handle, protocol=4)
    with pytest.raises(CheckpointError):
        load_generator(path)
    assert not marker.exists()


def test_tensorflow_pickle_is_reported_as_tensorflow(tmp_path):
    path = nv.write_tensorflow_pickle(tmp_path / "stylegan2-ffhq-config-f.pkl")
    assert b"dnnlib.tflib.network" in path.read_bytes()
    with pytest.raises(CheckpointError, match="TensorFlow"):
        load_generator(path)
    with pytest.raises(CheckpointError, match="TensorFlow"):
        convert_checkpoint(path, tmp_path / "out.pt")


# ============================================================================================== broken input
@pytest.mark.parametrize("loader", list(LOADERS))
def test_missing_file_names_the_path(tmp_path, loader):
    path = tmp_path / "nowhere" / "stylegan2.pt"
    with pytest.raises(CheckpointError) as info:
        LOADERS[loader](path, tmp_path)
    assert str(path) in str(info.value)
    with pytest.raises(CheckpointError, match="directory"):
        LOADERS[loader](tmp_path, tmp_path)


def _valid_pt(tmp_path, g, legacy=False) -> bytes:
    path = tmp_path / "valid.pt"
    torch.save({"g_ema": g.state_dict()}, path, _use_new_zipfile_serialization=not legacy)
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["empty", "truncated_zip", "truncated_legacy", "truncated_pkl", "header_only",
                                  "text", "pickle_stop_only", "torch_stop_only"])
def test_unreadable_files_raise_checkpoint_error(tmp_path, tiny_generator, kind):
    g = tiny_generator(16)
    if kind == "empty":
        data = b""
    elif kind == "truncated_zip":
        valid = _valid_pt(tmp_path, g)
        data = valid[: len(valid) // 2]
    elif kind == "truncated_legacy":
        valid = _valid_pt(tmp_path, g, legacy=True)
        data = valid[: len(valid) // 2]
    elif kind == "truncated_pkl":
        valid = nv.write_nvlabs_pickle(tmp_path / "valid.pkl", g).read_bytes()
        data = valid[: len(valid) // 2]
    elif kind == "header_only":
        data = b"\x80\x04"
    elif kind == "text":
        data = b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 381624121\n"  # an LFS pointer
    elif kind == "pickle_stop_only":
        data = b"\x80\x04."  # STOP on an empty stack
    else:
        data = b"."
    path = tmp_path / f"{kind}.pt"
    path.write_bytes(data)
    for loader in LOADERS.values():
        with pytest.raises(CheckpointError):
            loader(path, tmp_path)


def _random_bytes(seed: int) -> bytes:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randrange(1, 300))
    return b"\x80\x04" + data if seed % 2 else data  # odd seeds look like a protocol-4 pickle


def test_random_bytes_raise_checkpoint_error(tmp_path):
    """Garbage must never escape as IndexError / KeyError / OverflowError / UnicodeDecodeError / MemoryError."""
    path = tmp_path / "random.pt"
    escaped = []
    for seed in range(300):
        path.write_bytes(_random_bytes(seed))
        try:
            load_generator(path)
        except CheckpointError:
            continue
        except Exception as error:  # noqa: BLE001 - collected and reported below
            escaped.append((seed, type(error).__name__, str(error)[:80]))
        else:
            escaped.append((seed, "loaded", ""))
    assert not escaped, escaped


GENERATOR_KEYS = ["style.2.weight", "style.1.bias", "input.input", "conv1.conv.modulation.weight",
                  "convs.0.conv.weight", "convs.3.conv.weight", "convs.2.conv.blur.kernel", "to_rgbs.0.upsample.kernel",
                  "to_rgbs.1.bias", "noises.noise_4", "convs.1.noise.weight"]


@pytest.mark.parametrize("key", GENERATOR_KEYS)
def test_missing_generator_key_is_named(tmp_path, g32, key):
    state = state_of(g32)
    del state[key]
    path = tmp_path / "missing.pt"
    torch.save({"g_ema": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    assert key in str(info.value)


# keys that the architecture is not inferred from, so the mismatch itself is reported
WRONG_SHAPE = {"convs.3.conv.weight": (1, 16, 8, 3, 3), "convs.1.conv.modulation.bias": (15,),
               "to_rgbs.1.bias": (1, 3, 2, 2), "noises.noise_2": (1, 1, 4, 4), "style.1.bias": (31,),
               "conv1.noise.weight": (2,), "input.input": (1, 16, 5, 5)}


@pytest.mark.parametrize("key", list(WRONG_SHAPE))
def test_wrong_shape_generator_tensor_is_named(tmp_path, g32, key):
    state = state_of(g32)
    state[key] = torch.zeros(WRONG_SHAPE[key])
    path = tmp_path / "bad_shape.pt"
    torch.save({"g_ema": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    assert key in str(info.value)


@pytest.mark.parametrize("key, shape", [("convs.0.conv.weight", (1, 16, 8, 3, 3)),
                                        ("conv1.conv.modulation.weight", (16, 31)),
                                        ("conv1.conv.weight", (1, 16, 8, 3, 3))])
def test_wrong_shape_of_an_architecture_tensor_is_refused(tmp_path, g32, key, shape):
    """Tensors the layout is read from: the message may describe the inconsistency rather than the key."""
    state = state_of(g32)
    state[key] = torch.zeros(shape)
    path = tmp_path / "bad_arch.pt"
    torch.save({"g_ema": state}, path)
    with pytest.raises(CheckpointError):
        load_generator(path)


@pytest.mark.parametrize("key", ["convs.2.skip.1.weight", "final_linear.0.bias", "convs.0.0.weight"])
def test_missing_discriminator_key_is_named(tmp_path, g32, key):
    d_state = state_of(make_discriminator(32))
    del d_state[key]
    path = tmp_path / "d_missing.pt"
    torch.save({"g_ema": g32.state_dict(), "d": d_state}, path)
    with pytest.raises(CheckpointError) as info:
        load_discriminator(path)
    assert key in str(info.value)


def test_wrong_config_override_is_refused(tmp_path, g32):
    path = tmp_path / "g.pt"
    torch.save({"g_ema": g32.state_dict()}, path)
    for override in ({"channel_max": 8}, {"channel_max": 32}, {"style_dim": 16}, {"size": 64}, {"n_mlp": 4}):
        with pytest.raises(CheckpointError):
            load_generator(path, **override)
    assert load_generator(path, channel_max=16).config["channel_max"] == 16


def test_files_without_a_generator_are_refused(tmp_path):
    cases = {
        "list.pt": lambda p: torch.save([torch.zeros(2)], p),
        "no_generator.pt": lambda p: torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, p),
        "plain.pkl": lambda p: p.write_bytes(pickle.dumps({"g_ema": {"a": 1}}, protocol=4)),
    }
    for name, write in cases.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(CheckpointError):
            load_generator(path)
