"""LightningDataModules: :class:`FaceDataModule` (real faces) and :class:`SyntheticDataModule` (generated).

Both take plain arguments only, so ``LightningCLI`` can build them from YAML. Their training loaders shuffle with
a :class:`~stylegan_lightning.data.loaders.ResumableSampler` (over the trainer's DDP processes, resumable
mid-epoch). Validation/test/predict loaders never flip or shuffle. ``predict`` is the test split.

Hyperparameters: every DataModule here saves its arguments (checkpoints keep them as
``datamodule_hyper_parameters``; the CLI writes the whole config beside the logs) but does not hand them to the
logger. Lightning would merge them with the LightningModule's there and refuse names the two share with
different values, which are legitimate here: a 64 px classifier over 128 px images (``resolution``), or a GAN
with style mixing trained on synthetic faces sampled without it (``mixing_prob``).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Dataset

from .datasets import MISSING_LABEL_POLICIES, FaceImageDataset
from .errors import DatasetError
from .labels import AttributeTable, load_attribute_table
from .loaders import make_loader
from .masks import MaskFolder
from .sources import ImageSource, open_source
from .splits import SPLITS, listed_split, random_split, read_key_list, read_partition, split_counts
from .synthetic import SyntheticFaceDataset

logger = logging.getLogger(__name__)
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",),
                 None: ("train", "val", "test", "predict")}


class _LoaderMixin:
    """Loader methods shared by both DataModules (datasets come from ``self._dataset(split)``)."""

    hparams: Any
    trainer: Any

    _resume: dict[str, int] | None = None

    def _rank(self) -> int:
        return int(getattr(self.trainer, "global_rank", 0) or 0) if self.trainer is not None else 0

    def _world_size(self) -> int:
        return int(getattr(self.trainer, "world_size", 1) or 1) if self.trainer is not None else 1

    def _loader(self, split: str) -> DataLoader | list:
        dataset = self._dataset(split)
        if dataset is None:
            return []  # an empty split: Lightning runs no batches for it
        train = split == "train"
        hp = self.hparams
        batch_size = hp.batch_size if train else (hp.eval_batch_size or hp.batch_size)
        drop_last = getattr(hp, "drop_last", True)
        if train and drop_last and len(dataset) < batch_size:
            logger.warning("the train split has %d items, fewer than batch_size=%d: drop_last leaves no batch",
                           len(dataset), batch_size)
        epoch, skip = 0, 0
        if train and self._resume is not None:  # the first loader after a restore continues the saved epoch
            epoch, skip = self._resume["epoch"], self._resume["batches"]
            self._resume = None
        return make_loader(dataset, batch_size, train, hp.num_workers, getattr(hp, "pin_memory", None), drop_last,
                           seed=hp.seed, rank=self._rank(), world_size=self._world_size(), epoch=epoch,
                           skip_batches=skip)

    def state_dict(self) -> dict[str, int]:
        """Where training is in its epoch (saved in checkpoints): the epoch and the batches trained in it."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != "fit":
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(trainer.current_epoch), "batches": int(progress.processed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume the saved epoch after the batches already trained (see :class:`ResumableSampler`)."""
        if state and "epoch" in state:
            self._resume = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}

    def _dataset(self, split: str) -> Dataset | None:
        raise NotImplementedError

    @property
    def train_dataset(self) -> Dataset | None:
        """The train split (built on first access; ``None`` when empty)."""
        return self._dataset("train")

    @property
    def val_dataset(self) -> Dataset | None:
        """The val split (built on first access; ``None`` when empty)."""
        return self._dataset("val")

    @property
    def test_dataset(self) -> Dataset | None:
        """The test split (built on first access; ``None`` when empty)."""
        return self._dataset("test")

    @property
    def predict_dataset(self) -> Dataset | None:
        """The test split without flips (built on first access; ``None`` when empty)."""
        return self._dataset("predict")

    def train_dataloader(self) -> DataLoader | list:
        """Shuffled (:class:`ResumableSampler`), random flips, ``drop_last``."""
        return self._loader("train")

    def val_dataloader(self) -> DataLoader | list:
        """The val split in order, no flips."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader | list:
        """The test split in order, no flips."""
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader | list:
        """The test split in order, no flips."""
        return self._loader("predict")


class FaceDataModule(_LoaderMixin, pl.LightningDataModule):
    """Real face images from a folder or a zip, split into train/val/test.

    Args:
        root: image folder (recursive) or ``.zip`` archive.
        resolution: image size R of the batches ([B, 3, R, R] in [-1, 1]).
        attributes: attribute table (CelebA ``list_attr`` format or CSV); batches get ``"attributes"`` [B, A].
        attribute_names: attributes to keep (default: all; all numeric columns for a CSV).
        attribute_key_column: CSV column with the file names (default: detected).
        masks: folder of ``N_mask.png`` index masks; batches get ``"mask"`` [B, R, R] (int64).
        split_seed, split_fractions: the seeded random split of the sorted keys (train, val, test).
        split_lists: ``{"train": file, "val": file, "test": file}`` key lists instead of a random split.
        split_partition: one partition file instead (CelebA ``list_eval_partition.txt``, or a CSV with a split
            column such as ``celeba_split``).
        flip: random horizontal flips of training images (and masks).
        center_crop: centre-crop non-square images to a square before resizing.
        batch_size, eval_batch_size: training / evaluation batch sizes (eval default: ``batch_size``).
        num_workers: DataLoader worker processes (persistent when > 0).
        pin_memory: default ``True`` when CUDA is available.
        skip_bad: check every file at setup and leave bad ones out (one warning); otherwise a bad file raises
            :class:`~stylegan_lightning.data.BadImageError` naming it when loaded.
        missing_labels: ``"error"`` or ``"skip"`` images without attributes / mask.
        max_items: use only the first N images (sorted by path) before splitting (demos, smoke tests).
        drop_last: drop the last incomplete training batch.
        seed: seed of the shuffling order and of the flips (offset by the rank under DDP).
    """

    def __init__(
        self,
        root: str,
        resolution: int = 256,
        attributes: str | None = None,
        attribute_names: list[str] | None = None,
        attribute_key_column: str | None = None,
        masks: str | None = None,
        split_seed: int = 0,
        split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05),
        split_lists: dict[str, str] | None = None,
        split_partition: str | None = None,
        flip: bool = True,
        center_crop: bool = True,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        skip_bad: bool = False,
        missing_labels: str = "error",
        max_items: int | None = None,
        drop_last: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        if split_lists is not None and split_partition is not None:
            raise ValueError("give split_lists or split_partition, not both")
        if max_items is not None and max_items < 1:
            raise ValueError(f"max_items must be positive, got {max_items}")
        if missing_labels not in MISSING_LABEL_POLICIES:
            raise ValueError(f"missing_labels must be one of {MISSING_LABEL_POLICIES}, got {missing_labels!r}")
        split_counts(100, split_fractions)  # checks the fractions now rather than at setup
        self.save_hyperparameters(logger=False)  # see the module docstring
        self._splits: dict[str, list[str]] | None = None
        self._source: ImageSource | None = None
        self._table: AttributeTable | None = None
        self._masks: MaskFolder | None = None
        self._datasets: dict[str, FaceImageDataset | None] = {}

    # ------------------------------------------------------------------ splits
    @property
    def splits(self) -> dict[str, list[str]]:
        """Keys per split (``train``, ``val``, ``test``), computed once."""
        if self._splits is None:
            hp = self.hparams
            self._source = open_source(hp.root)
            keys = self._source.keys[: hp.max_items] if hp.max_items else list(self._source.keys)
            if hp.split_lists:
                lists = {name: read_key_list(path) for name, path in hp.split_lists.items()}
                self._splits = listed_split(keys, lists, "split_lists")
            elif hp.split_partition:
                self._splits = listed_split(keys, read_partition(hp.split_partition), hp.split_partition)
            else:
                self._splits = random_split(keys, tuple(hp.split_fractions), hp.split_seed)
        return self._splits

    def _dataset(self, split: str) -> FaceImageDataset | None:
        if split not in self._datasets:
            hp = self.hparams
            keys = self.splits["test" if split == "predict" else split]
            if not keys:
                self._datasets[split] = None
                return None
            if hp.attributes and self._table is None:
                self._table = load_attribute_table(hp.attributes, hp.attribute_names, hp.attribute_key_column)
            if hp.masks and self._masks is None:
                self._masks = MaskFolder(hp.masks)
            self._datasets[split] = FaceImageDataset(
                self._source, hp.resolution, keys=keys, attributes=self._table, masks=self._masks,
                flip=hp.flip and split == "train", center_crop=hp.center_crop, seed=hp.seed + 1_000_003 * self._rank(),
                missing_labels=hp.missing_labels, skip_bad=hp.skip_bad,
            )
        return self._datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs (``fit``: train + val, ``validate``, ``test``, ``predict``)."""
        if stage not in _STAGE_SPLITS:
            raise ValueError(f"unknown stage {stage!r}")
        for split in _STAGE_SPLITS[stage]:
            self._dataset(split)


class SyntheticDataModule(_LoaderMixin, pl.LightningDataModule):
    """Faces sampled from a generator file, with their true latents (see :class:`SyntheticFaceDataset`).

    Each split is its own sample stream (streams 0/1/2 under ``seed``); ``predict`` is the test split. Args as
    :class:`SyntheticFaceDataset`, plus ``generator`` (a checkpoint path, loaded with
    ``FrozenGenerator.from_file`` in ``setup``), ``lengths`` (train, val, test) and the loader options of
    :class:`FaceDataModule`. Training items are shuffled and random only through their index, so ``flip`` does
    not exist here. For an in-memory generator use :meth:`from_generator`.
    """

    def __init__(
        self,
        generator: str | None = None,
        lengths: tuple[int, int, int] = (10000, 256, 256),
        truncation: float = 1.0,
        w_plus: bool = False,
        mixing_prob: float = 0.0,
        noise: str = "const",
        resolution: int | None = None,
        device: str = "cpu",
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        drop_last: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        if len(lengths) != 3 or any(n < 0 for n in lengths):
            raise ValueError(f"lengths must be three non-negative numbers (train, val, test), got {lengths}")
        self.save_hyperparameters(logger=False)  # see the module docstring
        self._frozen = None
        self._datasets: dict[str, SyntheticFaceDataset | None] = {}

    @classmethod
    def from_generator(cls, generator, **kwargs: Any) -> "SyntheticDataModule":
        """A module over an already loaded :class:`~stylegan_lightning.stylegan2.FrozenGenerator`."""
        module = cls(None, **kwargs)
        module._frozen = generator
        return module

    @property
    def frozen(self):
        """The generator (loaded from ``generator`` on first use)."""
        if self._frozen is None:
            if not self.hparams.generator:
                raise DatasetError("SyntheticDataModule needs a generator checkpoint path (generator=...)")
            from ..stylegan2 import FrozenGenerator

            self._frozen = FrozenGenerator.from_file(self.hparams.generator)
        return self._frozen

    def _dataset(self, split: str) -> SyntheticFaceDataset | None:
        if split not in self._datasets:
            hp = self.hparams
            stream = SPLITS.index("test" if split == "predict" else split)
            length = hp.lengths[stream]
            self._datasets[split] = None if length == 0 else SyntheticFaceDataset(
                self.frozen, length, truncation=hp.truncation, seed=hp.seed, w_plus=hp.w_plus,
                mixing_prob=hp.mixing_prob, noise=hp.noise, resolution=hp.resolution, device=hp.device, stream=stream,
            )
        return self._datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Load the generator and build the datasets the stage needs."""
        if stage not in _STAGE_SPLITS:
            raise ValueError(f"unknown stage {stage!r}")
        for split in _STAGE_SPLITS[stage]:
            self._dataset(split)
