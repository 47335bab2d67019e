"""Fit the demo's edit directions over the CPU face prior and write them to ``data/demo/directions/``.

- InterFaceGAN: one direction per attribute of the demo StyleAE (the attributes it was trained to edit), fitted
  on ``--samples`` prior codes labelled by the demo attribute classifier; the ``--chosen-ratio`` highest and
  lowest scored codes of each attribute are its two classes (InterFaceGAN's recipe,
  :func:`stylegan_lightning.editing.fit_attribute_directions`). One ``<attribute>.pt`` file each.
- GANSpace: the PCA of 100,000 mapped codes (``ganspace.pt``, :func:`stylegan_lightning.editing.fit_ganspace`).

    python tools/fit_demo_directions.py [--samples 4000] [--out data/demo/directions]

About 2 minutes on 2 CPU cores for 4,000 samples. ``stylegan-lightning serve`` offers these as edit sliders.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default=str(ROOT / "data/priors/face64.pt"))
    parser.add_argument("--classifier", default=str(ROOT / "data/demo/classifier.pt"))
    parser.add_argument("--styleae", default=str(ROOT / "data/demo/styleae-64.pt"),
                        help="the attributes to fit are this StyleAE's")
    parser.add_argument("--samples", type=int, default=4000, help="labelled prior codes for InterFaceGAN")
    parser.add_argument("--chosen-ratio", type=float, default=0.1, help="share of codes in each class")
    parser.add_argument("--components", type=int, default=10, help="GANSpace components kept")
    parser.add_argument("--out", default=str(ROOT / "data/demo/directions"))
    args = parser.parse_args()

    from stylegan_lightning.editing import fit_attribute_directions, fit_ganspace, load_attribute_classifier
    from stylegan_lightning.styleae import load_styleae
    from stylegan_lightning.stylegan2 import FrozenGenerator

    out = Path(args.out)
    generator = FrozenGenerator.from_file(args.generator)
    classifier = load_attribute_classifier(args.classifier)
    names = load_styleae(args.styleae).attribute_names
    start = time.perf_counter()
    directions = fit_attribute_directions(generator, classifier, names, n=args.samples,
                                          chosen_ratio=args.chosen_ratio, batch_size=50)
    for name, direction in directions.items():
        direction.save(out / f"{name}.pt")
        print(f"{name}: validation accuracy {direction.metadata.get('val_accuracy', float('nan')):.3f}")
    pca = fit_ganspace(generator, n_samples=100_000, n_components=args.components)
    pca.save(out / "ganspace.pt")
    print(f"wrote {len(directions)} directions and ganspace.pt to {out} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
