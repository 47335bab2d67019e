"""The toolkit's user-input errors (importing this module costs nothing: no torch). The command line prints any of
them, or an error caused by one, as one line with exit status 2.

- :class:`UsageError`: a bad option or configuration value.
- :class:`CheckpointError`: a weight file is missing, unreadable, or does not match the model it is loaded into.
- :class:`UnsafeCheckpointError`: a weight file asks to import or run something that is not plain data.

The data and codec packages add ``DatasetError`` and ``BitstreamError`` (both :class:`ValueError`).
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad command-line or configuration input."""


class CheckpointError(ValueError):
    """A weight file is missing, unreadable, or does not match the model it is loaded into."""


class UnsafeCheckpointError(CheckpointError):
    """A weight file asks to import or run something that is not plain data; it was not loaded."""


__all__ = ["CheckpointError", "UnsafeCheckpointError", "UsageError"]
