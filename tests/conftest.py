"""Shared test fixtures. Importing the package first installs the torchvision compatibility shim."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import stylegan_lightning  # noqa: F401  (must precede anything that imports torchvision)
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _share_the_cores() -> None:
    """Under pytest-xdist, split the CPU cores between the workers (``-n 2`` on 2 cores: one intra-op thread each).
    Two workers with two threads each oversubscribe the cores, and a worker's matrix products then wait for the
    other's threads (measured: a 44 s test took 253 s in the full run)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


_share_the_cores()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_dir() -> Path:
    """``../shared`` beside the checkout (real faces and small weights); skipped when absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not available")
    return SHARED


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op thread for a module of tiny models (``pytestmark = pytest.mark.usefixtures("single_thread")``):
    as fast as two, and no many-fold slow-down when other jobs share the CPU cores. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_tf32():
    """Full float32 precision in cuDNN and cuBLAS (TF32 off) for CUDA-versus-CPU comparisons; restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def tiny_generator():
    """Factory for small random generators: ``tiny_generator(size=32, seed=0, **kwargs)``."""
    from stylegan_lightning.stylegan2 import Generator

    def make(size: int = 32, seed: int = 0, style_dim: int = 32, n_mlp: int = 2, channel_max: int = 16, **kwargs):
        torch.manual_seed(seed)
        generator = Generator(size, style_dim=style_dim, n_mlp=n_mlp, channel_max=channel_max, **kwargs)
        with torch.no_grad():  # non-trivial noise strengths and biases so every parameter matters
            for name, param in generator.named_parameters():
                if name.endswith("noise.weight") or name.endswith("activate.bias") or name.endswith("to_rgb1.bias"):
                    param.normal_(0, 0.1)
        return generator.eval()

    return make
