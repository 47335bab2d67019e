"""Inference speed of the codec and of GradStyle per image at 64 and 1024 px on this machine, with the peak memory.

Each case runs in a fresh interpreter (so the peak resident memory, ``ru_maxrss``, is its own) over randomly
initialised models in the official layouts: a config-f generator (``Generator(size, 512, 8)``), the codec over it
(pSp style encoder with the official IR-SE50 body at 256 px input, the paper's 3 layers, entropy coding through
compressai) and GradStyle over an e4e of the same body. Random weights take the same time as trained ones. Times
are the median of ``--repeats`` runs after one warm-up, batch 1, no gradient; the codec's parts are timed separately
(the encoder, entropy coding of all layers, entropy decoding of all layers, the generator). HyperStyle has its own
benchmark (``bench_hyperstyle.py --size 64 / 1024``). Prints a Markdown table.

    python benchmarks/bench_inference.py                 # 64 and 1024 px
    python benchmarks/bench_inference.py --sizes 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import torch

from stylegan_lightning.utils import format_table, median_seconds


def codec_case(size: int, repeats: int) -> dict[str, float]:
    from stylegan_lightning.codec.model import ScalableFaceCodec
    from stylegan_lightning.encoders import build_encoder
    from stylegan_lightning.encoders.inverter import LatentEncoder
    from stylegan_lightning.stylegan2 import FrozenGenerator, Generator

    generator = FrozenGenerator(Generator(size, 512, 8), n_mean_latent=1000)
    encoder = LatentEncoder(build_encoder("psp", generator.n_latent, 512), generator.n_latent, generator.latent_avg)
    codec = ScalableFaceCodec(generator, encoder).eval()
    codec.update(force=True)
    image = torch.rand(1, 3, size, size) * 2 - 1
    _, y = codec.encode_tokens_alone(image)
    strings = codec.compress_tokens(y)[0][0]
    w_plus = codec.decompress(strings)
    return {
        "codec: style encoder (pSp)": median_seconds(lambda: codec.encode_tokens_alone(image), repeats),
        "codec: entropy coding, 3 layers": median_seconds(lambda: codec.compress_tokens(y), repeats),
        "codec: entropy decoding, 3 layers": median_seconds(lambda: codec.decompress(strings), repeats),
        "codec: generator (W+ -> image)": median_seconds(lambda: codec.decode_images(w_plus), repeats),
    }


def gradstyle_case(size: int, repeats: int) -> dict[str, float]:
    from stylegan_lightning.encoders import build_encoder
    from stylegan_lightning.encoders.inverter import LatentEncoder
    from stylegan_lightning.gradstyle.model import GradStyle
    from stylegan_lightning.stylegan2 import FrozenGenerator, Generator

    generator = FrozenGenerator(Generator(size, 512, 8), n_mean_latent=1000)
    e4e = LatentEncoder(build_encoder("e4e", generator.n_latent, 512), generator.n_latent, generator.latent_avg)
    model = GradStyle(e4e, generator).eval()
    image = torch.rand(1, 3, size, size) * 2 - 1
    return {"GradStyle inversion (e4e + residual stream)": median_seconds(lambda: model.invert(image), repeats)}


CASES = {"codec": codec_case, "gradstyle": gradstyle_case}


def run_case(name: str, size: int, repeats: int) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        times = CASES[name](size, repeats)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "peak_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)  # one case, in a child process
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run_case(args.case, args.size, args.repeats)
        return
    rows = []
    for size in args.sizes:
        for name in CASES:
            done = subprocess.run([sys.executable, __file__, "--case", name, "--size", str(size), "--repeats",
                                   str(args.repeats)], capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            for index, (part, seconds) in enumerate(result["times"].items()):
                rows.append([size, part, round(seconds * 1000, 1), round(result["peak_mib"]) if index == 0 else ""])
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, batch 1, median of {args.repeats} after one warm-up, random weights\n")
    print(format_table(rows, ["size", "part", "ms / image", "peak memory of the case (MiB)"]))


if __name__ == "__main__":
    main()
