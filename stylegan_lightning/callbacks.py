"""Lightning callbacks of the toolkit."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import TQDMProgressBar


def _clock(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


class RunProgressBar(TQDMProgressBar):
    """Lightning's progress bar plus the whole run's progress: ``run`` = steps done / ``trainer.max_steps`` and
    ``eta`` = h:mm left at the step rate of this process so far (validation included), so a multi-epoch
    recipe shows when it will finish, not only when the current epoch does. A resumed run measures its own rate."""

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False):
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self._start: tuple[float, int] | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._start = (time.monotonic(), trainer.global_step)

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        total = trainer.max_steps
        if total and total > 0 and self._start is not None:
            started, first_step = self._start
            done = trainer.global_step - first_step
            metrics["run"] = f"{trainer.global_step}/{total}"
            if done > 0:
                rate = (time.monotonic() - started) / done
                metrics["eta"] = _clock(rate * max(total - trainer.global_step, 0))
        return metrics


__all__ = ["RunProgressBar"]
