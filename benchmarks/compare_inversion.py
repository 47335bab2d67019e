"""Inversion methods side by side on the same faces: PSNR, SSIM, MS-SSIM, identity similarity and milliseconds per
image of each method (e4e, pSp, W-encoder, HyperStyle, GradStyle ...), with one grid (input | each method).

    python benchmarks/compare_inversion.py --images data/samples --align --framing utkface-64 \\
        --method e4e=encoder:data/demo/e4e-64.pt \\
        --method hyperstyle=hyperstyle:data/demo/hyperstyle-64.pt --w-encoder data/demo/w-encoder-64.pt \\
        --method gradstyle=gradstyle:data/demo/gradstyle-64.ckpt \\
        --id-backend mobilefacenet --identity ../shared/weights/mobilefacenet/068.ckpt --out outputs/demo/methods

``--method NAME=KIND:FILE`` (repeatable): KIND is an inversion method of ``stylegan-lightning invert --method``
(encoder, hyperstyle, gradstyle), FILE what its ``--checkpoint`` takes. ``--images`` is aligned faces, or photos
with ``--align`` (``--framing utkface-64`` for the CPU face prior). Every method sees the same images at its
generator's resolution; identity similarity is the cosine of the ``--id-backend`` embeddings of input and
reconstruction (left out without ``--identity``). Times are wall-clock per image over the whole set, without
gradient, after one warm-up batch. Prints a Markdown table; ``--csv`` also writes it.
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import torch

from stylegan_lightning.inversion import load_inversion_model
from stylegan_lightning.metrics import inversion_metrics
from stylegan_lightning.utils import format_table, save_image, select_device


def method_spec(text: str) -> tuple[str, str, str]:
    """``NAME=KIND:FILE`` -> (name, kind, file)."""
    name, _, rest = text.partition("=")
    kind, _, path = rest.partition(":")
    if not (name and kind and path):
        raise argparse.ArgumentTypeError(f"--method {text!r}: expected NAME=KIND:FILE, e.g. e4e=encoder:e4e.pt")
    return name, kind, path


def face_images(args: argparse.Namespace, size: int) -> tuple[list[str], torch.Tensor]:
    """The faces of ``--images`` at ``size`` (aligned first with ``--align``)."""
    if args.align:
        from stylegan_lightning.photos.tools import aligned_inputs

        keys, images, _ = aligned_inputs(args.images, size, detector=args.detector, framing=args.framing)
    else:
        from stylegan_lightning.inversion import read_images

        keys, images = read_images(args.images, size)
    return keys[: args.limit], images[: args.limit]


@torch.no_grad()
def run_method(model, images: torch.Tensor, batch_size: int, device: torch.device) -> tuple[torch.Tensor, float]:
    """(reconstructions in [-1, 1], seconds per image) of ``model`` on ``images``."""
    model.invert(images[:batch_size].to(device))  # warm-up
    outputs, start = [], time.perf_counter()
    for first in range(0, len(images), batch_size):
        outputs.append(model.invert(images[first: first + batch_size].to(device))[1].clamp(-1, 1).cpu())
    return torch.cat(outputs), (time.perf_counter() - start) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="aligned faces (file, folder or zip), or photos with --align")
    parser.add_argument("--method", type=method_spec, action="append", required=True, metavar="NAME=KIND:FILE")
    parser.add_argument("--w-encoder", default=None, help="W-encoder file of the hyperstyle methods")
    parser.add_argument("--align", action="store_true", help="detect and align the faces of photos first")
    parser.add_argument("--framing", default="ffhq", help="with --align: ffhq or utkface-64")
    parser.add_argument("--detector", default="hog", help="with --align: hog or cnn")
    parser.add_argument("--limit", type=int, default=None, help="use the first N faces")
    parser.add_argument("--id-backend", default="mobilefacenet", help="identity network: mobilefacenet, arcface, onnx")
    parser.add_argument("--identity", default=None, help="weights of the identity network (none: no identity column)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument("--out", default=None, help="folder for grid.png (rows: faces; columns: input, methods)")
    parser.add_argument("--csv", default=None, help="also write the table here")
    args = parser.parse_args()

    device = select_device(args.device)
    paths = {args.id_backend if args.id_backend != "arcface" else "arcface_ir_se50": args.identity} \
        if args.identity else {}
    metrics = inversion_metrics(paths=paths, identity_backend=args.id_backend).to(device)
    rows, columns, images = [], [], None
    for name, kind, path in args.method:
        options = {"w_encoder": args.w_encoder} if kind == "hyperstyle" else {}
        model = load_inversion_model(path, kind, **options).to(device)
        size = model.decoder.size
        if images is None or images.shape[-1] != size:
            keys, images = face_images(args, size)
            columns.append(images)
        reconstructions, seconds = run_method(model, images, args.batch_size, device)
        columns.append(reconstructions)
        metrics.reset()
        metrics.update(reconstructions.to(device), images.to(device))
        values = {key: float(value) for key, value in metrics.compute().items()}
        rows.append([name, kind, len(images), round(values["psnr"], 2), round(values["ssim"], 4),
                     round(values["ms_ssim"], 4), round(values["id_similarity"], 4) if "id_similarity" in values
                     else "-", round(1000 * seconds, 1)])
    header = ["method", "kind", "faces", "PSNR dB", "SSIM", "MS-SSIM", "identity", "ms / image"]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {device}; images: {args.images}{' (aligned, ' + args.framing + ')' if args.align else ''}\n")
    print(format_table(rows, header))
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            csv.writer(handle).writerows([header, *rows])
    if args.out:
        same_size = [column for column in columns if column.shape[-1] == columns[0].shape[-1]]
        grid = torch.stack(same_size, 1)[:16].flatten(0, 1)
        save_image(grid, Path(args.out) / "grid.png", nrow=len(same_size))
        print(f"\ngrid: {Path(args.out) / 'grid.png'} (columns: input, {', '.join(n for n, _, _ in args.method)})")


if __name__ == "__main__":
    main()
