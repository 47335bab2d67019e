"""StyleAE command-line tools (registered in :mod:`stylegan_lightning.cli`; options may come from ``--config``).

- ``label-latents``: writes the (w, attribute) pairs StyleAE trains on (:mod:`stylegan_lightning.data.latents`):
  ``--generator G --classifier C --n N`` samples and labels codes; ``--latents invert/latents.pt --attributes
  TABLE`` joins inverted real images with their dataset labels.
- ``compare-edits``: StyleAE against InterFaceGAN directions at equal attribute change
  (:func:`~stylegan_lightning.styleae.evaluate_attribute_edits`), as a table (and CSV).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from ..cli import UsageError
from ..utils import format_table


def label_latents_arguments(parser: argparse.ArgumentParser) -> None:
    sampled = parser.add_argument_group("sampled codes labelled by a classifier")
    sampled.add_argument("--generator", default=None, help="generator file")
    sampled.add_argument("--classifier", default=None, help="attribute classifier file (exported or checkpoint)")
    sampled.add_argument("--n", type=int, default=10000, help="codes to sample")
    sampled.add_argument("--seed", type=int, default=0)
    sampled.add_argument("--truncation", type=float, default=1.0)
    inverted = parser.add_argument_group("inverted real images with dataset labels")
    inverted.add_argument("--latents", default=None, help="latents.pt written by `invert`")
    inverted.add_argument("--attributes", default=None, help="attribute table: CelebA list_attr_celeba.txt or CSV")
    parser.add_argument("--attribute-names", nargs="+", default=None, help="label columns to keep (default: all)")
    parser.add_argument("--out", required=True, help="output latent-attribute file (.pt)")


def run_label_latents(args: argparse.Namespace) -> int:
    from ..data.latents import join_latent_attributes, sample_latent_attributes
    from ..stylegan2 import FrozenGenerator

    if bool(args.latents) == bool(args.generator):
        raise UsageError("give --generator with --classifier (sampled codes) or --latents with --attributes "
                         "(inverted images)")
    if args.latents:
        if not args.attributes:
            raise UsageError("--latents needs --attributes (the dataset's attribute table)")
        data = join_latent_attributes(args.latents, args.attributes, args.attribute_names)
    else:
        if not args.classifier:
            raise UsageError("--generator needs --classifier (the attribute classifier that labels the codes)")
        data = sample_latent_attributes(FrozenGenerator.from_file(args.generator), args.classifier, args.n,
                                        args.truncation, args.seed).select(args.attribute_names)
    path = data.save(args.out)
    labels = data.labels
    rows = [[name, int(torch.isfinite(labels[:, i]).sum()), round(float(labels[:, i].nanmean()), 4),
             round(float(labels[:, i][torch.isfinite(labels[:, i])].std()), 4) if len(labels) > 1 else 0.0]
            for i, name in enumerate(data.attribute_names)]
    print(format_table(rows, ["attribute", "labelled codes", "mean", "std"]))
    print(f"wrote {path}: {len(data)} codes of {data.w.shape[1]} dimensions ({data.source})")
    return 0


def compare_edits_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--styleae", required=True, help="StyleAE file (or StyleAEModule checkpoint)")
    parser.add_argument("--generator", required=True, help="the generator the StyleAE was trained for")
    parser.add_argument("--classifier", required=True, help="attribute classifier that judges the edits")
    parser.add_argument("--directions", nargs="+", default=[], metavar="ATTRIBUTE=FILE",
                        help="InterFaceGAN direction files; attributes without one get a direction fitted on "
                             "--fit-latents")
    parser.add_argument("--fit-latents", default=None, help="latent-attribute file to fit missing directions on "
                                                            "(the StyleAE's training pairs)")
    parser.add_argument("--latents", default=None, help="codes to edit: a latent-attribute file (its last --n codes)"
                                                        "; default: --n codes sampled with --seed")
    parser.add_argument("--n", type=int, default=100, help="codes to edit")
    parser.add_argument("--seed", type=int, default=12345, help="sampling seed of the edited codes")
    parser.add_argument("--attribute-names", nargs="+", default=None, help="attributes to edit (default: all "
                                                                           "binary ones)")
    parser.add_argument("--margin", type=float, default=0.25, help="target probability 0.5 +- margin")
    parser.add_argument("--steps", type=int, default=8, help="points on each edit path")
    parser.add_argument("--limit", type=float, default=3.0, help="StyleAE coordinate limit / InterFaceGAN limit in "
                                                                 "standard deviations")
    parser.add_argument("--identity", default=None, help="identity network weights (with --id-backend) for the "
                                                         "identity similarity column")
    parser.add_argument("--id-backend", default="arcface", help="arcface, mobilefacenet or onnx")
    parser.add_argument("--csv", default=None, help="also write the table here")
    parser.add_argument("--device", default="auto")


def _direction_files(entries: list[str]) -> dict[str, str]:
    files = {}
    for entry in entries:
        name, separator, path = entry.partition("=")
        if not separator or not name or not path:
            raise UsageError(f"--directions takes ATTRIBUTE=FILE entries, got {entry!r}")
        files[name] = path
    return files


def run_compare_edits(args: argparse.Namespace) -> int:
    from ..data.latents import load_latent_attributes
    from ..editing import load_attribute_classifier, load_direction, sample_latents
    from ..nets.identity import build_identity_encoder
    from ..stylegan2 import FrozenGenerator
    from ..utils import select_device
    from .checkpoints import load_styleae
    from .evaluation import (COMPARISON_HEADER, DirectionEditor, StyleAEEditor, binary_outputs, comparison_rows,
                             evaluate_attribute_edits, fit_interfacegan_directions)

    device = select_device(args.device)
    model = load_styleae(args.styleae).to(device)
    generator = FrozenGenerator.from_file(args.generator).to(device)
    classifier = load_attribute_classifier(args.classifier).to(device)
    if model.latent_dim != generator.style_dim:
        raise UsageError(f"the StyleAE works on {model.latent_dim}-d codes; the generator's W is "
                         f"{generator.style_dim}-d")
    names = args.attribute_names or binary_outputs(classifier, model.attribute_names)
    unknown = [n for n in names if n not in model.attribute_names]
    if unknown:
        raise UsageError(f"the StyleAE has no attribute(s) {unknown}; it has {model.attribute_names}")
    directions = {name: load_direction(path, name=name) for name, path in _direction_files(args.directions).items()}
    missing = [n for n in names if n not in directions]
    if missing:
        if not args.fit_latents:
            raise UsageError(f"no InterFaceGAN direction for {missing}: give --directions {missing[0]}=FILE or "
                             "--fit-latents (pairs to fit them on)")
        pairs = load_latent_attributes(args.fit_latents).select(missing)
        ranges = [model.config["label_ranges"][model.attribute_index(n)] for n in missing]
        directions.update(fit_interfacegan_directions(pairs.w, pairs.labels, missing, ranges))
    if args.latents:
        w = load_latent_attributes(args.latents).w[-args.n:]
    else:
        w = sample_latents(generator, args.n, args.seed)
    identity = build_identity_encoder(args.id_backend, args.identity).to(device) if args.identity else None
    editors = [StyleAEEditor(model, args.limit), DirectionEditor(directions, args.limit)]
    with torch.no_grad():
        results = evaluate_attribute_edits(w.to(device), generator, classifier, editors, names, args.margin,
                                           args.steps, identity)
    rows = comparison_rows(results)
    print(format_table(rows, COMPARISON_HEADER))
    print(f"{len(w)} codes; target p >= {0.5 + args.margin:.2f} going up, <= {0.5 - args.margin:.2f} going down; "
          f"{args.steps} steps up to {args.limit} (StyleAE coordinate / InterFaceGAN standard deviations)")
    if args.csv:
        path = Path(args.csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([COMPARISON_HEADER, *rows])
        print(f"wrote {path}")
    return 0
