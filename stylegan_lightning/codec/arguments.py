"""Options of the codec's command-line tools (``compress``, ``decompress``, ``evaluate``; run by :mod:`.tools`).
Apart from the tools, so that a tool's ``--help`` imports neither torch nor CompressAI."""

from __future__ import annotations

import argparse

from ..options import DEVICE_HELP, positive_int
from ..photos.arguments import align_input_arguments
from .bitstream import SUFFIX

CODEC_HELP = "codec file (CodecModule export_path, `save_codec`) or a CodecModule Lightning checkpoint (required)"


def compress_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``stylegan-lightning compress``."""
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="image files, folders (searched recursively) or .zip archives of images")
    parser.add_argument("--codec", default=None, help=CODEC_HELP)
    parser.add_argument("--out", default="outputs/compressed",
                        help=f"folder for the streams: OUT/<image path without extension>{SUFFIX} (sub-folders of "
                             f"a folder or zip input are kept)")
    parser.add_argument("--layers", type=positive_int, default=None,
                        help="write layers 1..K only (default: every layer of the codec)")
    parser.add_argument("--resolution", type=positive_int, default=None,
                        help="code the images at R x R, 1 <= R <= 4 x the generator's resolution (default: the "
                             "generator's resolution); bits per pixel count these pixels")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per encoder batch")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    align_input_arguments(parser)
    parser.epilog = (f"With --align, OUT/<photo>_face<i>{SUFFIX} is written beside OUT/<photo>_face<i>.json (where the "
                     "face was in its photo), which `decompress --paste-back` reads.")


def decompress_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``stylegan-lightning decompress``."""
    parser.add_argument("streams", nargs="*", metavar="STREAM",
                        help=f"{SUFFIX} stream files, or folders searched recursively for them")
    parser.add_argument("--codec", default=None, help=CODEC_HELP + "; it must be the model that wrote the streams")
    parser.add_argument("--out", default="outputs/decompressed",
                        help="folder for the images: OUT/<stream name>.png (sub-folders of a folder input are kept)")
    parser.add_argument("--layers", type=positive_int, default=None,
                        help="decode at most layers 1..K (default: every layer each stream holds)")
    parser.add_argument("--all-layers", action="store_true",
                        help="write <name>_layer1.png ... <name>_layer<k>.png, one image per layer prefix, "
                             "instead of <name>.png")
    parser.add_argument("--paste-back", action="store_true",
                        help="also write <name>_pasted.png: the decoded face warped back into its photo (the "
                             "<name>.json that `compress --align` wrote beside the stream says where)")
    parser.add_argument("--photo", default=None, help="with --paste-back and one stream: the photo to paste into "
                                                      "(default: the one recorded in the stream's .json)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.epilog = ("Every stream is read and checked (format, checksums, that --codec wrote it) before anything is "
                     "decoded: the first bad file stops the run with a one-line error naming it (exit status 2) and "
                     "no image is written.")


def evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``stylegan-lightning evaluate``."""
    parser.add_argument("--codec", default=None, help=CODEC_HELP)
    parser.add_argument("--images", default=None, help="an image file, a folder (recursive) or a .zip archive "
                                                       "(required)")
    parser.add_argument("--resolution", type=positive_int, default=None,
                        help="code the images at R x R, 1 <= R <= 4 x the generator's resolution (default: the "
                             "generator's resolution); bits per pixel and every metric use these pixels")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="evaluate the first N images (sorted by path) only")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="images per batch")
    parser.add_argument("--masks", default=None,
                        help="folder of CelebAMask-HQ-style parsing masks (N_mask.png / N.png) for the images: "
                             "parsing mIoU against them instead of against the parse of the input")
    parser.add_argument("--baselines", default=None,
                        help="classical codecs at their lowest rate to add as rows, comma-separated: jpeg,webp,avif,"
                             "heic (codecs not available on this install are skipped with a note)")
    parser.add_argument("--grid", default=None,
                        help="PNG grid to write: one row per image (first 8), columns input | layer 1 | layers 1-2 "
                             "| layers 1-3")
    parser.add_argument("--csv", default=None, help="write the table as CSV here (full precision)")
    parser.add_argument("--weights", action="append", default=None, metavar="KEY=PATH",
                        help="pretrained file of a metric network by registry key (repeatable; see "
                             "`stylegan-lightning weights`), e.g. alexnet_imagenet=/data/alexnet.pth; otherwise "
                             "files are looked up in $STYLEGAN_LIGHTNING_WEIGHTS (default ./weights)")
    parser.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex", help="LPIPS backbone")
    align_input_arguments(parser, every_face=False)
    parser.add_argument("--id-backend", choices=["arcface", "mobilefacenet", "onnx"], default="arcface",
                        help="identity network of id_similarity and id_accuracy")
    parser.add_argument("--classifier", default=None,
                        help="attribute classifier (`stylegan-lightning fit --config configs/classifier.yaml`, e.g. "
                             "data/demo/classifier.pt): adds attribute_accuracy, how often its decision on the "
                             "decoded face matches its decision on the input")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


__all__ = ["CODEC_HELP", "compress_arguments", "decompress_arguments", "evaluate_arguments"]
