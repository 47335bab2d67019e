"""Lazy, once-per-process build of the CUDA kernels in ``csrc/``.

A kernel is compiled with :func:`torch.utils.cpp_extension.load` the first time an op meets a CUDA tensor.
The result -- the loaded module or the failure -- is remembered, so a failed build warns once and every later
call goes straight to the reference implementation instead of trying to compile again.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from types import ModuleType

from ..utils.warn import warn_caller

SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
PLUGINS = {"upfirdn2d": "upfirdn2d.cu", "bias_act": "bias_act.cu"}

_cache: dict[str, ModuleType | BaseException] = {}
_lock = threading.Lock()


def compile_kernel(name: str, build_directory: str | None = None, extra_cuda_cflags: list[str] | None = None,
                   verbose: bool | None = None) -> ModuleType:
    """Compile (or reuse a cached build of) the kernel ``name`` and import it; needs nvcc, not a GPU.

    The architectures are PyTorch's choice: ``TORCH_CUDA_ARCH_LIST`` (e.g. ``"8.0;9.0"``), else the visible GPUs.
    ``tools/cuda_build_check.py`` uses this to compile both kernels on a machine without a GPU.
    """
    from torch.utils import cpp_extension

    if name not in PLUGINS:
        raise KeyError(f"unknown CUDA op {name!r}; known: {sorted(PLUGINS)}")
    source = SOURCE_DIR / PLUGINS[name]
    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:10]  # a changed source gets a fresh build dir
    if verbose is None:
        verbose = os.environ.get("STYLEGAN_LIGHTNING_VERBOSE_BUILD", "") not in ("", "0")
    return cpp_extension.load(
        name=f"stylegan_lightning_{name}_{digest}",
        sources=[str(source)],
        build_directory=build_directory,
        extra_cflags=["-O3"],
        extra_cuda_cflags=["-O3", *(extra_cuda_cflags or [])],
        verbose=verbose,
    )


def _build(name: str) -> ModuleType:
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("CUDA is not available in this PyTorch build")
    return compile_kernel(name)


def get_plugin(name: str, required: bool = False) -> ModuleType | None:
    """The compiled module for ``name``, building it on first use; ``None`` if it cannot be built.

    With ``required=True`` a failed build raises instead of returning ``None``.
    """
    if name not in PLUGINS:
        raise KeyError(f"unknown CUDA op {name!r}; known: {sorted(PLUGINS)}")
    with _lock:
        if name not in _cache:
            try:
                _cache[name] = _build(name)
            except Exception as error:  # noqa: BLE001 - any build failure means "use the reference"
                _cache[name] = error
                warn_caller(
                    f"stylegan_lightning: the CUDA kernel '{name}' could not be built ({type(error).__name__}: "
                    f"{error}). Using the PyTorch reference implementation for this process (same results, "
                    "slower). Usual fixes: `pip install ninja`, a CUDA toolkit matching torch.version.cuda, "
                    "removing ~/.cache/torch_extensions. Set STYLEGAN_LIGHTNING_OPS=ref to skip the build.",
                    RuntimeWarning,
                )
        result = _cache[name]
    if isinstance(result, BaseException):
        if required:
            raise RuntimeError(f"the CUDA kernel '{name}' is unavailable") from result
        return None
    return result


def plugin_status() -> dict[str, str]:
    """What happened to each kernel so far: ``not built``, ``loaded`` or ``failed: <reason>``."""
    status = {}
    for name in PLUGINS:
        result = _cache.get(name)
        if result is None:
            status[name] = "not built"
        elif isinstance(result, BaseException):
            status[name] = f"failed: {type(result).__name__}: {result}"
        else:
            status[name] = "loaded"
    return status
