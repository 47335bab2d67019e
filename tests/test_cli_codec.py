"""`compress` / `decompress` / `evaluate`: exact streams and pixels, printed sizes that match the files, one-line
errors for bad streams."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_lightning.cli import main
from stylegan_lightning.codec import (code_batch, compress_images, decompress_stream, load_codec,
                                      read_stream, save_codec, write_stream)
from stylegan_lightning.codec.classical import classical_round_trip
from stylegan_lightning.inversion import read_images
from stylegan_lightning.metrics import PSNR
from stylegan_lightning.utils import tensor_to_pil
from model_helpers import tiny_codec  # noqa: E402  (test helper beside this file)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "ffhq"
PIXELS = 32 * 32

pytestmark = pytest.mark.usefixtures("single_thread")


def _cli(*argv: str) -> tuple[int, str, str]:
    """Run the command in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def _table(text: str) -> list[list[str]]:
    """The cells of the first Markdown table printed in ``text`` (header row first, separator dropped)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return [row for row in rows if not set("".join(row)) <= {"-"}]


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _pixels(image: torch.Tensor) -> np.ndarray:
    return np.asarray(tensor_to_pil(image))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny random codec file, 4 sample faces (one in a sub-folder) and their streams written by `compress`."""
    root = tmp_path_factory.mktemp("codec_cli")
    # a fine quantisation step, so that an untrained encoder still gives distinct, non-zero symbols per image
    codec = tiny_codec(0, quantization_step=0.002)
    codec.update(force=True)
    codec_path = save_codec(root / "codec.pt", codec)
    images_dir = root / "faces"
    (images_dir / "sub").mkdir(parents=True)
    for name in ("00000.jpg", "00001.jpg", "00002.jpg"):
        shutil.copy(SAMPLES / name, images_dir / name)
    shutil.copy(SAMPLES / "00003.jpg", images_dir / "sub" / "00003.jpg")
    status, printed, _ = _cli("compress", "--codec", codec_path, images_dir, "--out", root / "streams",
                              "--device", "cpu")
    assert status == 0
    return {"root": root, "codec_path": codec_path, "codec": load_codec(codec_path), "images": images_dir,
            "streams": root / "streams", "printed": printed}


KEYS = ["00000", "00001", "00002", "sub/00003"]


def test_compress_streams_are_exact_and_printed_sizes_match_the_files(setup):
    streams = setup["streams"]
    files = [streams / f"{key}.sglc" for key in KEYS]
    assert all(f.is_file() for f in files) and len(list(streams.rglob("*.sglc"))) == 4
    _, images = read_images(setup["images"], 32)
    expected = compress_images(setup["codec"], images)  # the same batch the tool coded
    assert [f.read_bytes() for f in files] == [s.to_bytes() for s in expected]

    table = _table(setup["printed"])
    assert table[0] == ["image", "bytes 1", "bpp 1", "bytes 1-2", "bpp 1-2", "bytes 1-3", "bpp 1-3"]
    rows = {row[0]: row for row in table[1:]}
    assert set(rows) == {"00000.jpg", "00001.jpg", "00002.jpg", "sub/00003.jpg", "mean (4 images)"}
    all_sizes = []
    for key, path in zip(KEYS, files):
        row, sizes = rows[f"{key}.jpg"], read_stream(path).sizes()
        all_sizes.append(sizes)
        assert int(row[5]) == path.stat().st_size == sizes[2]
        assert [int(row[1]), int(row[3])] == sizes[:2] and sizes[0] < sizes[1] < sizes[2]
        for column, size in zip((2, 4, 6), sizes):
            assert float(row[column]) == pytest.approx(8 * size / PIXELS, rel=1e-3)
    mean_bpp = 8 * np.mean([s[2] for s in all_sizes]) / PIXELS
    assert float(rows["mean (4 images)"][6]) == pytest.approx(mean_bpp, rel=1e-3)
    assert "s per image" in setup["printed"]


def test_decompress_gives_the_pixels_of_decompress_stream(setup, tmp_path):
    codec, streams = setup["codec"], setup["streams"]
    status, printed, _ = _cli("decompress", "--codec", setup["codec_path"], streams, "--out", tmp_path / "png",
                              "--device", "cpu")
    assert status == 0 and "4 stream(s), 4 image(s) decoded" in printed
    decoded = {}
    for key in KEYS:
        stream = read_stream(streams / f"{key}.sglc")
        decoded[key] = decompress_stream(codec, stream)
        assert decoded[key].shape == (1, 3, 32, 32)
        assert np.array_equal(_png(tmp_path / "png" / f"{key}.png"), _pixels(decoded[key]))
    assert not np.array_equal(_pixels(decoded["00000"]), _pixels(decoded["00001"]))

    status, _, _ = _cli("decompress", "--codec", setup["codec_path"], streams / "00000.sglc", "--all-layers",
                        "--out", tmp_path / "all", "--device", "cpu")
    assert status == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == [f"00000_layer{k}.png" for k in (1, 2, 3)]
    stream = read_stream(streams / "00000.sglc")
    for k in (1, 2, 3):
        assert np.array_equal(_png(tmp_path / "all" / f"00000_layer{k}.png"),
                              _pixels(decompress_stream(codec, stream, k)))
    assert np.array_equal(_png(tmp_path / "all" / "00000_layer3.png"), _png(tmp_path / "png" / "00000.png"))


def test_layers_option_writes_and_decodes_the_layer_prefix(setup, tmp_path):
    codec, full = setup["codec"], read_stream(setup["streams"] / "00000.sglc")
    # two inputs given separately (an image file and another image file)
    status, printed, _ = _cli("compress", "--codec", setup["codec_path"], setup["images"] / "00000.jpg",
                              setup["images"] / "sub" / "00003.jpg", "--layers", "1", "--out", tmp_path / "l1",
                              "--device", "cpu")
    assert status == 0
    assert _table(printed)[0] == ["image", "bytes 1", "bpp 1"]
    base = tmp_path / "l1" / "00000.sglc"
    assert base.read_bytes() == full.truncate(1).to_bytes()
    assert base.stat().st_size == full.sizes()[0] < (setup["streams"] / "00000.sglc").stat().st_size
    assert (tmp_path / "l1" / "00003.sglc").is_file()

    layer1 = _pixels(decompress_stream(codec, full, 1))
    assert not np.array_equal(layer1, _pixels(decompress_stream(codec, full)))
    assert _cli("decompress", "--codec", setup["codec_path"], base, "--out", tmp_path / "a", "--device", "cpu")[0] == 0
    assert np.array_equal(_png(tmp_path / "a" / "00000.png"), layer1)
    # --layers 1 on a 3-layer stream decodes the same image; --layers above what a stream holds decodes what it has
    assert _cli("decompress", "--codec", setup["codec_path"], setup["streams"] / "00000.sglc", "--layers", "1",
                "--out", tmp_path / "b", "--device", "cpu")[0] == 0
    assert np.array_equal(_png(tmp_path / "b" / "00000.png"), layer1)
    status, printed, _ = _cli("decompress", "--codec", setup["codec_path"], base, "--layers", "3", "--out",
                              tmp_path / "c", "--device", "cpu")
    assert status == 0 and "| 1 of 1 " in printed
    assert np.array_equal(_png(tmp_path / "c" / "00000.png"), layer1)


def _other_model_stream(setup, path: Path) -> None:
    other = load_codec(setup["codec_path"])
    with torch.no_grad():
        other.synthesis.bias.add_(0.01)
    other.invalidate_fingerprint()
    _, images = read_images(setup["images"] / "00000.jpg", 32)
    write_stream(path, compress_images(other, images)[0])


def test_bad_streams_exit_2_with_one_line_naming_the_file(setup, tmp_path):
    good = (setup["streams"] / "00000.sglc").read_bytes()
    damaged = bytearray(good)
    damaged[-1] ^= 0x40  # a payload byte of layer 3
    bad = {"damaged": bytes(damaged), "truncated": good[:-5], "magic": b"JPEG" + good[4:]}
    for name, data in bad.items():
        (tmp_path / f"{name}.sglc").write_bytes(data)
    _other_model_stream(setup, tmp_path / "other.sglc")
    reasons = {"damaged": "layer 3 is damaged", "truncated": "truncated inside layer 3",
               "magic": "not a stylegan-lightning codec stream", "other": "another model"}
    for name, reason in reasons.items():
        path = tmp_path / f"{name}.sglc"
        out = tmp_path / f"out_{name}"
        # a good stream first: every stream is checked before anything is decoded, so nothing is written
        status, _, err = _cli("decompress", "--codec", setup["codec_path"], setup["streams"] / "00000.sglc", path,
                              "--out", out, "--device", "cpu")
        assert status == 2, name
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert str(path) in err and reason in err, err
        assert not out.exists()


def test_evaluate_table_csv_grid_and_jpeg_baseline(setup, tmp_path):
    csv_path, grid = tmp_path / "eval.csv", tmp_path / "grid.png"
    status, printed, _ = _cli("evaluate", "--codec", setup["codec_path"], "--images", setup["images"],
                              "--batch-size", "4", "--baselines", "jpeg", "--csv", csv_path, "--grid", grid,
                              "--device", "cpu")
    assert status == 0
    table = _table(printed)
    headers = table[0]
    assert headers[:3] == ["codec", "bpp (file)", "bpp (likelihood)"] and "psnr" in headers
    assert headers[-2:] == ["encode s/img", "decode s/img"]
    rows = {row[0]: dict(zip(headers, row)) for row in table[1:]}
    assert list(rows) == ["basic (layer 1)", "middle (layers 1-2)", "enhanced (layers 1-3)", "jpeg (quality 1)"]
    assert rows["jpeg (quality 1)"]["bpp (likelihood)"] == "-"

    sizes = [(setup["streams"] / f"{key}.sglc").stat().st_size for key in KEYS]
    expected_bpp = 8 * np.mean(sizes) / PIXELS
    assert float(rows["enhanced (layers 1-3)"]["bpp (file)"]) == pytest.approx(expected_bpp, rel=1e-3)
    with open(csv_path, newline="") as handle:
        records = {r["codec"]: r for r in csv.DictReader(handle)}
    assert float(records["enhanced (layers 1-3)"]["bpp"]) == pytest.approx(expected_bpp, rel=1e-6)
    assert records["jpeg (quality 1)"]["bpp_likelihood"] == "" and records["basic (layer 1)"]["layers"] == "1"

    _, images = read_images(setup["images"], 32)
    encoder_calls = []
    hook = setup["codec"].encoder.register_forward_hook(lambda *_: encoder_calls.append(1))
    try:
        coded = code_batch(setup["codec"], images)  # the evaluation CodecModule's validation runs
    finally:
        hook.remove()
    # the streams and the likelihoods share one encoder pass per image (each image is coded alone)
    assert len(encoder_calls) == len(images)
    assert [s.to_bytes() for s in coded.streams] == [s.to_bytes() for s in compress_images(setup["codec"], images)]
    with torch.no_grad():
        direct = setup["codec"](images, setup["codec"].encode_tokens_alone(images)).likelihoods
    for k, layer in enumerate(direct):
        assert all(torch.equal(a, b) for a, b in zip(coded.likelihoods[k][-len(layer):], layer.values()))
    for k, label in enumerate(["basic (layer 1)", "middle (layers 1-2)", "enhanced (layers 1-3)"], start=1):
        assert float(records[label]["bpp"]) == pytest.approx(8 * coded.sizes[k - 1].double().mean() / PIXELS)
        psnr = PSNR()(coded.decoded[k - 1], images).item()
        assert float(records[label]["psnr"]) == pytest.approx(psnr, rel=1e-5)
    _, jpeg_sizes = classical_round_trip(images, "jpeg")
    assert float(records["jpeg (quality 1)"]["bpp"]) == pytest.approx(8 * np.mean(jpeg_sizes) / PIXELS, rel=1e-6)

    assert Image.open(grid).size == (2 + 4 * 34, 2 + 4 * 34)  # 4 images x (input + 3 layers), 32 px, 2 px padding
    tiles = _png(grid)
    assert np.array_equal(tiles[2:34, 2 + 34:34 + 34], _pixels(coded.decoded[0][0]))  # image 1, layer 1


def test_evaluate_attribute_accuracy_with_the_demo_classifier(setup, tmp_path):
    from stylegan_lightning.editing.classifier import load_attribute_classifier
    from stylegan_lightning.metrics import AttributeAccuracy

    classifier_path = Path(__file__).resolve().parents[1] / "data" / "demo" / "classifier.pt"
    csv_path = tmp_path / "eval.csv"
    status, printed, _ = _cli("evaluate", "--codec", setup["codec_path"], "--images", setup["images"], "--classifier",
                              classifier_path, "--csv", csv_path, "--device", "cpu")
    assert status == 0 and "attribute_accuracy" in _table(printed)[0]
    with open(csv_path, newline="") as handle:
        records = {r["codec"]: r for r in csv.DictReader(handle)}
    _, images = read_images(setup["images"], 32)
    coded = code_batch(setup["codec"], images)
    for k, label in enumerate(["basic (layer 1)", "middle (layers 1-2)", "enhanced (layers 1-3)"], start=1):
        metric = AttributeAccuracy(load_attribute_classifier(classifier_path))
        metric.update(coded.decoded[k - 1], images)
        assert float(records[label]["attribute_accuracy"]) == pytest.approx(float(metric.compute()), abs=1e-6)
    missing = tmp_path / "no-classifier.pt"
    status, _, error = _cli("evaluate", "--codec", setup["codec_path"], "--images", setup["images"], "--classifier",
                            missing, "--device", "cpu")
    assert status != 0 and "no-classifier.pt" in error and error.strip().count("\n") == 0


def test_missing_files_and_bad_options_give_one_line(setup, tmp_path):
    cases = [
        (["compress", "--codec", tmp_path / "missing.pt", setup["images"]], "missing.pt"),
        (["compress", setup["images"]], "--codec is required"),
        (["compress", "--codec", setup["codec_path"], tmp_path / "nowhere"], "nowhere"),
        (["compress", "--codec", setup["codec_path"], setup["images"], "--layers", "4"], "--layers must be in 1..3"),
        (["compress", "--codec", setup["codec_path"], setup["images"] / "00000.jpg", setup["images"] / "00000.jpg",
          "--out", tmp_path / "dup"], "would both be written"),
        (["decompress", "--codec", setup["codec_path"], tmp_path / "none.sglc"], "none.sglc"),
        (["evaluate", "--codec", tmp_path / "missing.pt", "--images", setup["images"]], "missing.pt"),
        (["evaluate", "--codec", setup["codec_path"], "--images", setup["images"], "--baselines", "gif"], "gif"),
    ]
    for argv, needle in cases:
        status, out, err = _cli(*argv, "--device", "cpu")
        assert status == 2, argv
        assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err, err


def test_codec_tools_read_a_config_file(setup, tmp_path):
    config = tmp_path / "codec.yaml"
    config.write_text(
        "trainer: {max_steps: 1}\n"
        f"decompress:\n  codec: {setup['codec_path']}\n  streams: [{setup['streams'] / 'sub'}]\n"
        f"  out: {tmp_path / 'cfg'}\n  layers: 2\n  device: cpu\n")
    assert _cli("decompress", "--config", config)[0] == 0
    stream = read_stream(setup["streams"] / "sub" / "00003.sglc")
    assert np.array_equal(_png(tmp_path / "cfg" / "00003.png"),
                          _pixels(decompress_stream(setup["codec"], stream, 2)))
    assert _cli("decompress", "--config", config, "--all-layers")[0] == 0  # the command line adds to the file
    assert sorted(p.name for p in (tmp_path / "cfg").iterdir()) == ["00003.png", "00003_layer1.png",
                                                                   "00003_layer2.png"]


def test_photos_are_aligned_coded_and_pasted_back(setup, tmp_path):
    """``compress --align`` codes the face of an ordinary photo and records where it was; ``decompress
    --paste-back`` writes the decoded face back into the photo (also into another photo given with --photo)."""
    face = Image.open(SAMPLES / "00002.jpg").convert("RGB")
    photo = Image.new("RGB", (480, 360), (90, 120, 150))
    photo.paste(face.rotate(-10, Image.Resampling.BICUBIC), (150, 60))
    photo.save(tmp_path / "street.png")
    status, printed, _ = _cli("compress", "--codec", setup["codec_path"], tmp_path / "street.png", "--align",
                              "--out", tmp_path / "streams", "--device", "cpu")
    assert status == 0 and "street_face0" in printed
    assert json.loads((tmp_path / "streams" / "street_face0.json").read_text())["photo_size"] == [480, 360]
    status, printed, _ = _cli("decompress", "--codec", setup["codec_path"], tmp_path / "streams" / "street_face0.sglc",
                              "--paste-back", "--out", tmp_path / "png", "--device", "cpu")
    assert status == 0
    pasted = np.asarray(Image.open(tmp_path / "png" / "street_face0_pasted.png"), np.int16)
    original = np.asarray(photo, np.int16)
    assert pasted.shape == original.shape and np.array_equal(pasted[:30, :100], original[:30, :100])
    assert np.abs(pasted[150:210, 250:310] - original[150:210, 250:310]).mean() > 3  # the decoded face
    status, _, err = _cli("decompress", "--codec", setup["codec_path"], setup["streams"], "--paste-back",
                          "--out", tmp_path / "x", "--device", "cpu")
    assert status == 2 and "written by `compress --align`" in err
    status, printed, _ = _cli("evaluate", "--codec", setup["codec_path"], "--images", tmp_path / "street.png",
                              "--align", "--grid", tmp_path / "grid.png", "--device", "cpu")
    assert status == 0 and Image.open(tmp_path / "grid.png").size[1] == 2 + 34  # one aligned face, one row
