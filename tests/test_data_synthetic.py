"""SyntheticFaceDataset and SyntheticDataModule: determinism per index, latents that reproduce the images."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from stylegan_lightning.data import SyntheticDataModule, SyntheticFaceDataset
from stylegan_lightning.stylegan2 import FrozenGenerator, save_generator


@pytest.fixture
def frozen(tiny_generator):
    return FrozenGenerator(tiny_generator(size=16), n_mean_latent=64)


def test_items_are_deterministic_per_index(frozen):
    ds = SyntheticFaceDataset(frozen, length=6, seed=5)
    again = SyntheticFaceDataset(frozen, length=6, seed=5)
    first = ds[3]
    assert first["image"].shape == (3, 16, 16) and first["w"].shape == (frozen.style_dim,)
    assert first["z"].shape == (frozen.style_dim,) and first["index"] == 3
    for other in (ds[3], again[3]):  # same item whatever was drawn before, in any instance
        assert torch.equal(other["image"], first["image"]) and torch.equal(other["z"], first["z"])
    assert not torch.equal(ds[2]["z"], first["z"])
    assert not torch.equal(SyntheticFaceDataset(frozen, 6, seed=6)[3]["z"], first["z"])
    assert not torch.equal(SyntheticFaceDataset(frozen, 6, seed=5, stream=1)[3]["z"], first["z"])
    assert first["image"].min() >= -1 and first["image"].max() <= 1 and first["image"].std() > 0.01
    with pytest.raises(IndexError):
        ds[6]


def test_w_reproduces_the_image(frozen):
    ds = SyntheticFaceDataset(frozen, length=4, seed=0, truncation=0.7)
    items = [ds[i] for i in range(4)]
    with torch.no_grad():
        single = frozen(items[1]["w"][None]).clamp(-1, 1)[0]
        batch = frozen(torch.stack([item["w"] for item in items])).clamp(-1, 1)
    assert torch.allclose(single, items[1]["image"], atol=1e-6)
    assert torch.allclose(batch, torch.stack([item["image"] for item in items]), atol=1e-5)
    # w is mapping(z) truncated towards latent_avg
    with torch.no_grad():
        w = frozen.latent_avg + 0.7 * (frozen.mapping(items[2]["z"][None])[0] - frozen.latent_avg)
    assert torch.allclose(items[2]["w"], w, atol=1e-6)


def test_w_plus_and_style_mixing(frozen):
    plain = SyntheticFaceDataset(frozen, length=3, w_plus=True)[0]
    assert plain["w_plus"].shape == (frozen.n_latent, frozen.style_dim) and plain["crossover"] == frozen.n_latent
    assert torch.equal(plain["w_plus"], plain["w_plus"][:1].expand_as(plain["w_plus"]))
    mixed_ds = SyntheticFaceDataset(frozen, length=8, w_plus=True, mixing_prob=1.0, seed=2)
    for index in range(3):
        item = mixed_ds[index]
        k = item["crossover"]
        assert 1 <= k < frozen.n_latent
        with torch.no_grad():
            w1, w2 = frozen.mapping(torch.stack([item["z"], item["z_mix"]]))
            image = frozen(item["w_plus"][None]).clamp(-1, 1)[0]
        assert torch.allclose(item["w_plus"][:k], w1.expand(k, -1), atol=1e-6)
        assert torch.allclose(item["w_plus"][k:], w2.expand(frozen.n_latent - k, -1), atol=1e-6)
        assert torch.allclose(image, item["image"], atol=1e-6)
    batch = next(iter(DataLoader(mixed_ds, batch_size=4)))
    assert batch["w_plus"].shape == (4, frozen.n_latent, frozen.style_dim) and batch["crossover"].shape == (4,)
    with pytest.raises(ValueError, match="w_plus"):
        SyntheticFaceDataset(frozen, 2, mixing_prob=0.5)


def test_noise_modes_and_resolution(frozen):
    const = SyntheticFaceDataset(frozen, 2, noise="const")[1]
    random_a = SyntheticFaceDataset(frozen, 2, noise="random")[1]
    random_b = SyntheticFaceDataset(frozen, 2, noise="random")[1]
    assert torch.equal(random_a["image"], random_b["image"])  # drawn from the item's own generator
    assert not torch.allclose(random_a["image"], const["image"], atol=1e-3)
    assert torch.equal(random_a["w"], const["w"])
    small = SyntheticFaceDataset(frozen, 2, resolution=8)[1]["image"]
    assert small.shape == (3, 8, 8) and small.min() >= -1 and small.max() <= 1
    with torch.no_grad():  # resized from the raw generator output, then clamped
        expected = torch.nn.functional.interpolate(frozen(const["w"][None]), size=(8, 8), mode="bicubic",
                                                   antialias=True, align_corners=False).clamp(-1, 1)[0]
    assert torch.allclose(small, expected, atol=1e-5)


def test_synthetic_datamodule_from_file_and_memory(tiny_generator, tmp_path):
    generator = tiny_generator(size=16)
    path = save_generator(tmp_path / "g.pt", generator, latent_avg=torch.zeros(generator.style_dim))
    from_file = SyntheticDataModule(str(path), lengths=(6, 2, 3), batch_size=4, seed=1)
    from_file.setup("fit")
    from_file.setup("predict")
    batch = next(iter(from_file.train_dataloader()))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["w"].shape == (4, generator.style_dim)
    assert len(from_file.train_dataloader()) == 1  # 6 items, batch 4, drop_last
    val = next(iter(from_file.val_dataloader()))
    assert val["index"].tolist() == [0, 1]
    predict = torch.cat([b["image"] for b in from_file.predict_dataloader()])
    test = torch.cat([b["image"] for b in from_file.test_dataloader()])
    assert predict.shape == (3, 3, 16, 16) and torch.equal(predict, test)
    memory = SyntheticDataModule.from_generator(FrozenGenerator(generator, latent_avg=torch.zeros(32)),
                                                lengths=(6, 2, 3), seed=1)
    memory.setup("validate")
    assert torch.allclose(memory.val_dataset[1]["image"], from_file.val_dataset[1]["image"], atol=1e-6)
    assert not torch.equal(memory.val_dataset[0]["z"], memory._dataset("train")[0]["z"])  # separate streams
    assert SyntheticDataModule.from_generator(memory.frozen, lengths=(4, 0, 0)).val_dataloader() == []
