"""DataLoader construction shared by the DataModules.

Training loaders use ``shuffle=True`` and no custom sampler, so that Lightning can replace the sampler with a
``DistributedSampler`` under DDP (``use_distributed_sampler=True``, its default). Randomness:

- the order comes from the sampler (a ``RandomSampler`` driven by the loader's ``generator``, or Lightning's
  ``DistributedSampler``, seeded by ``seed_everything``'s seed and the epoch);
- random flips run in the workers; each worker's torch seed is ``base_seed + worker_id`` where ``base_seed`` is
  drawn from the loader's ``generator``, which is seeded with ``seed`` (plus the rank), so flips are
  reproducible for a fixed seed and differ between ranks;
- :func:`seed_worker` also seeds Python's ``random`` and NumPy in each worker from that torch seed.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` seeding ``random`` and NumPy from the worker's torch seed (set by the DataLoader)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def loader_generator(seed: int, rank: int = 0) -> torch.Generator:
    """The generator a loader draws its shuffling order and worker seeds from."""
    return torch.Generator().manual_seed(seed + 1_000_003 * rank)


def make_loader(dataset: Dataset, batch_size: int, train: bool, num_workers: int = 0,
                pin_memory: bool | None = None, drop_last: bool = False, seed: int = 0, rank: int = 0) -> DataLoader:
    """A DataLoader over ``dataset``: shuffled with ``drop_last`` for training, in order otherwise; persistent
    workers when ``num_workers > 0``; ``pin_memory`` defaults to ``torch.cuda.is_available()``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=drop_last and train,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        generator=loader_generator(seed, rank),
    )
