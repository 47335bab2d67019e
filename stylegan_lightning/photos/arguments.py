"""Options of the ``align`` tool (light: no torch import, so ``--help`` stays fast)."""

from __future__ import annotations

import argparse

from ..options import positive_int

DETECTOR_CHOICES = ("hog", "cnn")
FRAMING_CHOICES = ("ffhq", "utkface-64")  # the names of stylegan_lightning.photos.FRAMINGS (checked by a test)


def align_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", nargs="+", help="photos or folders of photos (JPEG, PNG, WebP, HEIC, AVIF ...)")
    parser.add_argument("--out", default="outputs/aligned", help="folder for <photo>_face<i>.png and .json")
    parser.add_argument("--size", type=positive_int, default=1024, help="side of the aligned faces in pixels")
    parser.add_argument("--all-faces", action="store_true", help="align every face of a photo, not only the largest")
    parser.add_argument("--detector", choices=DETECTOR_CHOICES, default="hog",
                        help="dlib face detector: hog (fast) or cnn (finds smaller and turned faces, slower)")
    parser.add_argument("--upsample", type=int, default=None, choices=(0, 1, 2),
                        help="times the detector upsamples the photo after downscaling it to 1024 px (default: 0, "
                             "then 1 when no face is found)")
    parser.add_argument("--framing", choices=FRAMING_CHOICES, default="ffhq",
                        help="ffhq (the FFHQ square), or the tighter crop a model was trained on: utkface-64 (the "
                             "CPU face prior)")
    parser.add_argument("--no-padding", action="store_true",
                        help="leave black where the face square leaves the photo instead of reflect-padding")


def align_input_arguments(parser, every_face: bool = True) -> None:
    """``--align`` (with ``--all-faces`` when ``every_face``, ``--detector``, ``--framing``) of the tools that read
    face images (invert, edit, compress, evaluate)."""
    parser.add_argument("--align", action="store_true",
                        help="the images are ordinary photos: detect and FFHQ-align their faces first (the "
                             "largest of each photo; see `stylegan-lightning align`)")
    if every_face:
        parser.add_argument("--all-faces", action="store_true", help="with --align: every face of each photo")
    parser.add_argument("--detector", choices=DETECTOR_CHOICES, default="hog", help="with --align: the face detector")
    parser.add_argument("--framing", choices=FRAMING_CHOICES, default="ffhq",
                        help="with --align: the crop the model was trained on (utkface-64: the CPU face prior)")


__all__ = ["DETECTOR_CHOICES", "FRAMING_CHOICES", "align_arguments", "align_input_arguments"]
