"""`invert` and `edit`: exact latents, edits that change what they should, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_lightning.cli import main
from stylegan_lightning.editing import Direction, fit_pca, sample_latents
from stylegan_lightning.encoders import build_inverter, save_encoder_checkpoint
from stylegan_lightning.inversion import load_latents, read_images, save_latents
from stylegan_lightning.serialization import CheckpointError
from stylegan_lightning.stylegan2 import FrozenGenerator, save_generator

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "ffhq"


@pytest.fixture
def bundle_files(tmp_path, tiny_generator):
    generator_path = save_generator(tmp_path / "g.pt", tiny_generator(size=32, style_dim=32, channel_max=32))
    frozen = FrozenGenerator.from_file(generator_path)
    torch.manual_seed(0)
    inverter = build_inverter("e4e", frozen, 32, (1, 1, 1, 1), (16, 16, 32, 32)).eval()
    checkpoint = save_encoder_checkpoint(tmp_path / "e4e.pt", inverter)
    return inverter, str(checkpoint), str(generator_path)


def test_invert_writes_exact_latents(tmp_path, bundle_files, capsys):
    inverter, checkpoint, _ = bundle_files
    out = tmp_path / "inv"
    assert main(["invert", "--checkpoint", checkpoint, "--images", str(SAMPLES), "--out", str(out), "--device",
                 "cpu"]) == 0
    data = load_latents(out / "latents.pt")
    keys, images = read_images(SAMPLES, 32)
    assert data["keys"] == keys and len(keys) == 6
    with torch.no_grad():
        expected = inverter.encode(images)
    assert torch.allclose(data["w_plus"], expected, atol=1e-4)  # batches of 4 + 2 vs 6
    assert len(list((out / "reconstructions").glob("*.png"))) == 6
    assert "mean PSNR" in capsys.readouterr().out


def test_edit_direction_and_ganspace(tmp_path, bundle_files):
    inverter, checkpoint, generator_path = bundle_files
    frozen = inverter.decoder
    w_plus = frozen.to_w_plus(frozen.sample_w(2, generator=torch.Generator().manual_seed(3)))
    save_latents(tmp_path / "lat.pt", ["a.png", "b.png"], w_plus, "encoder", checkpoint, frozen.generator.config)
    Direction(torch.randn(32), name="d").save(tmp_path / "d.pt")
    out = tmp_path / "edit"
    assert main(["edit", "--latents", str(tmp_path / "lat.pt"), "--generator", generator_path, "--direction",
                 str(tmp_path / "d.pt"), "--strengths", "-2", "0", "2", "--out", str(out), "--device", "cpu"]) == 0
    strip = np.asarray(Image.open(out / "strips" / "a.png")).astype(np.int16)
    assert strip.shape == (2 + 34, 2 + 3 * 34, 3)  # 1 row x 3 strengths of 32 px, 2 px padding
    tiles = [strip[2:34, 2 + 34 * i: 34 + 34 * i] for i in range(3)]
    with torch.no_grad():
        plain = ((frozen(w_plus[:1]).clamp(-1, 1)[0] + 1) * 127.5).round().permute(1, 2, 0).numpy()
    assert np.abs(tiles[1] - plain).max() <= 1  # strength 0 is the plain decode
    assert np.abs(tiles[0] - tiles[1]).mean() > 1 and np.abs(tiles[2] - tiles[1]).mean() > 1
    fit_pca(sample_latents(frozen, 500), 4).save(tmp_path / "pca.pt")
    assert main(["edit", "--images", str(SAMPLES / "00000.jpg"), "--checkpoint", checkpoint, "--ganspace",
                 str(tmp_path / "pca.pt"), "--component", "0", "--end", "4", "--out", str(tmp_path / "g"),
                 "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "g" / "edit_grid.png").size == (2 + 5 * 34, 2 + 34)


def test_bad_edit_requests_and_latents(tmp_path, bundle_files, capsys):
    _, checkpoint, generator_path = bundle_files
    bad = tmp_path / "nan.pt"
    torch.save({"w_plus": torch.full((1, 8, 32), float("nan"))}, bad)
    with pytest.raises(CheckpointError, match="NaN"):
        load_latents(bad)
    torch.save(torch.zeros(1, 8, 32), tmp_path / "ok.pt")
    assert main(["edit", "--latents", str(tmp_path / "ok.pt"), "--generator", generator_path, "--out",
                 str(tmp_path / "x")]) == 2
    assert "exactly one of --direction or --ganspace" in capsys.readouterr().err
    assert main(["edit", "--images", str(SAMPLES), "--direction", "d.pt"]) == 2
    assert "--images needs --checkpoint" in capsys.readouterr().err
    assert main(["invert", "--checkpoint", checkpoint, "--method", "nope", "--images", str(SAMPLES)]) == 2
    assert "unknown inversion method" in capsys.readouterr().err


def test_invert_and_edit_ordinary_photos_with_align_and_paste_back(tmp_path, bundle_files, capsys):
    """A face turned and placed in a larger photo: ``invert --align`` records where it was, ``edit --paste-back``
    writes each edited face back into the photo at the photo's resolution; pixels away from the face keep the
    photo's values."""
    _, checkpoint, generator_path = bundle_files
    face = Image.open(SAMPLES / "00001.jpg").convert("RGB")
    photo = Image.new("RGB", (520, 400), (90, 120, 150))
    photo.paste(face.rotate(12, Image.Resampling.BICUBIC), (200, 80))
    photo.save(tmp_path / "holiday.jpg", quality=95)
    assert main(["invert", "--checkpoint", checkpoint, "--images", str(tmp_path / "holiday.jpg"), "--align",
                 "--out", str(tmp_path / "inv"), "--device", "cpu"]) == 0
    data = load_latents(tmp_path / "inv" / "latents.pt")
    assert data["keys"] == ["holiday_face0"] and data["alignment"]["holiday_face0"]["photo_size"] == [520, 400]
    Direction(torch.randn(32), name="d").save(tmp_path / "d.pt")
    assert main(["edit", "--latents", str(tmp_path / "inv" / "latents.pt"), "--generator", generator_path,
                 "--direction", str(tmp_path / "d.pt"), "--strengths", "-2", "2", "--paste-back",
                 "--out", str(tmp_path / "edit"), "--device", "cpu"]) == 0
    pasted = sorted((tmp_path / "edit" / "pasted").glob("*.png"))
    assert [p.name for p in pasted] == ["holiday_face0_-2.png", "holiday_face0_2.png"]
    original = np.asarray(Image.open(tmp_path / "holiday.jpg"), np.int16)
    result = np.asarray(Image.open(pasted[0]), np.int16)
    assert result.shape == original.shape
    assert np.array_equal(result[:40, :120], original[:40, :120])  # far from the face: the photo itself
    centre = result[170:230, 300:360]
    assert np.abs(centre - original[170:230, 300:360]).mean() > 5  # the face: the edit
    assert main(["edit", "--images", str(tmp_path / "holiday.jpg"), "--checkpoint", checkpoint, "--direction",
                 str(tmp_path / "d.pt"), "--paste-back", "--out", str(tmp_path / "e2")]) == 2
    assert "--paste-back with --images needs --align" in capsys.readouterr().err
