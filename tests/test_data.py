"""Image sources and FaceImageDataset: folder / nested / zip equivalence, normalisation, resizing, flips, colour
modes, bad files (BadImageError naming the file, also through DataLoader workers) and skip_bad."""

from __future__ import annotations

import gc
import io
import logging
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from stylegan_lightning.data import BadImageError, DatasetError, FaceImageDataset, FolderSource, ZipSource, open_source

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def save(path: Path, image: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def sample(name: str) -> Image.Image:
    return Image.open(SAMPLES / "celebahq" / name).convert("RGB")


def expected_tensor(image: Image.Image, resolution: int) -> torch.Tensor:
    """What the dataset must return, computed independently (Pillow LANCZOS + (v / 127.5 - 1))."""
    array = np.asarray(image.convert("RGB").resize((resolution, resolution), Image.Resampling.LANCZOS), np.float64)
    return torch.from_numpy(array / 127.5 - 1.0).permute(2, 0, 1).float()


# ---------------------------------------------------------------------------------------------- sources
def test_folder_nested_folder_and_zip_give_identical_tensors(tmp_path):
    pictures = {"a.png": sample("896.jpg"), "b.webp": sample("898.jpg"), "c.bmp": sample("1260.jpg")}
    flat, nested = tmp_path / "flat", tmp_path / "nested"
    for name, picture in pictures.items():
        options = {"lossless": True} if name.endswith(".webp") else {}
        save(flat / name, picture, **options)
    save(nested / "x" / "y" / "a.png", pictures["a.png"])
    save(nested / "x" / "b.webp", pictures["b.webp"], lossless=True)
    save(nested / "c.bmp", pictures["c.bmp"])
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(nested.rglob("*.*")):
            handle.write(path, path.relative_to(nested).as_posix())
    (flat / "notes.txt").write_text("not an image")
    save(flat / ".hidden.png", pictures["a.png"])

    datasets = [FaceImageDataset(root, resolution=64) for root in (flat, nested, archive)]
    assert datasets[0].keys == ["a.png", "b.webp", "c.bmp"]
    assert datasets[1].keys == datasets[2].keys == ["c.bmp", "x/b.webp", "x/y/a.png"]  # sorted relative paths
    by_name = [{Path(item["key"]).name: item["image"] for item in ds} for ds in datasets]
    for name, picture in pictures.items():
        reference = expected_tensor(picture, 64)
        for tensors in by_name:
            assert torch.allclose(tensors[name], reference, atol=1e-6)
        assert torch.equal(by_name[0][name], by_name[1][name]) and torch.equal(by_name[1][name], by_name[2][name])


def test_open_source_errors_and_extensions(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_source(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no images"):
        open_source(tmp_path)
    save(tmp_path / "UPPER.JPG", Image.new("RGB", (8, 8)))
    save(tmp_path / "face_mask.png", Image.new("L", (8, 8)))  # CelebAMask-HQ masks are not faces
    assert FolderSource(tmp_path).keys == ["UPPER.JPG"]
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="bad.zip"):
        open_source(tmp_path / "bad.zip")


def test_zip_handle_is_per_process_and_not_pickled(tmp_path):
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("1.png", (SAMPLES / "celebamask-hq" / "1_mask.png").read_bytes())
    source = ZipSource(archive)
    assert source._archive is None  # opened lazily
    data = source.read("1.png")
    assert source._archive is not None
    clone = pickle.loads(pickle.dumps(source))
    assert clone._archive is None and clone.read("1.png") == data
    source._pid = -1  # as seen by a forked child: the inherited handle is not reused
    old = source._archive
    assert source.read("1.png") == data and source._archive is not old


# ---------------------------------------------------------------------------------------------- pixels
def test_normalisation_is_exact(tmp_path):
    save(tmp_path / "white.png", Image.new("RGB", (40, 40), (255, 255, 255)))
    save(tmp_path / "black.png", Image.new("RGB", (40, 40), (0, 0, 0)))
    save(tmp_path / "mid.png", Image.new("RGB", (32, 32), (128, 64, 1)))
    ds = FaceImageDataset(tmp_path, resolution=32)
    images = {item["key"]: item["image"] for item in ds}
    assert images["white.png"].shape == (3, 32, 32) and images["white.png"].dtype == torch.float32
    assert torch.all(images["white.png"] == 1.0) and torch.all(images["black.png"] == -1.0)
    expected = torch.tensor([128 / 127.5 - 1, 64 / 127.5 - 1, 1 / 127.5 - 1]).view(3, 1, 1).expand(3, 32, 32)
    assert torch.allclose(images["mid.png"], expected, atol=1e-7)


def test_resize_and_center_crop(tmp_path):
    wide = np.zeros((60, 90, 3), np.uint8)
    wide[:, :15] = wide[:, 75:] = (255, 0, 0)  # red side bands outside the centred 60x60 square
    wide[:, 15:75] = (0, 255, 0)
    save(tmp_path / "wide.png", Image.fromarray(wide))
    cropped = FaceImageDataset(tmp_path, resolution=30)[0]["image"]
    assert cropped.shape == (3, 30, 30)
    assert torch.all(cropped[1] == 1.0) and torch.all(cropped[0] == -1.0)  # only green left
    squashed = FaceImageDataset(tmp_path, resolution=30, center_crop=False)[0]["image"]
    assert squashed[0, :, 0].min() > 0.9  # red band kept on the left edge
    # upscaling works too, and matches Pillow's LANCZOS exactly
    up = FaceImageDataset(SAMPLES / "ffhq", resolution=300)[0]["image"]
    assert torch.allclose(up, expected_tensor(Image.open(SAMPLES / "ffhq" / "00000.jpg"), 300), atol=1e-6)


def test_flip_moves_image_and_mask_together(tmp_path):
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, 8:] = 255
    image[0, 0] = (255, 0, 0)
    mask = np.zeros((16, 16), np.uint8)
    mask[:, :4] = 1
    mask[:, 12:] = 2
    mask[0, 0] = 3
    for n in range(6):
        save(tmp_path / "img" / f"{n}.png", Image.fromarray(image))
        save(tmp_path / "masks" / f"{n}_mask.png", Image.fromarray(mask))
    plain = FaceImageDataset(tmp_path / "img", 16, masks=tmp_path / "masks")[0]
    assert torch.equal(plain["mask"], torch.from_numpy(mask.astype(np.int64)))
    flipped_count = 0
    ds = FaceImageDataset(tmp_path / "img", 16, masks=tmp_path / "masks", flip=True, seed=3)
    for _ in range(4):
        for item in ds:
            flipped = not torch.equal(item["image"], plain["image"])
            if flipped:
                assert torch.equal(item["image"], plain["image"].flip(-1))
                assert torch.equal(item["mask"], plain["mask"].flip(-1))
                assert item["mask"][0, -1] == 3 and item["image"][0, 0, -1] == 1.0
            else:
                assert torch.equal(item["mask"], plain["mask"])
            flipped_count += flipped
    assert 4 <= flipped_count <= 20  # about half of 24 draws
    again = FaceImageDataset(tmp_path / "img", 16, masks=tmp_path / "masks", flip=True, seed=3)
    assert [bool(again[i]["image"][0, 0, 0] == 1.0) for i in range(6)] == \
        [bool(FaceImageDataset(tmp_path / "img", 16, flip=True, seed=3)[i]["image"][0, 0, 0] == 1.0) for i in range(6)]


def test_colour_modes_become_rgb(tmp_path):
    save(tmp_path / "gray.png", Image.new("L", (8, 8), 100))
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)  # colour of the transparent pixels must not leak
    rgba[0, 0] = (255, 0, 0, 255)
    rgba[0, 1] = (0, 0, 0, 102)  # 40 % black over white -> 153
    save(tmp_path / "rgba.png", Image.fromarray(rgba, "RGBA"))
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    save(tmp_path / "palette.png", palette)
    transparent = palette.copy()
    save(tmp_path / "palette_t.png", transparent, transparency=1)
    save(tmp_path / "cmyk.jpg", Image.new("CMYK", (8, 8), (0, 0, 0, 0)), quality=100)
    save(tmp_path / "wide16.png", Image.fromarray(np.full((8, 8), 65535, np.uint16)))
    ds = FaceImageDataset(tmp_path, resolution=8)
    items = {item["key"]: item["image"] for item in ds}
    assert torch.allclose(items["gray.png"], torch.full((3, 8, 8), 100 / 127.5 - 1))
    rgba_out = items["rgba.png"]
    assert torch.equal(rgba_out[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.all(rgba_out[:, 5, 5] == 1.0)  # fully transparent -> white
    assert torch.allclose(rgba_out[:, 0, 1], torch.full((3,), 153 / 127.5 - 1), atol=1.5 / 127.5)
    assert torch.equal(items["palette.png"][:, 0, 0], torch.tensor([-1.0, -1.0, 1.0]))
    assert torch.equal(items["palette.png"][:, 3, 3], torch.tensor([-1.0, 1.0, -1.0]))
    assert torch.all(items["palette_t.png"][:, 3, 3] == 1.0)  # transparent index -> white
    assert torch.all(items["cmyk.jpg"] > 0.98)
    assert torch.all(items["wide16.png"] == 1.0)


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((8, 8, 3), np.uint8)
    array[0, 0] = 255  # white top-left pixel; orientation 3 = rotated by 180 degrees
    exif = Image.Exif()
    exif[0x0112] = 3
    save(tmp_path / "rotated.png", Image.fromarray(array), exif=exif)
    image = FaceImageDataset(tmp_path, resolution=8)[0]["image"]
    assert torch.all(image[:, 7, 7] == 1.0) and torch.all(image[:, 0, 0] == -1.0)


# ---------------------------------------------------------------------------------------------- bad files
def make_bad_files(folder: Path) -> dict[str, str]:
    """Bad files of each kind in ``folder``; returns {file name: expected reason}."""
    good = (SAMPLES / "ffhq" / "00001.jpg").read_bytes()
    buffer = io.BytesIO()
    Image.open(SAMPLES / "ffhq" / "00001.jpg").save(buffer, "PNG")
    png = bytearray(buffer.getvalue())
    png[2000:2400] = bytes(b ^ 0xFF for b in png[2000:2400])
    float_tiff = io.BytesIO()
    Image.fromarray(np.ones((8, 8), np.float32)).save(float_tiff, "TIFF")
    files = {
        "b_truncated.jpg": (good[: len(good) // 2], "truncated"),
        "c_corrupt.png": (bytes(png), "corrupt"),
        "d_empty.png": (b"", "empty file"),
        "e_text.jpg": (b"hello, I am not an image\n" * 4, "not an image"),
        "f_float.png": (float_tiff.getvalue(), "unsupported pixel mode 'F'"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    (folder / "a_good.jpg").write_bytes(good)
    (folder / "g_good.jpg").write_bytes(good)
    return {name: reason for name, (_, reason) in files.items()}


def test_bad_files_raise_bad_image_error_naming_the_file(tmp_path):
    reasons = make_bad_files(tmp_path)
    ds = FaceImageDataset(tmp_path, resolution=16)
    assert len(ds) == 7
    for index, key in enumerate(ds.keys):
        if key not in reasons:
            assert ds[index]["image"].shape == (3, 16, 16)
            continue
        with pytest.raises(BadImageError) as info:
            ds[index]
        message = str(info.value)
        assert message.startswith(str(tmp_path / key)) and reasons[key] in message
        assert isinstance(info.value, ValueError) and info.value.path == str(tmp_path / key)


def test_corrupt_zip_member_names_the_member(tmp_path):
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as handle:
        handle.writestr("ok.jpg", (SAMPLES / "ffhq" / "00002.jpg").read_bytes())
        handle.writestr("broken.jpg", (SAMPLES / "ffhq" / "00003.jpg").read_bytes())
    raw = bytearray(archive.read_bytes())
    start = raw.rfind(b"broken.jpg", 0, raw.find(b"PK\x01\x02")) + len(b"broken.jpg") + 500
    raw[start: start + 50] = bytes(50)  # breaks the stored member's CRC
    archive.write_bytes(bytes(raw))
    ds = FaceImageDataset(archive, resolution=16)
    with pytest.raises(BadImageError, match=re.escape(f"{archive}:broken.jpg")):
        ds[ds.keys.index("broken.jpg")]
    assert ds[ds.keys.index("ok.jpg")]["image"].shape == (3, 16, 16)


def test_skip_bad_validates_up_front(tmp_path, caplog):
    reasons = make_bad_files(tmp_path)
    with caplog.at_level(logging.WARNING, logger="stylegan_lightning.data"):
        ds = FaceImageDataset(tmp_path, resolution=16, skip_bad=True)
    assert ds.keys == ["a_good.jpg", "g_good.jpg"]
    assert sorted(key for key, _ in ds.skipped) == sorted(reasons)
    for key, reason in ds.skipped:
        assert reason.startswith(reasons[key])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "5 of 7" in warnings[0].getMessage()
    assert [item["key"] for item in ds] == ["a_good.jpg", "g_good.jpg"]
    # the cheap header check misses truncation, which then still fails loudly at load time
    quick = FaceImageDataset(tmp_path, resolution=16, skip_bad=True, validate="header")
    assert quick.keys == ["a_good.jpg", "b_truncated.jpg", "g_good.jpg"] and len(quick.skipped) == 4
    with pytest.raises(BadImageError, match="b_truncated.jpg: truncated"):
        quick[quick.keys.index("b_truncated.jpg")]


def test_bad_file_error_survives_dataloader_workers(tmp_path, monkeypatch):
    # after a worker error, torch waits MP_STATUS_CHECK_INTERVAL (5 s) per worker before terminating it; the
    # error itself is what is tested here, so shorten that wait
    monkeypatch.setattr(torch.utils.data._utils, "MP_STATUS_CHECK_INTERVAL", 0.2)
    make_bad_files(tmp_path)
    ds = FaceImageDataset(tmp_path, resolution=16, keys=["a_good.jpg", "g_good.jpg", "c_corrupt.png"])
    loader = DataLoader(ds, batch_size=1, num_workers=2)
    caught = None
    try:
        list(loader)
    except BadImageError as error:  # re-raised in the main process with the same type
        caught = str(error)
    gc.collect()  # shut the workers down while the shorter wait is in place
    assert caught is not None and "worker process" in caught
    assert f"{tmp_path / 'c_corrupt.png'}: corrupt" in caught


def test_zip_in_workers_matches_main_process(tmp_path):
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted((SAMPLES / "celebahq").glob("*.jpg"))[:6]:
            handle.write(path, f"celebahq/{path.name}")
    ds = FaceImageDataset(archive, resolution=32)
    ds[0]  # open the archive in the parent first: the workers must not share this handle
    main = torch.stack([item["image"] for item in ds])
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert torch.equal(torch.cat([b["image"] for b in batches]), main)
    assert sum((b["key"] for b in batches), []) == ds.keys
