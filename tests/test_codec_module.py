"""Codec files (save_codec / load_codec) and CodecModule: a real short fit with manual optimisation, the aux
optimiser of the quantiles, real bitstreams at validation, export, Lightning checkpoints, and the distortion
configuration checks."""

from __future__ import annotations

import copy

import warnings

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from stylegan_lightning.codec import (
    CodecModule,
    code_batch,
    codec_spec,
    compress_images,
    decompress_stream,
    load_codec,
    save_codec,
)
from stylegan_lightning.data import SyntheticDataModule
from stylegan_lightning.serialization import CheckpointError
from stylegan_lightning.stylegan2 import Generator, save_generator
from stylegan_lightning.weights import ENV_VAR, MissingWeightError
from model_helpers import tiny_codec  # noqa: E402  (test helper beside this file)

SIZE = 32
SMALL = dict(input_size=SIZE, backbone_blocks=(1, 1, 1, 1), backbone_channels=(16, 16, 32, 32), dim=32, depth=1,
             heads=2, hyper_channels=4)
DISTORTIONS = [{"mse_coarse": 1.0}, {"mse_coarse": 1.0, "latent": 1.0}, {"mse": 1.0}]

pytestmark = pytest.mark.usefixtures("single_thread")


# ---------------------------------------------------------------------------------------------- helpers
def random_images(n: int, seed: int = 7) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def write_generator(path) -> str:
    torch.manual_seed(0)
    generator = Generator(SIZE, style_dim=32, n_mlp=2, channel_max=16)
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias"):
                param.normal_(0, 0.1)
    return str(save_generator(path, generator.eval()))


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Nothing is found in the weights folder or the torch hub cache."""
    empty = tmp_path / "no_weights"
    empty.mkdir()
    monkeypatch.setenv(ENV_VAR, str(empty))
    monkeypatch.setenv("TORCH_HOME", str(empty / "torch"))
    return empty


# ---------------------------------------------------------------------------------------------- codec files
def test_save_and_load_codec(tmp_path):
    codec = tiny_codec(0, perturb=True)
    assert not codec.is_updated
    path = save_codec(tmp_path / "sub" / "codec.pt", codec)  # updates the codec first
    assert path.is_file() and codec.is_updated
    images = random_images(2)
    streams = compress_images(codec, images)
    loaded = load_codec(path)
    assert not loaded.training and loaded.is_updated
    assert loaded.fingerprint() == codec.fingerprint()
    assert loaded.groups == codec.groups and loaded.config == codec.config
    assert codec_spec(loaded) == codec_spec(codec)
    for stream in streams:
        for k in (1, 2, 3):
            assert torch.equal(decompress_stream(loaded, stream, layers=k), decompress_stream(codec, stream, layers=k))
    # the sender side is restored too: the loaded codec writes the same bytes
    assert [s.to_bytes() for s in compress_images(loaded, images)] == [s.to_bytes() for s in streams]
    for key, value in codec.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_save_codec_refreshes_tables_built_before_the_weights_changed(tmp_path):
    codec = tiny_codec(0, perturb=True)
    codec.update(force=True)
    assert codec.tables_are_current
    stale = {k: v.clone() for k, v in codec.state_dict().items()  # the Gaussian tables depend on no weight
             if k.startswith("hyper_bottlenecks.") and k.endswith("_quantized_cdf")}
    assert len(stale) == codec.n_layers
    with torch.no_grad():  # what training does after a validation built the tables
        for bottleneck in codec.hyper_bottlenecks:
            bottleneck.quantiles[:, 0, 2] += 3.0  # wider upper tails: longer CDFs
            bottleneck.matrices[0].add_(0.2)
    assert codec.is_updated and not codec.tables_are_current
    loaded = load_codec(save_codec(tmp_path / "codec.pt", codec))
    assert codec.tables_are_current and loaded.tables_are_current
    for key, table in stale.items():
        saved = loaded.state_dict()[key]
        assert saved.shape != table.shape or not torch.equal(saved, table), key
        assert torch.equal(saved, codec.state_dict()[key]), key
    fresh = copy.deepcopy(codec)
    fresh.update(force=True)  # the saved tables are the ones the present weights give
    for key in stale:
        assert torch.equal(loaded.state_dict()[key], fresh.state_dict()[key]), key
    # a loaded file's tables are current: re-saving keeps them bit for bit (no rebuild)
    with torch.no_grad():
        loaded.gaussian._quantized_cdf[0, 1] += 1  # a mark a rebuild would erase
    marked = loaded.gaussian._quantized_cdf.clone()
    loaded.invalidate_fingerprint()
    assert loaded.tables_are_current
    again = load_codec(save_codec(tmp_path / "again.pt", loaded))
    assert torch.equal(again.gaussian._quantized_cdf, marked)


def test_load_codec_rejects_other_files(tmp_path):
    for name, content in (("list.pt", [1, 2, 3]), ("dict.pt", {"state_dict": {}}),
                          ("version.pt", {"format": "stylegan-lightning-codec", "format_version": 99})):
        torch.save(content, tmp_path / name)
        with pytest.raises(CheckpointError, match=name):
            load_codec(tmp_path / name)
    data = torch.load(save_codec(tmp_path / "codec.pt", tiny_codec(0, perturb=True)), weights_only=True)
    del data["state_dict"]["synthesis.weight"]
    torch.save(data, tmp_path / "incomplete.pt")
    with pytest.raises(CheckpointError, match="incomplete.pt"):
        load_codec(tmp_path / "incomplete.pt")


# ---------------------------------------------------------------------------------------------- configuration
def test_distortion_configuration(tmp_path, no_weights):
    generator = write_generator(tmp_path / "g32.pt")
    with pytest.raises(ValueError, match="unknown distortion"):
        CodecModule(generator, distortions=[{"mse": 1.0}, {"psnr": 1.0}, {"mse": 1.0}], **SMALL)
    with pytest.raises(ValueError, match="2 entries but the codec has 3 layers"):
        CodecModule(generator, distortions=[{"mse": 1.0}, {"mse": 1.0}], **SMALL)
    with pytest.raises(ValueError, match="4 entries"):
        CodecModule(generator, distortions=[{"mse": 1.0}] * 4, **SMALL)
    # the paper's default terms need pretrained networks: nothing silently runs with random weights
    with pytest.raises(MissingWeightError):
        CodecModule(generator, **SMALL)


@pytest.mark.parametrize("name, filename", [("lpips", "alexnet-owt-7be5be79.pth"),
                                            ("identity", "model_ir_se50.pth"),
                                            ("landmark", "2DFAN-4.pth.tar"),
                                            ("parsing", "79999_iter.pth")])
def test_missing_weights_are_named(tmp_path, no_weights, name, filename):
    generator = write_generator(tmp_path / "g32.pt")
    distortions = [{"mse": 1.0}, {"mse": 1.0}, {"mse": 1.0, name: 0.5}]
    with pytest.raises(MissingWeightError, match=filename.replace(".", r"\.")):
        CodecModule(generator, distortions=distortions, **SMALL)
    distortions[2][name] = 0.0  # a zero weight needs nothing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = CodecModule(generator, distortions=distortions, **SMALL)
    assert module.lpips is None and module.identity is None and module.landmark is None and module.parsing is None


def test_objective_terms(tmp_path, no_weights):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = CodecModule(write_generator(tmp_path / "g32.pt"), distortions=DISTORTIONS, rate_lambda=0.5,
                             **SMALL)
    torch.manual_seed(0)
    module.eval()
    images = random_images(2)
    with torch.no_grad():
        loss, terms, decoded = module.objective(images)
        output = module.codec(images)
    bpp = output.layer_bits().mean(0) / (SIZE * SIZE)
    assert torch.allclose(terms["bpp"], bpp.sum()) and all(
        torch.allclose(terms[f"bpp_layer{k}"], bpp[k - 1]) for k in (1, 2, 3))
    assert len(decoded) == 3 and all(d.shape == images.shape for d in decoded)
    coarse = [torch.nn.functional.mse_loss(torch.nn.functional.interpolate(d, size=16, mode="area"),
                                           torch.nn.functional.interpolate(images, size=16, mode="area"))
              for d in decoded]
    assert torch.allclose(terms["layer1_mse_coarse"], coarse[0]) and torch.allclose(terms["layer2_mse_coarse"],
                                                                                    coarse[1])
    end = module.codec.layer_end(2)
    assert torch.allclose(terms["layer2_latent"],
                          torch.nn.functional.mse_loss(output.w_hat[1][:, :end], output.w[:, :end]))
    assert torch.allclose(terms["layer3_mse"], torch.nn.functional.mse_loss(decoded[2], images))
    expected = 0.5 * terms["bpp"] + coarse[0] + coarse[1] + terms["layer2_latent"] + terms["layer3_mse"]
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert set(terms) == {"bpp", "bpp_layer1", "bpp_layer2", "bpp_layer3", "layer1_mse_coarse", "layer2_mse_coarse",
                          "layer2_latent", "layer3_mse"}


# ---------------------------------------------------------------------------------------------- a short fit
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("codec_fit")
    empty = root / "no_weights"
    empty.mkdir()
    patch = pytest.MonkeyPatch()
    patch.setenv(ENV_VAR, str(empty))
    patch.setenv("TORCH_HOME", str(empty / "torch"))
    try:
        generator = write_generator(root / "g32.pt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = CodecModule(generator, distortions=DISTORTIONS, rate_lambda=0.01, lr=1e-3, image_log_every=10,
                                 export_path=str(root / "codec.pt"), **SMALL)
            initial = {k: v.detach().clone() for k, v in module.codec.state_dict().items()}
            data = SyntheticDataModule(generator, lengths=(80, 4, 4), batch_size=4, seed=0)
            checkpoint = ModelCheckpoint(dirpath=str(root / "checkpoints"))
            trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=20, logger=TensorBoardLogger(str(root)),
                                 callbacks=[checkpoint], enable_checkpointing=True, default_root_dir=str(root),
                                 limit_val_batches=1, val_check_interval=10, num_sanity_val_steps=0,
                                 enable_progress_bar=False, enable_model_summary=False)
            trainer.fit(module, data)
        yield dict(root=root, module=module, trainer=trainer, data=data, initial=initial, checkpoint=checkpoint,
                   generator=generator)
    finally:
        patch.undo()


@pytest.mark.slow
def test_fit_steps_and_parameters(fitted):
    module, trainer, initial = fitted["module"], fitted["trainer"], fitted["initial"]
    assert trainer.global_step == 20  # the aux steps do not count
    assert int(module.batches_seen) == 20
    state = module.codec.state_dict()
    for k in range(module.codec.n_layers):  # the aux optimiser fits the quantiles
        key = f"hyper_bottlenecks.{k}.quantiles"
        assert not torch.equal(state[key], initial[key]), key
    for key in ("synthesis.weight", "analysis.weight", "hyper_encoder.embed.weight", "hyper_decoder.embed.weight",
                "entropy_transformer.parameters_head.weight", "hyper_bottlenecks.0.matrices.0"):
        assert not torch.equal(state[key], initial[key]), key
    for key in [k for k in state if k.startswith("generator.")]:  # the prior is frozen
        assert torch.equal(state[key], initial[key]), key
    metrics = trainer.callback_metrics
    for key in ("train/loss", "train/bpp", "train/aux_loss", "train/layer1_mse_coarse", "train/layer2_latent",
                "train/layer3_mse"):
        assert torch.isfinite(metrics[key]), key
    assert list((fitted["root"] / "lightning_logs").rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_fit_validation_rates(fitted):
    module, trainer, data = fitted["module"], fitted["trainer"], fitted["data"]
    metrics = trainer.callback_metrics
    file_bpp = [metrics[f"val/layer{k}/bpp"].item() for k in (1, 2, 3)]
    likelihood_bpp = [metrics[f"val/layer{k}/bpp_likelihood"].item() for k in (1, 2, 3)]
    for k in (1, 2, 3):
        for name in ("psnr", "l2", "ssim"):
            assert torch.isfinite(metrics[f"val/layer{k}/{name}"]), (k, name)
    assert all(f >= lk - 1e-3 for f, lk in zip(file_bpp, likelihood_bpp)), (file_bpp, likelihood_bpp)
    assert file_bpp[0] < file_bpp[1] < file_bpp[2]
    assert likelihood_bpp[0] < likelihood_bpp[1] < likelihood_bpp[2]
    # the logged numbers are those of the last validation batch, coded again with the final codec
    images = next(iter(data.val_dataloader()))["image"]
    codec = module.codec.eval()
    with torch.no_grad():
        coded = code_batch(codec, images)
        bits = codec(images).layer_bits()
    for k in (1, 2, 3):
        sizes = [stream.truncate(k).to_bytes() for stream in coded.streams]
        expected = 8 * sum(map(len, sizes)) / len(sizes) / (SIZE * SIZE)
        assert file_bpp[k - 1] == pytest.approx(expected, rel=1e-6), k
        assert likelihood_bpp[k - 1] == pytest.approx(bits[:, :k].sum(1).mean().item() / (SIZE * SIZE), rel=1e-4)
        assert torch.equal(coded.sizes[k - 1], torch.tensor([len(s) for s in sizes]))


@pytest.mark.slow
def test_fit_export_and_checkpoints(fitted):
    module, root = fitted["module"], fitted["root"]
    exported = load_codec(root / "codec.pt")
    fingerprint = exported.fingerprint()
    assert module.codec.fingerprint() == fingerprint
    images = random_images(2, seed=3)
    stream = compress_images(exported, images)[1]
    reference = decompress_stream(exported, stream)

    path = fitted["checkpoint"].best_model_path
    assert path.endswith("step=20.ckpt"), path
    checkpoint = torch.load(path, weights_only=False)
    assert "codec_spec" in checkpoint and checkpoint["codec_spec"] == codec_spec(exported)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        restored = CodecModule.load_from_checkpoint(path)
    assert restored.codec.is_updated  # the CDF tables come back with the checkpoint
    assert restored.codec.fingerprint() == fingerprint
    assert torch.equal(decompress_stream(restored.codec.eval(), stream), reference)
    from_lightning = load_codec(path)
    assert from_lightning.fingerprint() == fingerprint
    assert torch.equal(decompress_stream(from_lightning, stream), reference)
    assert [s.to_bytes() for s in compress_images(from_lightning, images)] == \
        [s.to_bytes() for s in compress_images(exported, images)]


@pytest.mark.slow
def test_checkpoint_loads_after_validation(fitted):
    """BUG: CodecModule.on_validation_epoch_start (and on_test/predict_epoch_start) call codec.update() inside
    Lightning's inference mode, so the rebuilt CDF buffers are inference tensors; loading a checkpoint into the
    module afterwards (here ``trainer.test(ckpt_path=...)`` after ``trainer.validate``) fails with 'Inplace update
    to inference tensor outside InferenceMode is not allowed'."""
    path = fitted["checkpoint"].best_model_path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = CodecModule.load_from_checkpoint(path)
        trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                             limit_val_batches=1, limit_test_batches=1, enable_progress_bar=False,
                             enable_model_summary=False, default_root_dir=str(fitted["root"]))
        validated = trainer.validate(module, fitted["data"])[0]
        tested = trainer.test(module, fitted["data"], ckpt_path=path)[0]
    assert validated["val/layer3/bpp"] > validated["val/layer1/bpp"] > 0
    assert tested["test/layer3/bpp"] > tested["test/layer1/bpp"] > 0
    state = torch.load(path, weights_only=False)["state_dict"]
    module.load_state_dict(state)  # plain state loading after an evaluation as well
    assert module.codec.fingerprint() == load_codec(fitted["root"] / "codec.pt").fingerprint()
