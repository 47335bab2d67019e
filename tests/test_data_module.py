"""FaceDataModule end to end over data/samples: batches, splits, flips, DDP sampler replacement, YAML config."""

from __future__ import annotations

import math
from pathlib import Path

import jsonargparse
import pytest
import torch
from torch.utils.data import BatchSampler, DistributedSampler, SequentialSampler

from stylegan_lightning.data import FaceDataModule, FaceImageDataset, ResumableSampler, make_loader

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def module(**kwargs) -> FaceDataModule:
    config = dict(root=str(SAMPLES), resolution=32, batch_size=4, split_fractions=(0.5, 0.25, 0.25))
    return FaceDataModule(**{**config, **kwargs})


def test_batches_shapes_and_splits():
    dm = module()
    dm.setup("fit")
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [14, 6, 6]  # 26 samples
    everything = dm.splits["train"] + dm.splits["val"] + dm.splits["test"]
    assert len(set(everything)) == 26 and dm.hparams.root == str(SAMPLES)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert batch["index"].dtype == torch.int64 and all(isinstance(k, str) for k in batch["key"])
    assert len(dm.train_dataloader()) == 3  # 14 // 4 with drop_last
    val_batches = list(dm.val_dataloader())
    assert [len(b["key"]) for b in val_batches] == [4, 2] and sum((b["key"] for b in val_batches), []) == \
        dm.splits["val"]
    assert dm.train_dataset.flip and not dm.val_dataset.flip
    assert module(split_seed=1).splits != dm.splits and module().splits == dm.splits


def test_eval_loaders_do_not_flip_and_predict_is_test():
    dm = module(eval_batch_size=3)
    dm.setup("test")
    dm.setup("predict")
    plain = FaceImageDataset(SAMPLES, 32, keys=dm.splits["test"])
    expected = torch.stack([item["image"] for item in plain])
    for loader in (dm.test_dataloader(), dm.predict_dataloader()):
        assert isinstance(loader.sampler, SequentialSampler) and loader.batch_size == 3
        assert torch.equal(torch.cat([b["image"] for b in loader]), expected)


def train_images(dm: FaceDataModule) -> tuple[torch.Tensor, list[str]]:
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    return torch.cat([b["image"] for b in batches]), sum((b["key"] for b in batches), [])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_flips_and_order_reproducible_with_seed(num_workers):
    images, keys = train_images(module(seed=7, num_workers=num_workers))
    again, again_keys = train_images(module(seed=7, num_workers=num_workers))
    assert keys == again_keys and torch.equal(images, again)
    other, other_keys = train_images(module(seed=8, num_workers=num_workers))
    assert other_keys != keys or not torch.equal(images, other)
    # every training image is the plain image or its mirror, and both happen
    plain = FaceImageDataset(SAMPLES, 32, keys=keys)
    flipped = 0
    for position, key in enumerate(keys):
        reference = plain[position]["image"]
        is_flipped = not torch.equal(images[position], reference)
        assert not is_flipped or torch.equal(images[position], reference.flip(-1)), key
        flipped += is_flipped
    assert 0 < flipped < len(keys)


def test_attributes_partition_and_masks():
    table_path = str(SAMPLES / "celebahq_attributes.csv")
    dm = FaceDataModule(root=str(SAMPLES / "celebahq"), resolution=16, attributes=table_path,
                        attribute_names=["Smiling", "Male"], split_partition=table_path, batch_size=2)
    dm.setup("fit")
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [9, 2, 5]
    val = next(iter(dm.val_dataloader()))
    assert val["key"] == ["17069.jpg", "6670.jpg"] and val["attributes"].shape == (2, 2)
    table = {line.split(",")[0]: line.split(",") for line in (SAMPLES / "celebahq_attributes.csv").read_text().split()}
    header = table["path"]
    for key, values in zip(val["key"], val["attributes"].tolist()):
        row = table[f"celebahq/{key}"]
        assert values == [float(row[header.index(n)] == "1") for n in ("Smiling", "Male")]
    masks = module(root=str(SAMPLES / "celebamask-hq"), masks=str(SAMPLES / "celebamask-hq"), batch_size=2)
    masks.setup("fit")
    batch = next(iter(masks.train_dataloader()))
    assert batch["mask"].shape == (2, 32, 32) and batch["mask"].dtype == torch.int64
    assert int(batch["mask"].max()) <= 18


def test_max_items_and_empty_splits():
    dm = module(max_items=10, split_fractions=(1.0, 0.0, 0.0))
    dm.setup("fit")
    assert dm.splits["train"] == sorted(p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*.jpg"))[:10]
    assert dm.val_dataloader() == [] and dm.val_dataset is None
    with pytest.raises(ValueError, match="summing to 1"):
        module(split_fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="missing_labels"):
        module(missing_labels="ignore")


def test_ddp_sampler_can_be_injected():
    dm = module()
    dm.setup("fit")
    val = dm.val_dataset
    assert len(val) % 2 == 0
    shards = [list(DistributedSampler(val, num_replicas=2, rank=r, shuffle=False)) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(len(val))) and not set(shards[0]) & set(shards[1])
    loader = dm.train_dataloader()
    # the training sampler is already a DistributedSampler (resumable), so Lightning keeps it under DDP
    assert isinstance(loader.sampler, ResumableSampler) and isinstance(loader.sampler, DistributedSampler)
    assert type(loader.batch_sampler) is BatchSampler and loader.batch_size == 4 and loader.drop_last
    covered = []
    for rank in (0, 1):
        sampler = ResumableSampler(loader.dataset, num_replicas=2, rank=rank, seed=0)
        covered += list(sampler)
    n = len(loader.dataset)
    assert set(covered) == set(range(n)) and len(covered) == 2 * math.ceil(n / 2)  # padded to equal shards


def test_resumable_sampler_order_depends_on_seed_and_epoch_only():
    dataset = list(range(10))
    first = ResumableSampler(dataset, seed=3, epoch=2)
    assert list(first) == list(ResumableSampler(dataset, seed=3, epoch=2))
    assert list(first) != list(ResumableSampler(dataset, seed=3, epoch=1))
    resumed = ResumableSampler(dataset, seed=3, epoch=2, start=4)
    assert list(resumed) == list(first)[4:] and list(resumed) == list(first)  # the skip applies to one pass
    loader = make_loader(dataset, 2, True, seed=3, epoch=2, skip_batches=3, drop_last=True)
    assert [b.tolist() for b in loader] == [list(first)[6:8], list(first)[8:10]]


def test_configurable_from_yaml():
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(FaceDataModule, "data")
    config = parser.parse_string(f"""
data:
  root: {SAMPLES}
  resolution: 16
  split_fractions: [0.5, 0.25, 0.25]
  split_lists: null
  attribute_names: [Smiling]
  batch_size: 2
""")
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
    dm = instantiate(config).data
    assert isinstance(dm, FaceDataModule) and dm.hparams.resolution == 16
    assert tuple(dm.hparams.split_fractions) == (0.5, 0.25, 0.25) and dm.hparams.attribute_names == ["Smiling"]
