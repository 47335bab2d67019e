"""Start-up cost of the command line: wall seconds (median of ``--repeats`` runs, each a fresh interpreter) of
``--help``, a tool's ``--help``, and ``compress`` / ``decompress`` of one 64 px face with the shipped demo codec,
next to the imports that bound them from below (``torch`` alone; ``torch`` + ``scipy.stats``, which CompressAI's
entropy models import; the codec's CompressAI entropy models; the whole of CompressAI; Lightning). Prints a
Markdown table.

    python benchmarks/bench_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stylegan_lightning.utils import format_table

ROOT = Path(__file__).resolve().parents[1]
CODEC = ROOT / "data" / "demo" / "codec.pt"
FACE = ROOT / "data" / "samples" / "ffhq" / "00002.jpg"
CLI = [sys.executable, "-m", "stylegan_lightning"]


def wall(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def imports(statement: str) -> list[str]:
    return [sys.executable, "-c", statement]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        streams = Path(folder) / "streams"
        compress = CLI + ["compress", "--codec", str(CODEC), "--resolution", "64", "--out", str(streams), str(FACE)]
        subprocess.run(compress, check=True, capture_output=True)
        stream = next(streams.rglob("*.sglc"))
        decompress = CLI + ["decompress", "--codec", str(CODEC), "--out", str(Path(folder) / "decoded"), str(stream)]
        cases = [
            ("python (no imports)", imports("pass")),
            ("import torch", imports("import torch")),
            ("import torch, scipy.stats", imports("import torch, scipy.stats")),
            ("codec entropy models (CompressAI part)", imports("import stylegan_lightning.codec.entropy_models")),
            ("import compressai (whole)", imports("import compressai")),
            ("import lightning.pytorch", imports("import lightning.pytorch")),
            ("stylegan-lightning --help", CLI + ["--help"]),
            ("stylegan-lightning decompress --help", CLI + ["decompress", "--help"]),
            ("compress one face (64 px)", compress),
            (f"decompress one stream ({stream.stat().st_size} bytes)", decompress),
        ]
        rows = [[name, f"{wall(command, args.repeats):.2f}"] for name, command in cases]
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"median of {args.repeats} fresh interpreters\n")
    print(format_table(rows, ["command", "wall s"]))


if __name__ == "__main__":
    main()
