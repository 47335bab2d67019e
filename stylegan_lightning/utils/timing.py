"""Wall-clock timing that waits for CUDA work, and device selection."""

from __future__ import annotations

import time

import torch


def select_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise ``torch.device(name)`` (checked to exist)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was requested but CUDA is not available")
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
