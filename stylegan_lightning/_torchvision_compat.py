"""Make ``import torchvision`` work when its compiled ops cannot load.

On a CPU-only PyTorch build the only torchvision wheel pinned to it may be a CUDA build whose ``_C`` library
does not load. torchvision then fails at import time while registering fake kernels for ``torchvision::nms``
and ``torchvision::qnms`` -- and so does every package importing it (lightning, torchmetrics, lpips, timm,
compressai). :func:`install` must run before any of those import it (:mod:`._import_hook` sees to that). When
``_C`` loads normally it does nothing; otherwise it declares the two op schemas and registers a plain PyTorch CPU
``nms`` kernel, after which torchvision's models, transforms and ops import and work (its image decoding does
not: use Pillow).
"""

from __future__ import annotations

import glob
import importlib.util
import os

import torch

_LIBRARY = None  # keeps the torch.library registration alive for the life of the process


def _torchvision_extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # torchvision not installed: nothing to repair
    for folder in spec.submodule_search_locations:
        for path in glob.glob(os.path.join(folder, "_C.*")):
            try:
                torch.ops.load_library(path)
                return True
            except (OSError, RuntimeError, ImportError):
                return False
    return True


def _nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression on (N, 4) boxes in (x1, y1, x2, y2); returns kept indices by score."""
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    x1, y1, x2, y2 = boxes.unbind(1)
    area = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = w * h
        iou = inter / (area[i] + area - inter)
        suppressed |= iou > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def install() -> None:
    """Register the missing torchvision op schemas if (and only if) torchvision's ``_C`` fails to load."""
    global _LIBRARY
    if _LIBRARY is not None or _torchvision_extension_loads():
        return
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", _nms_reference, "CPU")
    _LIBRARY = lib

