"""Helpers shared by test modules (imported as a plain module beside them)."""

from __future__ import annotations

import torch


def randomize_batchnorm(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial batch-norm statistics, so eval-mode outputs depend on every buffer a loader must restore."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=g) + 0.5)
            elif name.endswith("num_batches_tracked"):
                buffer.fill_(7)
    return module
