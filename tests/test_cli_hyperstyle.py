"""`invert` / `edit` with `--method hyperstyle`: outputs equal the model's own, `--iters` / `--w-encoder`, one-line
errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_lightning.cli import main
from stylegan_lightning.editing import Direction
from stylegan_lightning.encoders import SMALL_BLOCKS, SMALL_CHANNELS, build_inverter
from stylegan_lightning.hyperstyle import build_hyperstyle, save_hyperstyle
from stylegan_lightning.inversion import inversion_method_options, load_inversion_model, load_latents, read_images
from stylegan_lightning.stylegan2 import FrozenGenerator, Generator

pytestmark = pytest.mark.usefixtures("single_thread")

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "ffhq"


@pytest.fixture(scope="module")
def hyperstyle_files(tmp_path_factory):
    """A tiny HyperStyle (32 px generator, small W-encoder) saved in the official layout with its W-encoder file."""
    folder = tmp_path_factory.mktemp("hyperstyle")
    torch.manual_seed(0)
    generator = FrozenGenerator(Generator(32, style_dim=32, n_mlp=2, channel_max=16).eval())
    encoder = build_inverter("w", generator, input_size=32, blocks=SMALL_BLOCKS, channels=SMALL_CHANNELS).encoder
    torch.manual_seed(1)
    model = build_hyperstyle(encoder, generator, layers_to_tune=[0, 2, 3, 5, 6, 8, 9, 10], n_iters=3, input_size=32,
                             shared_layers=[0, 2, 3]).eval()
    checkpoint = save_hyperstyle(folder / "hyperstyle.pt", model, w_encoder_path=folder / "w_encoder.pt")
    return model, str(checkpoint), str(folder / "w_encoder.pt")


def to_pixels(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [-1, 1] -> [H, W, 3] rounded 0..255 values (what the PNG holds)."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy().astype(np.int16)


def test_invert_equals_model(tmp_path, hyperstyle_files, capsys):
    model, checkpoint, _ = hyperstyle_files
    out = tmp_path / "inv"
    assert main(["invert", "--method", "hyperstyle", "--checkpoint", checkpoint, "--images", str(SAMPLES),
                 "--iters", "2", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"\| refinement iterations +\| 2 +\|", printed)
    keys, images = read_images(SAMPLES, 32)
    with torch.no_grad():
        w_plus, reconstruction = model.invert(images, n_iters=2)
        initial = model.run(images, n_iters=0).reconstruction
    data = load_latents(out / "latents.pt")
    assert data["keys"] == keys and len(keys) == 6 and data["method"] == "hyperstyle"
    assert data["w_plus"].shape == (6, 8, 32)
    torch.testing.assert_close(data["w_plus"], w_plus, atol=1e-4, rtol=0)  # other batch sizes
    for key, expected, plain in zip(keys, reconstruction, initial):
        saved = np.asarray(Image.open(out / "reconstructions" / Path(key).with_suffix(".png"))).astype(np.int16)
        assert np.abs(saved - to_pixels(expected)).max() <= 1
        assert np.abs(saved - to_pixels(plain)).mean() > 1  # the refinement steps did change the image
    # --iters changes the number of steps: the default (the file's 3) gives other images than 2
    assert main(["invert", "--method", "hyperstyle", "--checkpoint", checkpoint, "--images",
                 str(SAMPLES / "00000.jpg"), "--out", str(tmp_path / "default"), "--device", "cpu"]) == 0
    with torch.no_grad():
        three = model.invert(images[:1], n_iters=3)[1][0]
    saved = np.asarray(Image.open(tmp_path / "default" / "reconstructions" / "00000.png")).astype(np.int16)
    assert np.abs(saved - to_pixels(three)).max() <= 1
    assert np.abs(to_pixels(three) - to_pixels(reconstruction[0])).mean() > 0.5


def test_iters_and_method_errors(tmp_path, hyperstyle_files, capsys):
    _, checkpoint, w_encoder = hyperstyle_files
    base = ["invert", "--method", "hyperstyle", "--checkpoint", checkpoint, "--images", str(SAMPLES),
            "--out", str(tmp_path / "x"), "--device", "cpu"]
    for value in ("0", "-2"):
        assert main([*base, "--iters", value]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--iters: must be >= 1, got {value}" in err
    # the W-encoder file is itself a valid `encoder` checkpoint: --iters / --w-encoder mean nothing to that method
    encoder = ["invert", "--checkpoint", w_encoder, "--images", str(SAMPLES), "--out", str(tmp_path / "y"),
               "--device", "cpu"]
    assert main([*encoder, "--iters", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--iters is not used by --method encoder (methods that use it: hyperstyle)" in err
    assert main([*encoder, "--method", "gradstyle", "--w-encoder", w_encoder]) == 2
    assert "--w-encoder is not used by --method gradstyle" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert main(["edit", "--latents", "l.pt", "--generator", "g.pt", "--direction", "d.pt", "--iters", "2"]) == 2
    assert "--iters apply to inverting --images" in capsys.readouterr().err


def test_loader_options(hyperstyle_files):
    model, checkpoint, w_encoder = hyperstyle_files
    assert inversion_method_options("hyperstyle") == ["w_encoder", "n_iters"]
    assert inversion_method_options("encoder") == [] and inversion_method_options("gradstyle") == []
    assert load_inversion_model(checkpoint, "hyperstyle").n_iters == 3
    loaded = load_inversion_model(checkpoint, "hyperstyle", n_iters=4, w_encoder=w_encoder)
    assert loaded.n_iters == 4 and not loaded.training
    assert load_inversion_model(w_encoder, "encoder", n_iters=None, w_encoder=None).decoder.size == 32
    with pytest.raises(TypeError, match="takes no option\\(s\\) \\['n_iters'\\]"):
        load_inversion_model(w_encoder, "encoder", n_iters=2)


def test_edit_strength_zero_is_the_reconstruction(tmp_path, hyperstyle_files):
    model, checkpoint, _ = hyperstyle_files
    torch.manual_seed(5)
    Direction(torch.randn(32), name="d").save(tmp_path / "d.pt")
    out = tmp_path / "edit"
    image = SAMPLES / "00001.jpg"
    assert main(["edit", "--method", "hyperstyle", "--images", str(image), "--checkpoint", checkpoint, "--iters", "2",
                 "--direction", str(tmp_path / "d.pt"), "--strengths", "-2", "0", "2", "--out", str(out),
                 "--device", "cpu"]) == 0
    strip = np.asarray(Image.open(out / "strips" / "00001.png")).astype(np.int16)
    assert strip.shape == (2 + 34, 2 + 3 * 34, 3)  # 1 row x 3 strengths of 32 px, 2 px padding
    tiles = [strip[2:34, 2 + 34 * i: 34 + 34 * i] for i in range(3)]
    _, images = read_images(image, 32)
    with torch.no_grad():
        reconstruction = model.invert(images, n_iters=2)[1][0]
    assert np.abs(tiles[1] - to_pixels(reconstruction)).max() <= 1
    assert np.abs(tiles[0] - tiles[1]).mean() > 1 and np.abs(tiles[2] - tiles[1]).mean() > 1


def test_w_encoder_option(tmp_path, hyperstyle_files, capsys):
    model, checkpoint, w_encoder = hyperstyle_files
    base = ["invert", "--method", "hyperstyle", "--checkpoint", checkpoint, "--images", str(SAMPLES / "00002.jpg"),
            "--iters", "1", "--device", "cpu"]
    missing = tmp_path / "nowhere" / "faces_w_encoder.pt"
    assert main([*base, "--w-encoder", str(missing), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and "W-encoder" in err
    # a file whose opts point at a W-encoder that is gone: the error names it; --w-encoder supplies it
    moved = tmp_path / "hyperstyle_moved_encoder.pt"
    raw = torch.load(checkpoint, weights_only=True)
    torch.save({**raw, "opts": {**raw["opts"], "w_encoder_checkpoint_path": str(missing)}}, moved)
    base[4] = str(moved)
    assert main([*base, "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "faces_w_encoder.pt" in err and "initial W code" in err
    assert not (tmp_path / "b").exists()
    assert main([*base, "--w-encoder", w_encoder, "--out", str(tmp_path / "c")]) == 0
    _, images = read_images(SAMPLES / "00002.jpg", 32)
    with torch.no_grad():
        w_plus = model.invert(images, n_iters=1)[0]
    torch.testing.assert_close(load_latents(tmp_path / "c" / "latents.pt")["w_plus"], w_plus, atol=1e-4, rtol=0)
