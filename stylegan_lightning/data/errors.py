"""Errors raised by the data pipeline.

Both are :class:`ValueError` subclasses whose constructor takes a single message, so that PyTorch's
``DataLoader`` can re-raise them in the main process when they happen inside a worker (it rebuilds the
exception from its type and the formatted worker traceback, which keeps the file name in the message).
"""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset, label table, mask folder or split description is missing, empty or inconsistent."""


class BadImageError(DatasetError):
    """An image or mask file cannot be used: empty, not an image, corrupt, truncated or of an unsupported mode.

    The message always starts with the file (a path, or ``archive.zip:member``) and says why. ``path`` and
    ``reason`` are also kept as attributes when the error is raised directly (not after crossing a worker
    boundary, where only the message survives).
    """

    def __init__(self, message: str, *, path: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.path = path
        self.reason = reason

    @classmethod
    def for_file(cls, path: str, reason: str) -> "BadImageError":
        """The standard ``"<path>: <reason>"`` error."""
        return cls(f"{path}: {reason}", path=path, reason=reason)
