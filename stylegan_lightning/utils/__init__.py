"""Small shared helpers (image files, tables, timing, progress bars, size bounds, warnings).

Importing the package is cheap: each name is imported from its module on first use (PEP 562).
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "Timer": ".timing",
    "check_images": ".images",
    "format_table": ".table",
    "image_grid": ".images",
    "median_seconds": ".timing",
    "progress": ".progress",
    "resize_images": ".images",
    "resize_labels": ".images",
    "save_image": ".images",
    "select_device": ".timing",
    "tensor_to_pil": ".images",
    "warn_caller": ".warn",
}

__all__ = ["Timer", "check_images", "format_table", "image_grid", "median_seconds", "progress", "resize_images",
           "resize_labels", "save_image", "select_device", "tensor_to_pil", "warn_caller"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
