"""Ordinary photos in and out: face detection, FFHQ alignment (:mod:`.alignment`) and paste-back, and the ``align``
tool. Importing the package is cheap: each name is imported from its module on first use."""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {name: ".alignment" for name in (
    "AlignedFace", "DETECTORS", "FRAMINGS", "FaceLandmarker", "framed_quad", "NoFaceError", "align_face", "align_faces", "feather_mask",
    "ffhq_quad", "load_photo", "paste_back", "write_aligned")}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
