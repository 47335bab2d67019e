"""Helpers of the tests that run the ``stylegan-lightning`` command in subprocesses (DDP, resume)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parent


def run_cli(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m stylegan_lightning ARGUMENTS`` in ``cwd`` (one thread per process; ``tests/`` importable, for
    test-only callbacks)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "stylegan_lightning", *arguments], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def logged_val_metrics(save_dir: Path) -> dict[str, float]:
    """The last value of every ``val/`` column of the CSV loggers' metrics files under ``save_dir``."""
    values: dict[str, float] = {}
    for path in sorted(save_dir.rglob("metrics.csv")):
        with path.open() as handle:
            for row in csv.DictReader(handle):
                values.update({k: float(v) for k, v in row.items() if v not in ("", None) and k.startswith("val/")})
    return values


def save_generator_16(root: Path) -> str:
    """A seeded 16 px generator file (style width 16)."""
    from stylegan_lightning.stylegan2 import Generator, save_generator

    torch.manual_seed(0)
    return str(save_generator(root / "g16.pt", Generator(16, style_dim=16, n_mlp=2, channel_max=16).eval()))


def synthetic_data(generator: str, train: int = 16, held_out: int = 8, batch_size: int = 2) -> dict:
    """A ``SyntheticDataModule`` config section over ``generator``."""
    return {"class_path": "stylegan_lightning.data.SyntheticDataModule",
            "init_args": {"generator": generator, "lengths": [train, held_out, held_out], "batch_size": batch_size,
                          "eval_batch_size": 4}}
