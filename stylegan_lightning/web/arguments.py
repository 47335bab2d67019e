"""Options of the ``serve`` tool (light: no torch or Gradio import, so ``--help`` stays fast).

Every model option defaults to the shipped demo model (``data/demo/``, ``data/priors/``); the GradStyle and
HyperStyle demo models are not shipped, so their methods appear only when their files exist (``make
demo-gradstyle`` / ``make demo-hyperstyle`` write them) or when a config names the user's own files.
"""

from __future__ import annotations

import argparse

from ..options import positive_int
from ..photos.arguments import DETECTOR_CHOICES, FRAMING_CHOICES

DEFAULT_PORT = 7860
MAX_UPLOAD_MB = 10


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535 (0: any free port), got {value}")
    return value


def serve_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_argument_group("models (default: the shipped demo models)")
    models.add_argument("--codec", default=None, help="codec file or CodecModule checkpoint "
                                                      "(default: data/demo/codec.pt)")
    models.add_argument("--e4e", default=None, help="e4e / pSp encoder file or EncoderModule checkpoint "
                                                    "(default: data/demo/e4e-64.pt)")
    models.add_argument("--gradstyle", default=None, help="GradStyle checkpoint (default: data/demo/gradstyle-64.ckpt "
                                                          "when it exists)")
    models.add_argument("--hyperstyle", default=None, help="HyperStyle file or checkpoint (default: "
                                                           "outputs/demo/hyperstyle-64.pt when it exists)")
    models.add_argument("--w-encoder", default=None, help="W-encoder of an official-layout HyperStyle file (default: "
                                                          "data/demo/w-encoder-64.pt with the demo HyperStyle)")
    models.add_argument("--generator", default=None, help="generator file when a checkpoint's is elsewhere")
    models.add_argument("--styleae", default=None, help="StyleAE file for the attribute sliders (default: "
                                                        "data/demo/styleae-64.pt)")
    models.add_argument("--directions", nargs="+", default=None,
                        help="InterFaceGAN / e4e direction files or folders of them, one slider entry per file, named "
                             "by its stem (default: data/demo/directions)")
    models.add_argument("--ganspace", default=None, help="GANSpace PCA file (.npz or e4e-style .pt; default: "
                                                         "data/demo/directions/ganspace.pt)")
    models.add_argument("--ganspace-components", type=positive_int, default=5,
                        help="GANSpace components offered, the largest first")
    models.add_argument("--identity", default=None, help="identity network weights for the identity score (default: "
                                                         "the weights folder's file for --id-backend, when present)")
    models.add_argument("--id-backend", default="mobilefacenet", choices=("mobilefacenet", "arcface", "curricularface"),
                        help="identity network")
    photos = parser.add_argument_group("photos")
    photos.add_argument("--framing", choices=FRAMING_CHOICES, default="utkface-64",
                        help="face crop the models were trained on (utkface-64: the demo models)")
    photos.add_argument("--detector", choices=DETECTOR_CHOICES, default="hog", help="dlib face detector")
    server = parser.add_argument_group("server (this machine only)")
    server.add_argument("--host", default="127.0.0.1",
                        help="loopback address to bind: 127.0.0.1 (or another 127.x.y.z), localhost or ::1")
    server.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="TCP port (0: any free port)")
    server.add_argument("--max-upload-mb", type=positive_int, default=MAX_UPLOAD_MB,
                        help="largest upload accepted, in megabytes")
    server.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda, ...")


__all__ = ["DEFAULT_PORT", "MAX_UPLOAD_MB", "port_number", "serve_arguments"]
