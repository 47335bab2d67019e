"""Hostile inputs across the toolkit: files that try to run code when unpickled, NaN / Inf inputs, bad images.

Every file loader goes through ``torch.load(weights_only=True)`` (:func:`safe_torch_load`), an allow-list unpickler
(NVlabs ``.pkl``) or ``np.load(allow_pickle=False)``; a file whose unpickling would call a function is refused with
:class:`CheckpointError` and the function never runs.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan_lightning.serialization import CheckpointError

pytestmark = pytest.mark.usefixtures("single_thread")


class _Payload:
    """Unpickling this calls ``Path.touch(marker)``: the stand-in for any code execution."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _evil_files(root: Path) -> dict[str, Path]:
    marker = root / "executed"
    payload = {"state_dict": {"weight": torch.zeros(1)}, "evil": _Payload(marker)}
    files = {"torch-zip": root / "evil.pt", "torch-legacy": root / "legacy.pt", "plain-pickle": root / "evil.pkl",
             "numpy": root / "evil.npy"}
    torch.save(payload, files["torch-zip"])
    torch.save(payload, files["torch-legacy"], _use_new_zipfile_serialization=False)
    files["plain-pickle"].write_bytes(pickle.dumps(payload))
    np.save(files["numpy"], np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    assert zipfile.is_zipfile(files["torch-zip"]) and not marker.exists()
    return files


def _loaders():
    from stylegan_lightning.codec import load_codec
    from stylegan_lightning.data import load_latent_attributes
    from stylegan_lightning.editing import load_attribute_classifier, load_direction, load_pca
    from stylegan_lightning.encoders import load_encoder
    from stylegan_lightning.gradstyle import load_gradstyle
    from stylegan_lightning.hyperstyle import load_hyperstyle, load_hyperstyle_module_checkpoint
    from stylegan_lightning.inversion import load_latents
    from stylegan_lightning.nets.identity import build_identity_encoder
    from stylegan_lightning.nets.parsing import load_bisenet
    from stylegan_lightning.styleae import load_styleae
    from stylegan_lightning.stylegan2 import FrozenGenerator, load_discriminator, load_generator

    return {
        "generator": load_generator, "discriminator": load_discriminator, "frozen generator": FrozenGenerator.from_file,
        "codec": load_codec, "encoder (pSp / e4e / W)": load_encoder, "GradStyle checkpoint": load_gradstyle,
        "HyperStyle file": load_hyperstyle, "HyperStyle checkpoint": load_hyperstyle_module_checkpoint,
        "StyleAE": load_styleae, "attribute classifier": load_attribute_classifier, "direction": load_direction,
        "GANSpace PCA": load_pca, "latents": load_latents, "latent attributes": load_latent_attributes,
        "identity network": lambda path: build_identity_encoder("mobilefacenet", path),
        "parsing network": load_bisenet,
    }


@pytest.mark.parametrize("name", sorted(_loaders()))
def test_files_that_would_run_code_are_refused_by_every_loader(name, tmp_path):
    loader = _loaders()[name]
    files = _evil_files(tmp_path)
    for kind, path in files.items():
        if kind == "numpy" and name not in ("direction", "GANSpace PCA"):
            continue
        with pytest.raises(CheckpointError):
            loader(str(path))
        assert not (tmp_path / "executed").exists(), (name, kind)


def test_lightning_resume_refuses_a_checkpoint_that_would_run_code(tmp_path, tiny_generator, capsys):
    """``fit --ckpt_path`` goes through Lightning's loader (``torch.load(weights_only=True)`` for local files): the
    file is refused with a one-line error and nothing runs."""
    from stylegan_lightning.cli import main
    from stylegan_lightning.data import LatentAttributes
    from stylegan_lightning.stylegan2 import save_generator

    files = _evil_files(tmp_path)
    generator = save_generator(tmp_path / "g.pt", tiny_generator(size=16, style_dim=16))
    pairs = LatentAttributes(torch.randn(40, 16), torch.rand(40, 1), ["a"]).save(tmp_path / "pairs.pt")
    status = main(["fit", "--model", "stylegan_lightning.styleae.StyleAEModule", "--model.generator", str(generator),
                   "--model.attribute_names", "[a]", "--data", "stylegan_lightning.data.LatentAttributeDataModule",
                   "--data.latents", str(pairs), "--data.holdout", "8", "--trainer.max_steps", "1",
                   "--trainer.accelerator", "cpu", "--trainer.logger", "false", "--trainer.enable_progress_bar",
                   "false", f"--trainer.default_root_dir={tmp_path}", "--ckpt_path", str(files["torch-zip"])])
    err = capsys.readouterr().err
    assert status == 2 and "was not loaded" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "executed").exists()


def test_nan_and_inf_inputs_raise(tiny_generator):
    """Codes and images with NaN / Inf are refused by the generator, the encoders' inversion, the codec and
    StyleAE instead of flowing through."""
    from stylegan_lightning.codec import compress_images
    from stylegan_lightning.encoders import build_inverter
    from stylegan_lightning.styleae import StyleAE
    from stylegan_lightning.stylegan2 import FrozenGenerator
    from model_helpers import tiny_codec

    frozen = FrozenGenerator(tiny_generator(size=32, style_dim=16), n_mean_latent=64)
    inverter = build_inverter("w", frozen, input_size=32, blocks=(1, 1, 1, 1), channels=(16, 16, 16, 16))
    codec = tiny_codec(0)
    codec.update(force=True)
    for bad in (float("nan"), float("inf")):
        w = torch.zeros(2, 16)
        w[1, 3] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            frozen(w)
        with pytest.raises(ValueError, match="NaN or Inf"):
            StyleAE(16, ["a"]).encode(w)
        images = torch.zeros(1, 3, 32, 32)
        images[0, 1, 5, 5] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            inverter.invert(images)
        with pytest.raises(ValueError, match="NaN or infinite"):
            compress_images(codec, images)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header announces width x height pixels (and no pixel data): a decompression-bomb probe."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


def test_hostile_images_through_the_image_reader(tmp_path):
    """The reader of every tool (invert, edit, compress, evaluate): bad files raise BadImageError naming the file;
    grayscale, RGBA and off-size images become RGB at the requested size."""
    from PIL import Image

    from stylegan_lightning.data import BadImageError
    from stylegan_lightning.inversion import read_images

    good = tmp_path / "good.png"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(good)
    cases = {"empty.png": b"", "text.png": b"not an image at all", "truncated.png": good.read_bytes()[:60],
             "bomb.png": _png_header_only(40000, 40000)}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(BadImageError, match=name):
            read_images(tmp_path / name, 16)
    Image.new("L", (16, 16), 128).save(tmp_path / "gray.png")
    rgba = Image.new("RGBA", (16, 16), (0, 0, 255, 0))
    rgba.save(tmp_path / "rgba.png")
    for name in ("gray.png", "rgba.png", "good.png"):
        keys, images = read_images(tmp_path / name, 16)
        assert images.shape == (1, 3, 16, 16) and torch.isfinite(images).all()
    assert torch.allclose(read_images(tmp_path / "rgba.png", 16)[1], torch.ones(1, 3, 16, 16))  # on white
    assert torch.allclose(read_images(tmp_path / "gray.png", 16)[1][0, :, 0, 0], torch.full((3,), 128 / 127.5 - 1), atol=1e-6)
