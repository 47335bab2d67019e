"""Choice between the pure PyTorch reference ops and the CUDA kernels.

``STYLEGAN_LIGHTNING_OPS`` (read at import) or :func:`set_impl` selects the default:

- ``auto`` (default): CUDA kernels for CUDA tensors when they build, the reference otherwise;
- ``ref``: always the reference implementation (ground truth, every device);
- ``cuda``: always the CUDA kernels; an error if the tensor is not on CUDA or the kernels do not build.

Every op also takes ``impl=`` to override the default for one call.
"""

from __future__ import annotations

import os

import torch

IMPLEMENTATIONS = ("auto", "ref", "cuda")
ENV_VAR = "STYLEGAN_LIGHTNING_OPS"


def _validate(name: str) -> str:
    name = name.strip().lower()
    if name not in IMPLEMENTATIONS:
        raise ValueError(f"unknown ops implementation {name!r}; expected one of {IMPLEMENTATIONS}")
    return name


_default = _validate(os.environ.get(ENV_VAR, "auto") or "auto")


def set_impl(name: str) -> None:
    """Set the process-wide default implementation (``auto``, ``ref`` or ``cuda``)."""
    global _default
    _default = _validate(name)


def get_impl() -> str:
    """The process-wide default implementation."""
    return _default


def resolve(impl: str | None, x: torch.Tensor, plugin_name: str) -> str:
    """Decide ``'ref'`` or ``'cuda'`` for one call on tensor ``x``."""
    from .plugin import get_plugin  # late import: the plugin module pulls in cpp_extension lazily

    choice = _validate(impl) if impl is not None else _default
    if choice == "ref":
        return "ref"
    if choice == "cuda":
        if not x.is_cuda:
            raise RuntimeError(f"ops implementation 'cuda' was requested for a tensor on {x.device}")
        if get_plugin(plugin_name, required=True) is None:  # pragma: no cover - raises instead
            raise RuntimeError(f"CUDA op {plugin_name} is unavailable")
        return "cuda"
    if x.is_cuda and get_plugin(plugin_name) is not None:
        return "cuda"
    return "ref"
