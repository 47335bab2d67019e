"""DataLoader construction shared by the DataModules.

Training loaders shuffle with a :class:`ResumableSampler`: a ``DistributedSampler`` (over the trainer's processes,
or one process) whose order is a function of ``(seed, epoch)`` only and which can start part-way into an epoch, so
a run resumed from a mid-epoch checkpoint trains on exactly the batches an uninterrupted run would (the DataModules'
``state_dict`` saves how many batches of the epoch were trained). Being a ``DistributedSampler`` already, Lightning
keeps it under DDP. Randomness:

- the order comes from the sampler (``torch.randperm`` seeded with ``seed + epoch``; Lightning calls
  ``set_epoch``);
- random flips run in the workers; each worker's torch seed is ``base_seed + worker_id`` where ``base_seed`` is
  drawn from the loader's ``generator``, which is seeded with ``seed`` (plus the rank), so flips are
  reproducible for a fixed seed and differ between ranks;
- :func:`seed_worker` also seeds Python's ``random`` and NumPy in each worker from that torch seed.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` seeding ``random`` and NumPy from the worker's torch seed (set by the DataLoader)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def loader_generator(seed: int, rank: int = 0) -> torch.Generator:
    """The generator a loader draws its shuffling order and worker seeds from."""
    return torch.Generator().manual_seed(seed + 1_000_003 * rank)


class ResumableSampler(DistributedSampler):
    """A shuffling ``DistributedSampler`` (``num_replicas`` processes, this one ``rank``) whose next pass starts
    after the first ``start`` of this process's indices (once; later passes are whole). The order of an epoch
    depends only on ``(seed, epoch)``, so skipping the batches a run already trained resumes it exactly."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0, epoch: int = 0,
                 start: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.set_epoch(epoch)
        self.start = int(start)

    def __iter__(self):
        indices = list(super().__iter__())
        start, self.start = self.start, 0
        return iter(indices[start:])


def make_loader(dataset: Dataset, batch_size: int, train: bool, num_workers: int = 0,
                pin_memory: bool | None = None, drop_last: bool = False, seed: int = 0, rank: int = 0,
                world_size: int = 1, epoch: int = 0, skip_batches: int = 0) -> DataLoader:
    """A DataLoader over ``dataset``: shuffled by a :class:`ResumableSampler` (this ``rank`` of ``world_size``,
    starting at ``epoch`` after ``skip_batches`` batches) with ``drop_last`` for training, in order otherwise;
    persistent workers when ``num_workers > 0``; ``pin_memory`` defaults to ``torch.cuda.is_available()``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    sampler = None
    if train:
        sampler = ResumableSampler(dataset, world_size, rank, seed, epoch)
        if skip_batches * batch_size < len(sampler) - (batch_size - 1 if drop_last else 0):  # not a finished epoch
            sampler.start = skip_batches * batch_size
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last and train,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=num_workers > 0,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        generator=loader_generator(seed, rank),
    )
