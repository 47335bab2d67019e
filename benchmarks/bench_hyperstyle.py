"""HyperStyle inversion speed: seconds per image of the W-encoder alone and of 1 and 5 refinement iterations, at
batch sizes 1 and 4, plus the parameter counts of the hypernetwork, the W-encoder and the generator. Prints Markdown
tables.

    python benchmarks/bench_hyperstyle.py                          # random HyperStyle over a 256 px generator
    python benchmarks/bench_hyperstyle.py --size 64 --repeats 1    # quick check
    python benchmarks/bench_hyperstyle.py --checkpoint pretrained/hyperstyle_ffhq.pt \\
        --w-encoder pretrained/faces_w_encoder.pt --device cuda

Without ``--checkpoint`` the model is randomly initialised in the official channel layout: generator
``Generator(size, 512, 8)`` (config-f channels), W-encoder ``build_encoder("w", ...)`` (official IR-SE50 backbone,
256 px input) and the official 256 px-input hypernetwork (every non-toRGB slot tuned, slots 0-12 shared). Random
weights take the same time as trained ones. ``--checkpoint`` takes an official-layout file or a HyperStyleModule
Lightning checkpoint (loaded as ``invert --method hyperstyle`` does). Each time is the median of ``--repeats`` runs
after one warm-up run, without gradient; the generator's stored noise is used (as in the model).
"""

from __future__ import annotations

import argparse
import platform

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import torch

from stylegan_lightning.utils import Timer, format_table, median_seconds, select_device


def random_hyperstyle(size: int, seed: int):
    """A randomly initialised HyperStyle in the official layout over a ``size`` px config-f generator."""
    from stylegan_lightning.encoders import build_encoder
    from stylegan_lightning.encoders.inverter import LatentEncoder
    from stylegan_lightning.hyperstyle import build_hyperstyle
    from stylegan_lightning.stylegan2 import FrozenGenerator, Generator

    torch.manual_seed(seed)
    generator = FrozenGenerator(Generator(size, 512, 8), n_mean_latent=1000)
    w_encoder = LatentEncoder(build_encoder("w", generator.n_latent, 512), generator.n_latent, generator.latent_avg)
    return build_hyperstyle(w_encoder, generator).eval()


def count(module: torch.nn.Module) -> int:
    """Parameters of ``module`` (tensors shared between submodules counted once)."""
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="HyperStyle file (official layout or Lightning checkpoint); "
                                                           "default: a random model at --size")
    parser.add_argument("--w-encoder", default=None, help="W-encoder file if the checkpoint's opts do not point at one")
    parser.add_argument("--generator", default=None, help="generator file if the checkpoint's is elsewhere")
    parser.add_argument("--size", type=int, default=256, help="generator resolution of the random model")
    parser.add_argument("--iters", type=int, nargs="+", default=[1, 5], help="refinement iterations to time")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    args = parser.parse_args()

    device = select_device(args.device)
    with Timer() as build_timer:
        if args.checkpoint:
            from stylegan_lightning.inversion import load_inversion_model

            model = load_inversion_model(args.checkpoint, "hyperstyle", args.generator, w_encoder=args.w_encoder)
            source = args.checkpoint
        else:
            model = random_hyperstyle(args.size, args.seed)
            source = f"random init (seed {args.seed}), official layout"
    model = model.to(device).eval()
    size = model.decoder.size
    cuda = torch.cuda.get_device_name(device) if device.type == "cuda" else "no"
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU "
          f"threads, device {device} (CUDA: {cuda})")
    print(f"model: {source}; generator {size} px, hypernet input {model.input_size} px, "
          f"{len(model.layers_to_tune)} of {model.decoder.n_weight_slots} weight slots tuned; "
          f"built / loaded in {build_timer.seconds:.1f} s\n")

    print("## Parameters\n")
    hypernet, encoder, generator = count(model.hypernet), count(model.w_encoder), count(model.decoder.generator)
    print(format_table([["hypernetwork", round(hypernet / 1e6, 2)], ["W-encoder", round(encoder / 1e6, 2)],
                        ["generator", round(generator / 1e6, 2)],
                        ["total", round((hypernet + encoder + generator) / 1e6, 2)]], ["network", "parameters (M)"]))

    images = torch.rand(max(args.batches), 3, size, size, generator=torch.Generator().manual_seed(args.seed)) * 2 - 1
    images = images.to(device)
    steps = [("W-encoder alone", lambda x: model.w_encoder(x)),
             ("W-encoder + generator (0 iterations)", lambda x: model.invert(x, n_iters=0))]
    steps += [(f"{n} iteration{'s' if n != 1 else ''}", lambda x, n=n: model.invert(x, n_iters=n))
              for n in args.iters]
    rows = []
    with torch.no_grad():
        for name, step in steps:
            row = [name]
            for batch in args.batches:
                x = images[:batch]
                row.append(round(median_seconds(lambda: step(x), args.repeats, device) / batch, 4))
            rows.append(row)
    print(f"\n## Seconds per image ({device}, median of {args.repeats} after warm-up, no grad)\n")
    print(format_table(rows, ["inversion", *[f"s / image (batch {b})" for b in args.batches]]))
    if device.type == "cuda":
        print(f"\npeak CUDA memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
