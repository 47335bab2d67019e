"""StyleAE speed: microseconds per code of encode / decode / one attribute edit (StyleAE vs an InterFaceGAN step),
seconds per training step (the reference objective through the generator), and parameter counts, for the reference
model (4 layers of 512) and the paper's 3-layer variant. Prints Markdown tables.

    python benchmarks/bench_styleae.py                         # random 256 px config-f generator, W of 512
    python benchmarks/bench_styleae.py --size 64 --repeats 1   # quick check
    python benchmarks/bench_styleae.py --generator weights/stylegan2-ffhq-config-f.pt --device cuda

Random weights take the same time as trained ones. Each time is the median of ``--repeats`` runs after one warm-up
run; code maps and edits run without gradient; a training step is forward + backward + Adam step on a batch.
"""

from __future__ import annotations

import argparse
import platform

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import torch

from stylegan_lightning.utils import format_table, median_seconds, select_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default=None, help="generator file (default: a random config-f generator)")
    parser.add_argument("--size", type=int, default=256, help="resolution of the random generator")
    parser.add_argument("--codes", type=int, default=1024, help="codes per map / edit timing")
    parser.add_argument("--batch", type=int, default=5, help="training batch (the reference uses 5)")
    parser.add_argument("--attributes", type=int, default=8, help="attribute coordinates (the reference has 8)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from stylegan_lightning.editing import Direction, apply_direction
    from stylegan_lightning.styleae import StyleAE, styleae_losses
    from stylegan_lightning.stylegan2 import FrozenGenerator, Generator

    device = select_device(args.device)
    torch.manual_seed(0)
    if args.generator:
        generator = FrozenGenerator.from_file(args.generator)
    else:
        generator = FrozenGenerator(Generator(args.size, 512, 8), n_mean_latent=1000)
    generator = generator.to(device)
    dim = generator.style_dim
    names = [f"attr{i}" for i in range(args.attributes)]
    cuda = torch.cuda.get_device_name(device) if device.type == "cuda" else "no"
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU "
          f"threads, device {device} (CUDA: {cuda}); generator {generator.size} px, W of {dim}\n")
    codes = generator.sample_w(args.codes, generator=torch.Generator(device=device).manual_seed(0) if device.type
                               == "cuda" else torch.Generator().manual_seed(0))
    direction = Direction(torch.randn(dim)).unit()
    rows, train_rows = [], []
    for layers in (4, 3):
        model = StyleAE(dim, names, hidden_dim=dim, n_layers=layers).to(device)
        parameters = sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            encode = median_seconds(lambda: model.encode(codes), args.repeats, device)
            decode = median_seconds(lambda: model.decode(codes), args.repeats, device)
            edit = median_seconds(lambda: model.edit(codes, names[0], shift=0.5), args.repeats, device)
        rows.append([f"StyleAE, {layers} layers", round(parameters / 1e6, 2), round(encode / args.codes * 1e6, 2),
                     round(decode / args.codes * 1e6, 2), round(edit / args.codes * 1e6, 2)])
        optimizer = torch.optim.Adam(model.parameters(), 1e-4)
        batch = codes[: args.batch]
        labels = torch.rand(args.batch, args.attributes, device=device)

        def train_step():
            loss = styleae_losses(model, generator, batch, labels)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        train_rows.append([f"StyleAE, {layers} layers", args.batch, round(median_seconds(train_step, args.repeats,
                                                                                          device), 4)])
    with torch.no_grad():
        step = median_seconds(lambda: apply_direction(codes, direction.to(device), 1.0), args.repeats, device)
        synthesis = median_seconds(lambda: generator(codes[: args.batch], noise="const"), args.repeats, device)
    rows.append(["InterFaceGAN step w + t n", 0, "-", "-", round(step / args.codes * 1e6, 2)])
    print(f"## Code maps ({device}, {args.codes} codes, median of {args.repeats}, no grad)\n")
    print(format_table(rows, ["editor", "parameters (M)", "encode (us / code)", "decode (us / code)",
                              "edit (us / code)"]))
    print(f"\n## Training step ({device}, forward + backward through the frozen generator + Adam)\n")
    print(format_table(train_rows, ["model", "batch", "s / step"]))
    print(f"\nfor scale: synthesising {args.batch} images takes {synthesis:.4f} s; an edit is negligible next to it")


if __name__ == "__main__":
    main()
