"""Scalable codec benchmark: rate and quality per layer next to JPEG, WebP, AVIF and HEVC-intra (HEIC) at their
lowest rates on the same faces, then the coding speed per image and its parts.

    python benchmarks/bench_codec.py --codec outputs/demo/codec.pt --images data/samples
    python benchmarks/bench_codec.py --codec outputs/codec/codec.pt --images data/celebahq --device cuda

The first table is the ``evaluate`` tool's (bpp from the stream files and from the likelihoods, PSNR, SSIM, and
the network metrics whose weight files are present). The second times, per image (median of ``--repeats`` runs
after a warm-up), the style encoder, the entropy coding of all layers, the entropy decoding of 1..k layers and
the generator, at batch sizes 1 and ``--batch-size``.
"""

from __future__ import annotations

import argparse
import warnings

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import torch

from stylegan_lightning.cli import main as cli_main
from stylegan_lightning.codec import compress_images, layer_name, load_codec
from stylegan_lightning.codec.tools import open_images
from stylegan_lightning.utils import format_table, median_seconds, select_device


def timing_rows(codec, images: torch.Tensor, repeats: int, device: torch.device) -> list[list]:
    count = images.shape[0]
    streams = compress_images(codec, images)
    rows = [["style encoder (pSp)", median_seconds(lambda: codec.encode_tokens(images), repeats, device) / count],
            ["encode: encoder + entropy coding, all layers",
             median_seconds(lambda: compress_images(codec, images), repeats, device) / count]]
    for layers in range(1, codec.n_layers + 1):
        span = "1" if layers == 1 else f"1-{layers}"
        rows.append([f"entropy decoding, layers {span} ({layer_name(layers)})",
                     median_seconds(lambda: [codec.decompress(s.layers, layers) for s in streams], repeats,
                                    device) / count])
    w_plus = torch.cat([codec.decompress(s.layers) for s in streams])
    rows.append(["generator (W+ -> image)",
                 median_seconds(lambda: codec.decode_images(w_plus), repeats, device) / count])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", default="outputs/demo/codec.pt", help="codec file (`make demo` writes this one)")
    parser.add_argument("--images", default="data/samples", help="image folder or zip")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baselines", default="jpeg,webp,avif,heic")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    command = ["evaluate", "--codec", args.codec, "--images", args.images, "--baselines", args.baselines,
               "--batch-size", str(args.batch_size), "--device", args.device]
    if args.limit:
        command += ["--limit", str(args.limit)]
    status = cli_main(command)
    if status:
        raise SystemExit(status)

    device = select_device(args.device)
    codec = load_codec(args.codec, device)
    keys, read = open_images(args.images, codec.generator.size)
    images = read(range(min(len(keys), args.batch_size)))[0].to(device)
    print(f"\ncoding time per image ({device}, {codec.generator.size} px, median of {args.repeats})")
    rows_1 = timing_rows(codec, images[:1], args.repeats, device)
    rows_n = timing_rows(codec, images, args.repeats, device)
    print(format_table([[a[0], round(a[1], 4), round(b[1], 4)] for a, b in zip(rows_1, rows_n)],
                       ["part", "s / image (batch 1)", f"s / image (batch {images.shape[0]})"]))


if __name__ == "__main__":
    with torch.no_grad():
        main()
