"""Backbone benchmark: custom-op throughput (reference vs CUDA when available) and generator images/s at
256 and 1024 (config-f channels), batch 1 and 8. Prints Markdown tables.

The generator table gives the convolutions' GFLOP per image (``torch.utils.flop_counter.FlopCounterMode`` over one
forward: 2 x multiply-accumulates of every convolution, transposed, grouped and depthwise ones included, and of the
mapping network's matrix products) and the achieved GFLOP/s as a share of a 2048 x 2048 float32 matrix product's
on the same threads (oneDNN's convolutions can exceed it, so above 100% is possible).

    python benchmarks/bench_backbone.py                      # CPU (+ CUDA if present)
    python benchmarks/bench_backbone.py --sizes 256 --batches 1 --repeats 2
"""

from __future__ import annotations

import argparse
import platform

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import torch

from stylegan_lightning import ops
from stylegan_lightning.stylegan2 import FrozenGenerator, Generator
from stylegan_lightning.utils import format_table, median_seconds

BLUR = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64


def op_cases(device: torch.device):
    x = torch.randn(8, 256, 64, 64, device=device)
    k = BLUR.to(device)
    b = torch.randn(256, device=device)
    yield "upfirdn2d up2 [8,256,64,64]", x, lambda impl: ops.upfirdn2d(x, k * 4, up=2, pad=(2, 1), impl=impl)
    yield "upfirdn2d down2 [8,256,64,64]", x, lambda impl: ops.upfirdn2d(x, k, down=2, pad=(1, 1), impl=impl)
    yield "upfirdn2d blur [8,256,64,64]", x, lambda impl: ops.upfirdn2d(x, k, pad=(2, 1), impl=impl)
    yield "fused_lrelu [8,256,64,64]", x, lambda impl: ops.bias_act(x, b, act="lrelu", impl=impl)


def bench_ops(devices: list[torch.device], repeats: int) -> str:
    rows = []
    for device in devices:
        impls = ["ref", "cuda"] if device.type == "cuda" else ["ref"]
        for name, x, fn in op_cases(device):
            gb = x.numel() * x.element_size() / 1e9
            for impl in impls:
                try:
                    seconds = median_seconds(lambda: fn(impl), repeats, device)
                except RuntimeError as error:  # CUDA kernels failed to build: say so in the table
                    rows.append([name, str(device), impl, "n/a", str(error).splitlines()[0][:40]])
                    continue
                rows.append([name, str(device), impl, round(seconds * 1000, 3), round(gb / seconds, 2)])
    return format_table(rows, ["op", "device", "impl", "ms", "input GB/s"])


def matmul_gflops(device: torch.device, repeats: int) -> float:
    """GFLOP/s of a 2048 x 2048 float32 matrix product: the FLOP floor the convolutions are compared with."""
    a, b = torch.randn(2048, 2048, device=device), torch.randn(2048, 2048, device=device)
    return 2 * 2048**3 / median_seconds(lambda: a @ b, max(repeats, 3), device) / 1e9


def forward_gflop(frozen: FrozenGenerator, w: torch.Tensor) -> float:
    """GFLOP of one forward of ``frozen`` on ``w``, as counted by PyTorch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        frozen(w)
    return counter.get_total_flops() / 1e9


def bench_generator(devices: list[torch.device], sizes: list[int], batches: list[int], repeats: int) -> str:
    rows = []
    floors = {str(device): matmul_gflops(device, repeats) for device in devices}
    for size in sizes:
        torch.manual_seed(0)
        generator = Generator(size)  # config-f: channel_multiplier 2, style_dim 512, 8 mapping layers
        params = sum(p.numel() for p in generator.parameters()) / 1e6
        for device in devices:
            frozen = FrozenGenerator(generator, n_mean_latent=1000).to(device)
            impls = ["ref", "auto"] if device.type == "cuda" else ["ref"]
            for impl in impls:
                for batch in batches:
                    w = frozen.sample_w(batch, generator=torch.Generator().manual_seed(1))
                    previous = ops.get_impl()
                    ops.set_impl(impl)
                    try:
                        with torch.no_grad():
                            seconds = median_seconds(lambda: frozen(w), repeats, device)
                    finally:
                        ops.set_impl(previous)
                    memory = ""
                    if device.type == "cuda":
                        memory = round(torch.cuda.max_memory_allocated(device) / 2**20)
                        torch.cuda.reset_peak_memory_stats(device)
                    gflop = forward_gflop(frozen, w)
                    rows.append([size, round(params, 1), str(device), impl, batch, round(seconds, 4),
                                 round(seconds / batch, 4), round(gflop / batch, 1),
                                 f"{gflop / seconds / floors[str(device)]:.0%}", memory])
    table = format_table(rows, ["size", "params (M)", "device", "ops", "batch", "s / batch", "s / image",
                                "GFLOP / image", "GFLOP/s vs matmul", "peak CUDA MiB"])
    floor_line = ", ".join(f"{device}: {gflops:.0f} GFLOP/s" for device, gflops in floors.items())
    return f"{table}\n\nFloor (2048 x 2048 float32 matrix product): {floor_line}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--skip-ops", action="store_true")
    args = parser.parse_args()
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.cpu_only:
        devices.append(torch.device("cuda"))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} CPU threads, CUDA: {torch.cuda.get_device_name() if len(devices) > 1 else 'no'}")
    if not args.skip_ops:
        print("\n## Custom ops (median of repeats, after warm-up)\n")
        print(bench_ops(devices, args.repeats))
        print("\nCUDA kernels:", ops.plugin_status())
    print("\n## Generator synthesis, config-f, const noise, no grad\n")
    print(bench_generator(devices, args.sizes, args.batches, args.repeats))


if __name__ == "__main__":
    main()
