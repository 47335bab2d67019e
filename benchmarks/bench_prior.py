"""Face-prior recipe throughput on this machine: images/s of one reconstruction warm-start step
(:class:`PriorWarmStartModule`: encoder + synthesis forward and backward, Adam) for candidate generator channel
tables, with and without the MobileFaceNet identity loss, and of one GAN step (:class:`StyleGAN2Module`) of the
chosen table. This is the table the recipe's sizes were chosen by (``configs/prior64-cpu.yaml``). Prints Markdown.

    python benchmarks/bench_prior.py                          # all candidates, batch 32
    python benchmarks/bench_prior.py --threads 2 --repeats 3 --identity ../shared/weights/mobilefacenet/068.ckpt
"""

from __future__ import annotations

import argparse
import platform

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import torch

from stylegan_lightning.stylegan2.prior import PriorWarmStartModule
from stylegan_lightning.utils import format_table, median_seconds

CANDIDATES = {
    "channel_max 64 (uniform)": dict(channels=None, channel_max=64),
    "4-8: 256, 16: 128, 32: 64, 64: 64": dict(channels={4: 256, 8: 256, 16: 128, 32: 64, 64: 64}),
    "4-8: 256, 16: 128, 32: 96, 64: 48 (shipped)": dict(channels={4: 256, 8: 256, 16: 128, 32: 96, 64: 48}),
    "4-16: 256, 32: 128, 64: 64": dict(channels={4: 256, 8: 256, 16: 256, 32: 128, 64: 64}),
}
SHIPPED = "4-8: 256, 16: 128, 32: 96, 64: 48 (shipped)"


def warm_start_step(module: PriorWarmStartModule, images: torch.Tensor):
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=1e-4)

    def step():
        loss, _ = module.reconstruction_loss(images, single_w=False)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def gan_step(channels: dict[int, int] | None, channel_max: int | None, images: torch.Tensor):
    from stylegan_lightning.losses import d_logistic_loss, g_nonsaturating_loss
    from stylegan_lightning.stylegan2.module import StyleGAN2Module

    module = StyleGAN2Module(size=64, style_dim=128, n_mlp=4, channel_multiplier=1, channel_max=channel_max,
                             channels=channels, fid_features=None, augment="diffaugment")
    g_optimizer = torch.optim.Adam(module.generator.parameters(), lr=1e-4)
    d_optimizer = torch.optim.Adam(module.discriminator.parameters(), lr=1e-4)

    def step():
        with torch.no_grad():
            fake, _ = module.generator(module.mixing_noise(images.shape[0]))
        d_loss = d_logistic_loss(module.discriminate(images), module.discriminate(fake))
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        d_optimizer.step()
        fake, _ = module.generator(module.mixing_noise(images.shape[0]))
        g_loss = g_nonsaturating_loss(module.discriminate(fake))
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        g_optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--identity", default=None, help="MobileFaceNet 068.ckpt: also time the identity loss")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.rand(args.batch, 3, 64, 64) * 2 - 1
    rows = []
    for name, table in CANDIDATES.items():
        variants = [("L1 + coarse", {})]
        if args.identity and name == SHIPPED:
            variants.append(("+ identity", {"id_lambda": 0.1, "id_weights": args.identity}))
        for loss_name, extra in variants:
            module = PriorWarmStartModule(**table, **extra)
            seconds = median_seconds(warm_start_step(module, images), args.repeats)
            parameters = sum(p.numel() for p in module.generator.parameters()) / 1e6
            rows.append([name, f"warm start ({loss_name})", f"{parameters:.2f}", round(seconds, 3),
                         round(args.batch / seconds, 1)])
    shipped = CANDIDATES[SHIPPED]
    seconds = median_seconds(gan_step(shipped["channels"], None, images), args.repeats)
    rows.append([SHIPPED, "GAN step (D + G, DiffAugment, no R1 / PL)", "", round(seconds, 3),
                 round(args.batch / seconds, 1)])
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"batch {args.batch}, median of {args.repeats} after one warm-up\n")
    print(format_table(rows, ["generator channels (64 px, style_dim 128)", "step", "G params (M)", "s / step",
                              "images / s"]))


if __name__ == "__main__":
    main()
