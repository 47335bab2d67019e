"""Cross-device decoding proof for a codec file: encode in the codec's dtype (float32) on 2 threads, decode with a
float64 copy on 1 thread (and with the codec itself on 1 thread), compare every symbol, and report how far the
closest coding decision was from flipping (:mod:`stylegan_lightning.codec.interop`).

    python benchmarks/bench_codec_interop.py --codec data/demo/codec.pt --images data/samples --latents 1000

The tokens are the sample faces' (aligned to the prior's crop with ``--framing``) followed by ``--latents``
random latents (generator mapping, half of them style-mixed), which go straight into the entropy stage.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import torch

from stylegan_lightning.codec import load_codec
from stylegan_lightning.codec.interop import cross_precision_check, random_tokens
from stylegan_lightning.utils import format_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", default="data/demo/codec.pt")
    parser.add_argument("--images", default="data/samples", help="folder of face photos (searched recursively)")
    parser.add_argument("--framing", default="utkface-64", help="alignment framing of the codec's prior")
    parser.add_argument("--latents", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sender-threads", type=int, default=2)
    parser.add_argument("--receiver-threads", type=int, default=1)
    args = parser.parse_args()
    codec = load_codec(args.codec)
    parts = []
    photos = sorted(str(p) for p in Path(args.images).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                    and not p.stem.endswith("_mask"))
    if photos:
        from stylegan_lightning.photos.tools import aligned_inputs

        _, images, _ = aligned_inputs(photos, codec.generator.size, framing=args.framing)
        parts.append(codec.encode_tokens_alone(images)[1])
    if args.latents:
        parts.append(random_tokens(codec, args.latents, args.seed))
    start = time.perf_counter()
    report = cross_precision_check(codec, torch.cat(parts), args.sender_threads, args.receiver_threads)
    seconds = time.perf_counter() - start
    print(format_table(report.as_rows(), ["quantity", "value"]))
    print(f"\n{len(photos)} face(s) from {args.images} + {args.latents} random latents; codec {args.codec} "
          f"({codec.config['mean_grid']}-step mean grid); encode {args.sender_threads} thread(s), decode "
          f"{args.receiver_threads}; {seconds:.1f} s")


if __name__ == "__main__":
    main()
