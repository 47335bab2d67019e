"""Compile the toolkit's CUDA kernels (``upfirdn2d``, ``bias_act``) without a GPU and print a table.

Run it with the Python of a throwaway virtual environment that holds a CUDA build of torch (``make
cuda-build-check`` creates one outside the project). With ``--install-toolkit`` it first installs the NVIDIA
compiler wheels that match ``torch.version.cuda`` (``nvidia-cuda-nvcc``, ``nvidia-nvvm``, ``nvidia-cuda-crt``,
``nvidia-cuda-cccl``: their versions must match each other, or ptxas rejects the PTX that cicc writes), then lays
out a ``CUDA_HOME`` from them and compiles both kernels for the architectures of ``--arch`` (default sm_80 and
sm_90) with the same flags the toolkit uses at run time (:func:`stylegan_lightning.ops.plugin.compile_kernel`).

    python tools/cuda_build_check.py --install-toolkit [--arch "8.0;9.0"]

Exit status 0 when every kernel compiled and imported, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLKIT_PACKAGES = ("nvidia-cuda-nvcc", "nvidia-nvvm", "nvidia-cuda-crt", "nvidia-cuda-cccl")


def install_toolkit(cuda: str) -> None:
    """pip-install the compiler wheels of CUDA ``cuda`` (``major.minor``) into this interpreter's environment."""
    if int(cuda.split(".")[0]) < 13:
        sys.exit(f"torch is built for CUDA {cuda}; this check lays out the CUDA 13 wheels (nvidia/cu13) only")
    pins = [f"{package}=={cuda}.*" for package in TOOLKIT_PACKAGES]
    env = {key: value for key, value in os.environ.items() if key != "PIP_FIND_LINKS"}  # no local CPU wheels
    subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "-q", *pins, "ninja"], check=True, env=env)


def cuda_home() -> Path:
    """A ``CUDA_HOME`` (bin, include, nvvm, lib64) over the ``nvidia/cu13`` wheel tree of this environment."""
    import nvidia

    tree = Path(list(nvidia.__path__)[0]) / "cu13"
    if not (tree / "bin" / "nvcc").is_file():
        sys.exit(f"no nvcc under {tree}: run with --install-toolkit")
    home = Path(sys.prefix) / "cuda-home"
    (home / "lib64").mkdir(parents=True, exist_ok=True)
    for part in ("bin", "include", "nvvm"):
        link = home / part
        if not link.exists():
            link.symlink_to(tree / part)
    for library in (tree / "lib").glob("*.so*"):
        for name in {library.name, library.name.split(".so")[0] + ".so"}:  # the linker wants libcudart.so
            link = home / "lib64" / name
            if not link.exists():
                link.symlink_to(library)
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install-toolkit", action="store_true", help="pip-install the matching nvcc wheels first")
    parser.add_argument("--arch", default="8.0;9.0", help="TORCH_CUDA_ARCH_LIST to compile for (default: 8.0;9.0)")
    args = parser.parse_args(argv)

    import torch

    if torch.version.cuda is None:
        sys.exit(f"torch {torch.__version__} is a CPU build: install a CUDA build in a separate environment")
    cuda = ".".join(torch.version.cuda.split(".")[:2])
    if args.install_toolkit:
        install_toolkit(cuda)
    home = cuda_home()
    os.environ["CUDA_HOME"] = str(home)
    os.environ["TORCH_CUDA_ARCH_LIST"] = args.arch
    nvcc = subprocess.run([str(home / "bin" / "nvcc"), "--version"], capture_output=True, text=True).stdout
    sys.path.insert(0, str(ROOT))
    from stylegan_lightning.ops.plugin import PLUGINS, compile_kernel

    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), {nvcc.strip().splitlines()[-1]}, "
          f"architectures {args.arch}")
    print(f"| kernel | result | seconds |\n|---|---|---|")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="stylegan-lightning-cuda-") as folder:
        for name in PLUGINS:
            build = Path(folder) / name
            build.mkdir()
            start = time.perf_counter()
            try:
                module = compile_kernel(name, build_directory=str(build),
                                        extra_cuda_cflags=[f"-I{home / 'include' / 'cccl'}"])
                result = "compiled, imported: " + ", ".join(n for n in dir(module) if not n.startswith("_"))
            except Exception as error:  # noqa: BLE001 - report every failure, then exit 1
                failed += 1
                result = f"FAILED: {str(error).strip().splitlines()[-1]}"
                print(error, file=sys.stderr)
            print(f"| {name} | {result} | {time.perf_counter() - start:.0f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
