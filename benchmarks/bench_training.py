"""Training-step throughput and where the time goes: the CPU face prior's warm-start step and the demo codec's step.

For each, images/s of one optimiser step (forward, backward, Adam; median of ``--repeats`` after one warm-up) and
the 10 operators with the most self CPU time in one profiled step (``torch.profiler``). The prior step is
``bench_prior.py``'s warm-start step with the shipped channel table (``configs/prior64-cpu.yaml``: L1 + coarse
MSE, the identity loss when ``--identity`` names the MobileFaceNet file); the codec step is the objective of
``configs/demo/codec.yaml`` (rate + per-layer distortions; the identity term when its file is there) with its
Adam step. Prints Markdown tables.

    python benchmarks/bench_training.py
    python benchmarks/bench_training.py --identity ../shared/weights/mobilefacenet/068.ckpt --batch 16
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import stylegan_lightning  # noqa: F401  (torchvision shim first)
import torch
import yaml
from torch.profiler import ProfilerActivity, profile

from stylegan_lightning.utils import format_table, median_seconds

ROOT = Path(__file__).resolve().parents[1]


def prior_step(images: torch.Tensor, identity: str | None):
    from bench_prior import CANDIDATES, SHIPPED, warm_start_step  # the sibling script (benchmarks/ is on sys.path)
    from stylegan_lightning.stylegan2.prior import PriorWarmStartModule

    extra = {"id_lambda": 0.1, "id_weights": identity} if identity else {}
    return warm_start_step(PriorWarmStartModule(**CANDIDATES[SHIPPED], **extra), images)


def codec_step(images: torch.Tensor, identity: str | None):
    from stylegan_lightning.codec import CodecModule

    arguments = yaml.safe_load((ROOT / "configs" / "demo" / "codec.yaml").read_text())["model"]["init_args"]
    arguments.update(generator=str(ROOT / arguments["generator"]), export_path=None, image_log_every=0)
    if identity:
        arguments["weights"] = {"mobilefacenet": identity}
    else:  # no identity network: drop its term rather than compute it with random weights
        arguments["distortions"] = [{k: v for k, v in terms.items() if k != "identity"}
                                    for terms in arguments["distortions"]]
    module = CodecModule(**arguments)
    module.train()
    optimizer = torch.optim.Adam([p for p in module.codec.parameters() if p.requires_grad], lr=1e-4)

    def step():
        loss, _, _ = module.objective(images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def top_ops(step, rows: int = 10) -> str:
    step()  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step()
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total = sum(event.self_cpu_time_total for event in events)
    table = [[event.key, event.count, round(event.self_cpu_time_total / 1000, 1),
              f"{event.self_cpu_time_total / total:.0%}"] for event in events[:rows]]
    return format_table(table, ["operator", "calls", "self ms", "share"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--identity", default=None, help="MobileFaceNet 068.ckpt: include the identity losses")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.rand(args.batch, 3, 64, 64) * 2 - 1
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
          f"batch {args.batch}, 64 px, median of {args.repeats} after one warm-up")
    summary, profiles = [], []
    for name, build in (("face prior warm start", prior_step), ("demo codec", codec_step)):
        step = build(images, args.identity)
        seconds = median_seconds(step, args.repeats)
        summary.append([name, round(seconds, 3), round(args.batch / seconds, 1)])
        profiles.append(f"\n## {name}: top operators of one step\n\n{top_ops(step)}")
    print("\n" + format_table(summary, ["training step", "s / step", "images / s"]))
    print("\n".join(profiles))


if __name__ == "__main__":
    main()
