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

from ..errors import UsageError
from ..options import output_file
from .arguments import compare_edits_arguments, label_latents_arguments  # noqa: F401
from ..utils import format_table


def run_label_latents(args: argparse.Namespace) -> int:
    from ..data.latents import join_latent_attributes, sample_latent_attributes
    from ..stylegan2 import FrozenGenerator

    output_file(args.out, "--out", suffixes=(".pt", ".pth"),
                not_same_as={"--latents": args.latents, "--attributes": args.attributes, "--generator": args.generator,
                             "--classifier": args.classifier})
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

    if args.csv:
        output_file(args.csv, "--csv", suffixes=(".csv",),
                    not_same_as={"--styleae": args.styleae, "--generator": args.generator, "--classifier": args.classifier,
                                 "--latents": args.latents, "--fit-latents": args.fit_latents})
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
