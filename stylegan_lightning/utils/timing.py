"""Wall-clock timing that waits for CUDA work, and device selection."""

from __future__ import annotations

import time

import torch


def select_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise ``torch.device(name)`` (checked to exist)."""
    from ..errors import UsageError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UsageError(f"--device {name!r} is not a device (auto, cpu, cuda, cuda:1 ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name!r}: CUDA is not available on this machine (use cpu or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name!r}: only cpu and cuda are supported")
    return device


class Timer:
    """``with Timer(device) as t: ...`` then ``t.seconds``; synchronises CUDA before reading the clock."""

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else None
        self.seconds = 0.0

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> "Timer":
        self._sync()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self._start


def median_seconds(function, repeats: int = 3, device: torch.device | str | None = None) -> float:
    """Median seconds of ``function()`` over ``repeats`` runs after one warm-up run (CUDA synchronised)."""
    import statistics

    function()
    times = []
    for _ in range(repeats):
        with Timer(device) as timer:
            function()
        times.append(timer.seconds)
    return statistics.median(times)
