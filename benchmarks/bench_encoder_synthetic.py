"""Encoder training on synthetic data: latent and image error of a trained encoder versus its initial state and
versus ``latent_avg``, on images sampled from a (small) generator whose true latents are known.

    python benchmarks/bench_encoder_synthetic.py --generator outputs/demo/generator-64.pt --kinds w e4e psp

Prints a Markdown table (W+ MSE to the true latent, image MSE, PSNR) per encoder kind and state.
"""

from __future__ import annotations

import argparse
import time
import warnings

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import lightning.pytorch as pl
import torch

from stylegan_lightning.data import SyntheticDataModule
from stylegan_lightning.encoders import EncoderModule
from stylegan_lightning.stylegan2 import infer_generator_config, read_checkpoint
from stylegan_lightning.utils import format_table


def errors(module: EncoderModule, images: torch.Tensor, true_w_plus: torch.Tensor, w_plus: torch.Tensor | None = None):
    module.eval()
    with torch.no_grad():
        w_plus = module.inverter.encode(images) if w_plus is None else w_plus
        mse = (module.generator(w_plus) - images).pow(2).flatten(1).mean(1)
    return [(w_plus - true_w_plus).pow(2).mean().item(), mse.mean().item(),
            (10 * torch.log10(4 / mse.clamp_min(1e-12))).mean().item()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", required=True)
    parser.add_argument("--kinds", nargs="+", default=["w", "e4e", "psp"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--w-norm", type=float, default=0.0, help="pSp's W-norm weight (keeps codes near w_avg)")
    parser.add_argument("--test-images", type=int, default=64)
    parser.add_argument("--blocks", type=int, nargs=4, default=[1, 1, 2, 1])
    parser.add_argument("--channels", type=int, nargs=4, default=[16, 32, 64, 128])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    size = min(256, infer_generator_config(read_checkpoint(args.generator)["generator"])["size"])
    rows = []
    for kind in args.kinds:
        torch.manual_seed(0)
        module = EncoderModule(args.generator, encoder_type=kind, backbone_blocks=tuple(args.blocks),
                               backbone_channels=tuple(args.channels), input_size=size, lpips_lambda=0.0,
                               id_lambda=0.0, w_discriminator_lambda=0.0, optimizer="adam", lr=args.lr,
                               w_norm_lambda=args.w_norm,
                               progressive_start=args.steps // 2 if kind == "e4e" else None,
                               progressive_step_every=max(1, args.steps // 20), image_log_every=0)
        data = SyntheticDataModule(args.generator, lengths=(args.steps * args.batch_size, args.test_images, 0),
                                   batch_size=args.batch_size, seed=1)
        data.setup("fit")
        frozen = module.generator
        batch = next(iter(data.val_dataloader()))
        images, true_w_plus = batch["image"], batch["w"][:, None].expand(-1, frozen.n_latent, -1)
        if not rows:
            average = module.inverter.latent_avg.expand(len(images), -1, -1)
            rows.append(["-", "latent_avg", *errors(module, images, true_w_plus, average), "-"])
        rows.append([kind, "initial", *errors(module, images, true_w_plus), "-"])
        start = time.perf_counter()
        pl.Trainer(max_steps=args.steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                   num_sanity_val_steps=0).fit(module, data)
        rows.append([kind, f"trained {args.steps} batches", *errors(module, images, true_w_plus),
                     round(time.perf_counter() - start, 1)])
    print(f"generator {args.generator}, {args.test_images} test images, batch {args.batch_size}, lr {args.lr}, "
          f"W-norm {args.w_norm}\n")
    print(format_table([[r[0], r[1], *(round(v, 4) if isinstance(v, float) else v for v in r[2:])] for r in rows],
                       ["encoder", "state", "W+ MSE to true w", "image MSE", "PSNR (dB)", "train s"]))


if __name__ == "__main__":
    main()
