"""Options of the StyleAE command-line tools (``label-latents``, ``compare-edits``; run by :mod:`.tools`). Apart
from the tools, so that a tool's ``--help`` imports no torch."""

from __future__ import annotations

import argparse

from ..options import DEVICE_HELP, finite_float, positive_int, truncation


def label_latents_arguments(parser: argparse.ArgumentParser) -> None:
    sampled = parser.add_argument_group("sampled codes labelled by a classifier")
    sampled.add_argument("--generator", default=None, help="generator file")
    sampled.add_argument("--classifier", default=None, help="attribute classifier file (exported or checkpoint)")
    sampled.add_argument("--n", type=positive_int, default=10000, help="codes to sample")
    sampled.add_argument("--seed", type=int, default=0, help="sampling seed")
    sampled.add_argument("--truncation", type=truncation, default=1.0, help="truncation psi of the sampled codes")
    inverted = parser.add_argument_group("inverted real images with dataset labels")
    inverted.add_argument("--latents", default=None, help="latents.pt written by `invert`")
    inverted.add_argument("--attributes", default=None, help="attribute table: CelebA list_attr_celeba.txt or CSV")
    parser.add_argument("--attribute-names", nargs="+", default=None, help="label columns to keep (default: all)")
    parser.add_argument("--out", required=True, help="output latent-attribute file (.pt)")


def compare_edits_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--styleae", required=True, help="StyleAE file (or StyleAEModule checkpoint)")
    parser.add_argument("--generator", required=True, help="the generator the StyleAE was trained for")
    parser.add_argument("--classifier", required=True,
                        help="the attribute classifier that labelled the training pairs: the reference protocol's "
                             "search aims its score at --target; the step protocol's only classifier")
    parser.add_argument("--protocol", choices=["reference", "steps"], default="reference",
                        help="reference: search each edit path for the labeller's --target, success and the other "
                             "attributes by --judge, identity and other attributes on the codes every editor "
                             "edited; steps: walk each path until --classifier flips to 0.5 +- --margin")
    parser.add_argument("--judge", default=None,
                        help="reference protocol: a second attribute classifier file (not --classifier) that counts "
                             "success and measures the other attributes")
    parser.add_argument("--target", type=finite_float, default=0.91,
                        help="reference protocol: probability searched for going up (1 - target going down)")
    parser.add_argument("--direction", choices=["flip", "up", "down"], default="flip",
                        help="reference protocol: flip each code's attribute (by --classifier), or edit every code "
                             "up / down")
    parser.add_argument("--candidates", type=positive_int, default=20,
                        help="reference protocol: points searched on each edit path")
    parser.add_argument("--styleae-span", type=finite_float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="reference protocol: StyleAE searches the coordinate values +-(LOW..HIGH) (the "
                             "reference: 3 20) instead of its current value to +-limit")
    parser.add_argument("--directions", nargs="+", default=[], metavar="ATTRIBUTE=FILE",
                        help="InterFaceGAN direction files; attributes without one get a direction fitted on "
                             "--fit-latents")
    parser.add_argument("--fit-latents", default=None, help="latent-attribute file to fit missing directions on "
                                                            "(the StyleAE's training pairs)")
    parser.add_argument("--latents", default=None, help="codes to edit: a latent-attribute file (its last --n codes)"
                                                        "; default: --n codes sampled with --seed")
    parser.add_argument("--n", type=positive_int, default=100, help="codes to edit")
    parser.add_argument("--seed", type=int, default=12345, help="sampling seed of the edited codes")
    parser.add_argument("--attribute-names", nargs="+", default=None, help="attributes to edit (default: all "
                                                                           "binary ones)")
    parser.add_argument("--margin", type=finite_float, default=0.25,
                        help="step protocol: target probability 0.5 +- margin")
    parser.add_argument("--steps", type=positive_int, default=8, help="step protocol: points on each edit path")
    parser.add_argument("--limit", type=finite_float, default=3.0,
                        help="StyleAE coordinate limit / InterFaceGAN limit in standard deviations")
    parser.add_argument("--identity", default=None, help="identity network weights (with --id-backend) for the "
                                                         "identity similarity column")
    parser.add_argument("--id-backend", choices=["arcface", "mobilefacenet", "onnx"], default="arcface",
                        help="identity network of the identity-similarity column")
    parser.add_argument("--csv", default=None, help="also write the table here")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


__all__ = ["compare_edits_arguments", "label_latents_arguments"]
