"""Face-prior evidence: sample quality of generator files and reconstruction quality of a warm-start checkpoint.

Sample quality (one row per generator, e.g. a random generator, the warm start, the GAN-tuned prior): the
Fréchet distance of MobileFaceNet identity embeddings (``FID (MobileFaceNet)``) between N samples (psi = 1,
stored noise, seeds 0..N-1) and the N held-out UTKFace faces (the 5 % validation split of the recipe's configs),
and the share of samples in which dlib's HOG face detector finds a face (samples upsampled to 256 px; the real
held-out faces are the reference row).

Reconstruction quality (with ``--checkpoint``, a ``PriorWarmStartModule`` Lightning checkpoint): PSNR, SSIM and
MobileFaceNet identity cosine of the warm-start encoder -> generator on the held-out split and on
``data/samples`` (resized to 64 px), W+ codes and single-w codes. Prints Markdown tables.

    python benchmarks/eval_prior.py --generator random=outputs/demo/generator-64.pt \\
        --generator prior=data/priors/face64.pt --checkpoint outputs/prior64-cpu/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import torch
import torch.nn.functional as F

from stylegan_lightning.data import FaceDataModule
from stylegan_lightning.data.datasets import FaceImageDataset
from stylegan_lightning.metrics.fid import FrechetDistance
from stylegan_lightning.metrics.fidelity import PSNR, SSIM
from stylegan_lightning.nets import build_identity_encoder
from stylegan_lightning.stylegan2 import load_generator
from stylegan_lightning.stylegan2.prior import load_prior_checkpoint
from stylegan_lightning.utils import format_table

SHARED = Path(__file__).resolve().parents[2] / "shared"


def held_out_faces(root: str, count: int | None) -> torch.Tensor:
    """The recipe's validation split (UTKFace, split seed 0, 95 / 5 / 0), in [-1, 1]."""
    data = FaceDataModule(root, resolution=64, split_seed=0, split_fractions=(0.95, 0.05, 0.0), flip=False,
                          batch_size=64, eval_batch_size=64)
    data.setup("fit")
    images = torch.cat([batch["image"] for batch in data.val_dataloader()])
    return images[:count] if count else images


def face_detection_rate(images: torch.Tensor) -> float:
    """Share of images in which dlib's frontal HOG detector finds a face (images upsampled to 256 px)."""
    import dlib
    import numpy as np

    detector = dlib.get_frontal_face_detector()
    large = F.interpolate(images.clamp(-1, 1), size=256, mode="bilinear", align_corners=False)
    pixels = ((large + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return float(np.mean([len(detector(np.ascontiguousarray(p), 0)) > 0 for p in pixels]))


@torch.no_grad()
def samples(path: str, count: int, batch: int = 64) -> torch.Tensor:
    generator = load_generator(path).eval()
    out = []
    for start in range(0, count, batch):
        z = torch.stack([torch.randn(generator.style_dim, generator=torch.Generator().manual_seed(seed))
                         for seed in range(start, min(start + batch, count))])
        out.append(generator([z], randomize_noise=False)[0].clamp(-1, 1))
    return torch.cat(out)


@torch.no_grad()
def fid(identity, real: torch.Tensor, fake: torch.Tensor, batch: int = 64) -> float:
    metric = FrechetDistance(identity)
    for start in range(0, len(real), batch):
        metric.update(real[start:start + batch], real=True)
    for start in range(0, len(fake), batch):
        metric.update(fake[start:start + batch], real=False)
    return float(metric.compute())


@torch.no_grad()
def reconstruction_rows(checkpoint: str, identity, sets: dict[str, torch.Tensor], batch: int = 64) -> list[list]:
    encoder, generator = load_prior_checkpoint(checkpoint)
    rows = []
    for name, images in sets.items():
        for single in (False, True):
            psnr, ssim, cosines = PSNR(), SSIM(), []
            for start in range(0, len(images), batch):
                target = images[start:start + batch]
                w, offsets = encoder(target)
                latent = (w[:, None] if single else w[:, None] + offsets).expand(-1, generator.n_latent, -1)
                output = generator.synthesize(latent, generator.stored_noise()).clamp(-1, 1)
                psnr.update(output, target)
                ssim.update(output, target)
                cosines.append(F.cosine_similarity(identity(output), identity(target), dim=1))
            rows.append([name, len(images), "w" if single else "W+ (w + offsets)", round(float(psnr.compute()), 2),
                         round(float(ssim.compute()), 4), round(float(torch.cat(cosines).mean()), 4)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", action="append", default=[], metavar="NAME=PATH",
                        help="a generator file to sample (repeatable)")
    parser.add_argument("--checkpoint", default=None, help="PriorWarmStartModule Lightning checkpoint")
    parser.add_argument("--data", default=str(SHARED / "data" / "utkface-64.zip"))
    parser.add_argument("--samples-folder", default="data/samples")
    parser.add_argument("--identity", default=str(SHARED / "weights" / "mobilefacenet" / "068.ckpt"))
    parser.add_argument("--count", type=int, default=None, help="held-out faces and samples (default: the split)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    identity = build_identity_encoder("mobilefacenet", args.identity, alignment="ffhq").eval()
    real = held_out_faces(args.data, args.count)
    rows = [["held-out faces (reference)", "", f"{face_detection_rate(real):.3f}"]]
    for item in args.generator:
        name, _, path = item.partition("=")
        fake = samples(path, len(real))
        rows.append([name, round(fid(identity, real, fake), 2), f"{face_detection_rate(fake):.3f}"])
    print(f"Samples vs {len(real)} held-out UTKFace faces (64 px, psi 1, stored noise)\n")
    print(format_table(rows, ["generator", "FID (MobileFaceNet)", "face detector hit rate"]))
    if args.checkpoint:
        dataset = FaceImageDataset(args.samples_folder, resolution=64)
        bundled = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
        print(f"\nReconstruction through the warm-start encoder ({args.checkpoint})\n")
        print(format_table(reconstruction_rows(args.checkpoint, identity, {"held-out UTKFace": real,
                                                                           "data/samples": bundled}),
                           ["images", "n", "code", "PSNR (dB)", "SSIM", "identity cosine"]))


if __name__ == "__main__":
    main()
