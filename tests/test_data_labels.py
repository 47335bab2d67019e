"""Attribute tables (CelebA list_attr and CSV, real files), key matching, parsing masks and splits."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_lightning.data import (
    BadImageError,
    DatasetError,
    FaceImageDataset,
    KeyIndex,
    MaskFolder,
    combine_part_masks,
    listed_split,
    load_attribute_table,
    random_split,
    read_celeba_attributes,
    read_csv_attributes,
    read_key_list,
    read_partition,
)

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
ROW_000001 = ("-1 1 1 -1 -1 -1 -1 -1 -1 -1 -1 1 -1 -1 -1 -1 -1 -1 1 1 "
              "-1 1 -1 -1 1 -1 -1 1 -1 -1 -1 1 1 -1 1 -1 1 -1 -1 1")


# ---------------------------------------------------------------------------------------------- attributes
def test_real_celeba_list_attr_file(shared_dir):
    table = read_celeba_attributes(shared_dir / "data" / "celeba-64_attributes.txt")
    assert len(table) == 4330 and len(table.names) == 40
    assert table.names[0] == "5_o_Clock_Shadow" and table.names[-1] == "Young" and table.names[31] == "Smiling"
    expected = torch.tensor([1.0 if v == "1" else 0.0 for v in ROW_000001.split()])
    assert torch.equal(table.lookup("000001.jpg"), expected)
    assert torch.equal(table.lookup("img_align/000001.png"), expected)  # joined by file name without extension
    assert table.values.unique().tolist() == [0.0, 1.0]
    smiling = table.select(["Smiling", "Male"])
    assert smiling.lookup("000001.jpg").tolist() == [1.0, 0.0]
    with pytest.raises(DatasetError, match="unknown attribute.*Smile"):
        table.select(["Smile"])


def test_celeba_format_small_file_and_errors(tmp_path):
    path = tmp_path / "list_attr.txt"
    path.write_text("2\nSmiling Male\n001.jpg  1 -1\n002.jpg -1  1\n")
    table = load_attribute_table(path)
    assert table.names == ["Smiling", "Male"] and table.lookup("002").tolist() == [0.0, 1.0]
    path.write_text("3\nSmiling Male\n001.jpg  1 -1\n002.jpg -1  1\n")
    with pytest.raises(DatasetError, match="declares 3 rows"):
        load_attribute_table(path)
    path.write_text("1\nSmiling Male\n001.jpg  1 7\n")
    with pytest.raises(DatasetError, match="line 3"):
        load_attribute_table(path)


def test_csv_attributes_from_samples():
    table = read_csv_attributes(SAMPLES / "celebahq_attributes.csv")  # key column detected: "path"
    assert len(table) == 16 and "celeba_split" not in table.names and "celeba_file" not in table.names
    assert table.names[:3] == ["celebahq_idx", "celeba_identity", "5_o_Clock_Shadow"] and len(table.names) == 42
    row = dict(zip(table.names, table.lookup("celebahq/896.jpg").tolist()))
    assert row["celebahq_idx"] == 896 and row["Smiling"] == 0.0 and row["Male"] == 0.0 and row["Young"] == 1.0
    assert torch.equal(table.lookup("896.jpg"), table.lookup("celebahq/896.jpg"))
    assert torch.equal(table.lookup("other/896.png"), table.lookup("896"))
    raw = read_csv_attributes(SAMPLES / "celebahq_attributes.csv", columns=["Smiling"], pm1_to_binary=False)
    assert raw.lookup("896.jpg").tolist() == [-1.0]


def test_csv_attributes_ffhq_key_column_bools_and_errors():
    path = SAMPLES / "ffhq_attributes.csv"
    with pytest.raises(DatasetError, match="ffhq_id.*key_column"):
        read_csv_attributes(path)
    table = read_csv_attributes(path, key_column="ffhq_id")
    assert "gender" not in table.names and "glasses" not in table.names  # text columns are left out
    row = dict(zip(table.names, table.lookup("00001.jpg").tolist()))
    assert row["age"] == 26.0 and row["yaw"] == pytest.approx(-0.3) and row["eye_makeup"] == 1.0
    assert row["lip_makeup"] == 0.0 and row["face_w"] == 76.0
    with pytest.raises(DatasetError, match="'gender' is not numeric"):
        read_csv_attributes(path, key_column="ffhq_id", columns=["age", "gender"])


def test_real_utkface_csv_with_unlabelled_rows(shared_dir):
    table = load_attribute_table(shared_dir / "data" / "utkface-64.csv")
    assert table.names == ["age", "gender", "race"] and len(table) == 22846
    assert table.lookup("704e6d92641c.jpg").tolist() == [100.0, 0.0, 0.0]
    assert table.lookup("6470ba9f524e").tolist() == [100.0, 1.0, 0.0]
    assert table.lookup("a5cfc27bbd31.jpg") is None and table.row("a5cfc27bbd31.jpg") is not None
    assert int(torch.isnan(table.values).any(1).sum()) == 3


def test_real_celebahq_csv_joins_shared_images(shared_dir):
    faces = shared_dir / "data" / "faces-real"
    ds = FaceImageDataset(faces / "celebahq", 32, attributes=faces / "celebahq_attributes.csv",
                          attribute_names=["Smiling", "Eyeglasses", "Male"])
    assert len(ds) == 56 and ds.attribute_names == ["Smiling", "Eyeglasses", "Male"]
    index = ds.keys.index("22940.jpg")  # CSV row: celebahq/22940.jpg ... Smiling -1, Eyeglasses -1, Male -1
    assert ds[index]["attributes"].tolist() == [0.0, 0.0, 0.0]


def test_missing_labels_error_or_skip(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "labels.csv").write_text("file,score\na.png,0.5\nc,1.5\n")
    with pytest.raises(DatasetError, match=r"1 image\(s\) have no labels: .*b\.png"):
        FaceImageDataset(tmp_path, 8, attributes=tmp_path / "labels.csv")
    ds = FaceImageDataset(tmp_path, 8, attributes=tmp_path / "labels.csv", missing_labels="skip")
    assert ds.keys == ["a.png", "c.png"] and ds.skipped[0][0] == "b.png"
    assert [ds[i]["attributes"].tolist() for i in range(2)] == [[0.5], [1.5]]


def test_key_index_rules():
    index = KeyIndex(["a/1.jpg", "b/1.jpg", "c/2.png"], "table")
    assert index.find("a/1.jpg") == 0 and index.find("b/1.png") == 1  # same path, other extension
    assert index.find("2.jpg") == 2 and index.find("x/2") == 2 and index.find("3.jpg") is None
    with pytest.raises(DatasetError, match="several entries"):
        index.find("z/1.jpg")
    with pytest.raises(DatasetError, match="more than once"):
        KeyIndex(["x.jpg", "./x.jpg"])


# ---------------------------------------------------------------------------------------------- masks
def test_masks_loaded_with_exact_labels():
    folder = SAMPLES / "celebamask-hq"
    ds = FaceImageDataset(folder, 256, masks=folder)
    assert ds.keys == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]  # the *_mask.png files are not taken for faces
    for item in ds:
        expected = np.array(Image.open(folder / item["key"].replace(".jpg", "_mask.png")))
        assert item["mask"].dtype == torch.int64 and item["mask"].shape == (256, 256)
        assert np.array_equal(item["mask"].numpy(), expected)
    small = FaceImageDataset(folder, 64, masks=folder)[1]["mask"]
    reference = np.array(Image.open(folder / "1_mask.png").resize((64, 64), Image.Resampling.NEAREST))
    assert np.array_equal(small.numpy(), reference) and set(np.unique(reference)) <= set(range(19))
    assert {13, 17, 18} <= set(small.unique().tolist())  # hair, neck, cloth


def test_real_512_masks_with_1024_style_size_mismatch(shared_dir, tmp_path):
    folder = shared_dir / "data" / "faces-real" / "celebamask-hq"
    ds = FaceImageDataset(folder, 512, masks=folder, keys=["2.jpg"])
    assert np.array_equal(ds[0]["mask"].numpy(), np.array(Image.open(folder / "2_mask.png")))
    # masks of half the image size (as in the official release) are resized to the same R
    Image.open(folder / "2.jpg").resize((1024, 1024)).save(tmp_path / "2.jpg")
    big = FaceImageDataset(tmp_path, 128, masks=folder)[0]["mask"]
    reference = Image.open(folder / "2_mask.png").resize((128, 128), Image.Resampling.NEAREST)
    assert np.array_equal(big.numpy(), np.array(reference))


def test_bad_and_missing_masks(tmp_path):
    images, masks = tmp_path / "img", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for name in ("0", "1", "2", "3"):
        Image.new("RGB", (16, 16)).save(images / f"{name}.jpg")
    Image.new("L", (16, 16), 5).save(masks / "0.png")
    Image.new("RGB", (16, 16)).save(masks / "1.png")
    Image.new("L", (16, 16), 40).save(masks / "2.png")
    with pytest.raises(DatasetError, match="3.jpg.*no mask"):
        FaceImageDataset(images, 16, masks=masks)
    ds = FaceImageDataset(images, 16, masks=masks, missing_labels="skip")
    assert ds.keys == ["0.jpg", "1.jpg", "2.jpg"] and torch.all(ds[0]["mask"] == 5)
    with pytest.raises(BadImageError, match=r"1\.png: a mask must be a single-channel"):
        ds[1]
    with pytest.raises(BadImageError, match=r"2\.png: mask value 40 >= mask_classes=19"):
        ds[2]
    checked = FaceImageDataset(images, 16, masks=masks, missing_labels="skip", skip_bad=True)
    assert checked.keys == ["0.jpg"] and len(checked.skipped) == 3


def test_combine_official_part_masks(tmp_path):
    part_dir = tmp_path / "anno" / "1"  # image 2345 lives in folder 2345 // 2000 = 1
    part_dir.mkdir(parents=True)
    skin = np.zeros((8, 8), np.uint8)
    skin[2:6, 2:6] = 255
    nose = np.zeros((8, 8), np.uint8)
    nose[3:5, 3:5] = 255
    hair = np.zeros((8, 8), np.uint8)
    hair[0, :] = 255
    for part, array in (("skin", skin), ("nose", nose), ("hair", hair)):
        Image.fromarray(array).save(part_dir / f"02345_{part}.png")
    mask = np.array(combine_part_masks(tmp_path / "anno", 2345))
    assert mask[0].tolist() == [13] * 8 and mask[2, 2] == 1 and mask[3, 3] == 2 and mask[7, 7] == 0
    assert np.bincount(mask.ravel(), minlength=19)[[0, 1, 2, 13]].tolist() == [40, 12, 4, 8]
    with pytest.raises(DatasetError, match="no part masks"):
        combine_part_masks(tmp_path / "anno", 7)
    assert MaskFolder(SAMPLES / "celebamask-hq").find("sub/3.png") == "3_mask.png"


# ---------------------------------------------------------------------------------------------- splits
KEYS = [f"img_{i:02d}.png" for i in range(20)]


def test_random_split_is_seeded_and_stable():
    split = random_split(KEYS, (0.8, 0.1, 0.1), seed=0)
    # golden values: torch.randperm(20, generator=manual_seed(0)) cut 16 / 2 / 2 -- the same on every machine
    assert split["val"] == ["img_08.png", "img_15.png"] and split["test"] == ["img_00.png", "img_01.png"]
    assert random_split(list(reversed(KEYS)), (0.8, 0.1, 0.1), seed=0) == split  # input order does not matter
    assert random_split(KEYS, (0.8, 0.1, 0.1), seed=1) != split
    permutation = torch.randperm(20, generator=torch.Generator().manual_seed(0)).tolist()
    assert split["train"] == sorted(KEYS[i] for i in permutation[:16])


@pytest.mark.parametrize("n, fractions, counts", [(100, (0.9, 0.05, 0.05), (90, 5, 5)),
                                                   (1000, (0.7, 0.2, 0.1), (700, 200, 100)),
                                                   (10, (0.9, 0.05, 0.05), (8, 1, 1)),
                                                   (7, (1.0, 0.0, 0.0), (7, 0, 0))])
def test_random_split_fractions_partition_everything(n, fractions, counts):
    keys = [f"{i:05d}.jpg" for i in range(n)]
    split = random_split(keys, fractions, seed=123)
    assert tuple(len(split[s]) for s in ("train", "val", "test")) == counts
    together = split["train"] + split["val"] + split["test"]
    assert sorted(together) == keys and len(set(together)) == n
    assert all(split[s] == sorted(split[s]) for s in split)


def test_random_split_rejects_bad_fractions():
    with pytest.raises(DatasetError, match="summing to 1"):
        random_split(KEYS, (0.8, 0.1, 0.2))
    with pytest.raises(DatasetError, match="too few"):
        random_split(KEYS[:2], (0.5, 0.25, 0.25))


def test_list_file_and_partition_splits(tmp_path, caplog):
    (tmp_path / "train.txt").write_text("# training images\nimg_00.png\nimg_01\nsub/img_02.jpg\n\n")
    (tmp_path / "val.txt").write_text("img_03.png\nimg_99.png\n")
    lists = {"train": read_key_list(tmp_path / "train.txt"), "val": read_key_list(tmp_path / "val.txt")}
    with caplog.at_level(logging.WARNING):
        split = listed_split(KEYS[:5], lists)
    assert split == {"train": ["img_00.png", "img_01.png", "img_02.png"], "val": ["img_03.png"], "test": []}
    assert "1 listed entries match no image" in caplog.text
    (tmp_path / "list_eval_partition.txt").write_text("".join(f"img_{i:02d}.jpg {i % 3}\n" for i in range(6)))
    partition = read_partition(tmp_path / "list_eval_partition.txt")
    split = listed_split(KEYS[:6], partition)
    assert split["train"] == ["img_00.png", "img_03.png"] and split["test"] == ["img_02.png", "img_05.png"]
    csv_split = listed_split([f"celebahq/{p.name}" for p in (SAMPLES / "celebahq").glob("*.jpg")],
                             read_partition(SAMPLES / "celebahq_attributes.csv"))
    assert [len(csv_split[s]) for s in ("train", "val", "test")] == [9, 2, 5]
    assert csv_split["val"] == ["celebahq/17069.jpg", "celebahq/6670.jpg"] and "celebahq/7515.jpg" in csv_split["test"]
    (tmp_path / "bad.txt").write_text("a.jpg 4\n")
    with pytest.raises(DatasetError, match="unknown split '4'"):
        read_partition(tmp_path / "bad.txt")
