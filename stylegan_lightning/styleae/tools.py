"""StyleAE command-line tools (registered in :mod:`stylegan_lightning.cli`; options may come from ``--config``).

- ``label-latents``: writes the (w, attribute) pairs StyleAE trains on (:mod:`stylegan_lightning.data.latents`):
  ``--generator G --classifier C --n N`` samples and labels codes; ``--latents invert/latents.pt --attributes
  TABLE`` joins inverted real images with their dataset labels.
- ``compare-edits``: StyleAE against InterFaceGAN directions, as a table (and CSV): ``--protocol reference``
  (default; :func:`~stylegan_lightning.styleae.evaluate_reference_protocol`, with ``--judge`` a second classifier)
  or ``--protocol steps`` (:func:`~stylegan_lightning.styleae.evaluate_attribute_edits`).
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
    from .evaluation import (COMPARISON_HEADER, METRICS, REFERENCE_HEADER, REFERENCE_METRICS, DirectionEditor,
                             StyleAEEditor, binary_outputs, comparison_rows, evaluate_attribute_edits,
                             evaluate_reference_protocol, fit_interfacegan_directions)

    if args.csv:
        output_file(args.csv, "--csv", suffixes=(".csv",),
                    not_same_as={"--styleae": args.styleae, "--generator": args.generator, "--classifier": args.classifier,
                                 "--judge": args.judge, "--latents": args.latents, "--fit-latents": args.fit_latents})
    reference = args.protocol == "reference"
    if reference:
        if not args.judge:
            raise UsageError("--protocol reference needs --judge FILE: a second attribute classifier (not "
                             "--classifier, which labelled the pairs and aims the search) that counts success")
        if _same_file(args.judge, args.classifier):
            raise UsageError(f"--judge '{args.judge}' is the same classifier as --classifier; the reference protocol "
                             "judges the edits with a classifier other than the one that labelled the pairs")
        if not 0.5 < args.target < 1:
            raise UsageError(f"--target must be in (0.5, 1), got {args.target}")
        if args.candidates < 2:
            raise UsageError("--candidates must be at least 2")
    elif args.judge or args.styleae_span:
        raise UsageError("--judge and --styleae-span belong to --protocol reference")
    device = select_device(args.device)
    model = load_styleae(args.styleae).to(device)
    generator = FrozenGenerator.from_file(args.generator).to(device)
    classifier = load_attribute_classifier(args.classifier).to(device)
    judge = load_attribute_classifier(args.judge).to(device) if reference else None
    if judge is not None:
        unknown = [n for n in (args.attribute_names or []) if n not in binary_outputs(judge)]
        if unknown:
            raise UsageError(f"the judge '{args.judge}' has no binary output(s) {unknown}; it has "
                             f"{binary_outputs(judge)}")
    if model.latent_dim != generator.style_dim:
        raise UsageError(f"the StyleAE works on {model.latent_dim}-d codes; the generator's W is "
                         f"{generator.style_dim}-d")
    names = args.attribute_names or binary_outputs(classifier, model.attribute_names)
    if judge is not None and not args.attribute_names:
        names = [n for n in names if n in binary_outputs(judge)]
        if not names:
            raise UsageError(f"the judge '{args.judge}' shares no binary attribute with the StyleAE and the classifier")
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
    span = args.styleae_span if reference else None
    try:
        editors = [StyleAEEditor(model, args.limit, span=span), DirectionEditor(directions, args.limit)]
    except ValueError as error:
        raise UsageError(f"--styleae-span: {error}") from None
    with torch.no_grad():
        if reference:
            results = evaluate_reference_protocol(w.to(device), generator, classifier, judge, editors, names,
                                                  args.target, args.direction, args.candidates, identity=identity)
        else:
            results = evaluate_attribute_edits(w.to(device), generator, classifier, editors, names, args.margin,
                                               args.steps, identity)
    header = REFERENCE_HEADER if reference else COMPARISON_HEADER
    rows = comparison_rows(results, REFERENCE_METRICS if reference else METRICS)
    print(format_table(rows, header))
    if reference:
        path_text = (f"StyleAE coordinate +-{span[0]:g}..{span[1]:g}" if span else
                     f"StyleAE coordinate to +-{args.limit:g}")
        print(f"{len(w)} codes, reference protocol ({args.direction}): {args.candidates} points searched on each "
              f"path ({path_text}, InterFaceGAN up to {args.limit:g} standard deviations) for the --classifier "
              f"probability nearest {args.target:.2f} up / {1 - args.target:.2f} down; success by the judge "
              f"{args.judge}; other attributes, identity and PSNR on the codes that every editor edited")
    else:
        print(f"{len(w)} codes; target p >= {0.5 + args.margin:.2f} going up, <= {0.5 - args.margin:.2f} going "
              f"down; {args.steps} steps up to {args.limit} (StyleAE coordinate / InterFaceGAN standard deviations)")
    if args.csv:
        path = Path(args.csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([header, *rows])
        print(f"wrote {path}")
    return 0


def _same_file(first: str, second: str) -> bool:
    """Whether two paths name one file, or two files with the same bytes (a copy of the labeller)."""
    import filecmp

    a, b = Path(first).expanduser(), Path(second).expanduser()
    if not (a.is_file() and b.is_file()):
        return False
    return a.resolve() == b.resolve() or filecmp.cmp(a, b, shallow=False)
