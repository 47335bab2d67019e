"""Small shared helpers (image files, tables, timing)."""

from .images import check_images, image_grid, resize_images, resize_labels, save_image, tensor_to_pil
from .table import format_table
from .timing import Timer, median_seconds, select_device

__all__ = ["Timer", "check_images", "format_table", "image_grid", "median_seconds", "resize_images", "resize_labels",
           "save_image", "select_device", "tensor_to_pil"]
