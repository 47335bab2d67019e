"""Metric states are reduced across processes: a real 2-process CPU run (gloo) equals one process."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

WORLD_SIZE = 2


def toy_encoder(images: torch.Tensor) -> torch.Tensor:
    return F.normalize(images.mean((2, 3)), dim=1)


def toy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().flatten(1).mean(1)


def make_collection():
    import stylegan_lightning  # noqa: F401
    from torchmetrics import MetricCollection

    from stylegan_lightning.metrics import (
        LPIPS,
        MSSSIM,
        PSNR,
        SSIM,
        BitsPerPixel,
        IdentitySimilarity,
        LikelihoodBitsPerPixel,
        MeanSquaredError,
    )

    return MetricCollection({
        "bpp": BitsPerPixel(), "bpp_likelihood": LikelihoodBitsPerPixel(), "l2": MeanSquaredError(),
        "psnr": PSNR(), "ssim": SSIM(), "ms_ssim": MSSSIM(), "id": IdentitySimilarity(toy_encoder),
        "lpips": LPIPS(toy_distance),
    }, compute_groups=False)


def make_label_metrics():
    from stylegan_lightning.metrics import LandmarkNME, ParsingMIoU

    return ParsingMIoU(num_classes=5), LandmarkNME()


def dataset(n: int = 6):
    g = torch.Generator().manual_seed(0)
    target = torch.rand(n, 3, 48, 48, generator=g) * 2 - 1
    preds = (target + 0.3 * torch.randn(n, 3, 48, 48, generator=g)).clamp(-1, 1)
    num_bytes = torch.randint(20, 200, (n,), generator=g)
    likelihoods = torch.rand(n, 8, 4, generator=g).clamp_min(0.01)
    labels_pred = torch.randint(0, 5, (n, 16, 16), generator=g)
    labels_true = torch.randint(0, 5, (n, 16, 16), generator=g)
    marks_true = torch.rand(n, 68, 2, generator=g) * 48
    marks_pred = marks_true + torch.randn(n, 68, 2, generator=g)
    marks_pred[3] = float("nan")  # one failure, on rank 1's shard
    return preds, target, num_bytes, likelihoods, labels_pred, labels_true, marks_pred, marks_true


def evaluate(shard: slice) -> dict[str, float]:
    preds, target, num_bytes, likelihoods, labels_pred, labels_true, marks_pred, marks_true = dataset()
    collection = make_collection()
    parsing, nme = make_label_metrics()
    for start in range(shard.start, len(preds), shard.step * 2):  # two small batches per process
        batch = slice(start, start + 2 * shard.step, shard.step)
        collection.update(preds=preds[batch], target=target[batch], num_bytes=num_bytes[batch],
                          likelihoods=likelihoods[batch], num_pixels=48 * 48)
        parsing.update(labels_pred[batch], labels_true[batch])
        nme.update(marks_pred[batch], marks_true[batch])
    values = {k: v.item() for k, v in collection.compute().items()}
    values["parsing_miou"] = parsing.compute().item()
    values["landmark_nme"] = nme.compute().item()
    values["landmark_failures"] = nme.failure_rate().item()
    return values


def worker(rank: int, init_file: str, out_dir: str) -> None:
    import warnings

    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        torch.save(evaluate(slice(rank, None, WORLD_SIZE)), os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # no rank tears gloo down while another is still in a collective (that aborts the process)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_equals_single_process(tmp_path):
    import warnings

    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = evaluate(slice(0, None, 1))
    assert ranks[0] == ranks[1]  # every process reports the synchronised value
    for name, value in single.items():
        assert ranks[0][name] == pytest.approx(value, rel=1e-5, abs=1e-9), name
    assert single["landmark_failures"] == pytest.approx(1 / 6)
