"""The ``stylegan-lightning`` command (also ``python -m stylegan_lightning``).

- ``fit`` / ``validate`` / ``test`` / ``predict``: Lightning's ``LightningCLI`` over any of the toolkit's
  LightningModules and DataModules (``--config configs/X.yaml`` with ``model:``, ``data:``, ``trainer:``
  sections; class paths may be short names such as ``EncoderModule``).
- tool subcommands (``convert``, ``inspect``, ``sample``, ``weights``, ``invert``, ``edit``, ...): every option
  can also come from the YAML file given with ``--config`` -- either at the top level or in a section named
  after the tool, so one file can hold a training run and the tools that use its results. Options on the
  command line override the file. Errors about user input (missing or mismatched weight files, bad
  configuration) are printed as one line, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from .serialization import CheckpointError


@dataclass(frozen=True)
class Tool:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


TOOLS: dict[str, Tool] = {}


def tool(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``run(args) -> exit status`` as subcommand ``name``."""

    def register(run: Callable[[argparse.Namespace], int]):
        TOOLS[name] = Tool(name, help, add_arguments, run)
        return run

    return register


class UsageError(ValueError):
    """Bad command-line or configuration input."""


# ------------------------------------------------------------------------------------------------ convert
def _convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="generator file: rosinality .pt, NVlabs .pkl, pSp/e4e/HyperStyle .pt, "
                                       "or a stylegan-lightning checkpoint")
    parser.add_argument("destination", help="output rosinality .pt ({g_ema, latent_avg, [d], generator_config})")
    parser.add_argument("--lr-mlp", type=float, default=None,
                        help="mapping-network learning-rate multiplier if not the official 0.01")
    parser.add_argument("--no-discriminator", action="store_true", help="do not copy a discriminator")


@tool("convert", "convert a generator checkpoint to the rosinality .pt layout", _convert_arguments)
def _convert(args: argparse.Namespace) -> int:
    from .stylegan2 import convert_checkpoint
    from .utils import format_table

    report = convert_checkpoint(args.source, args.destination, with_discriminator=not args.no_discriminator,
                                lr_mlp=args.lr_mlp)
    rows = [[key, value] for key, value in report.items() if key != "config"]
    rows += [[f"config.{key}", value] for key, value in report["config"].items()]
    print(format_table(rows, ["field", "value"]))
    return 0


# ------------------------------------------------------------------------------------------------ inspect
def _inspect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a generator-bearing checkpoint file")


@tool("inspect", "show what a generator checkpoint holds (format, architecture, latent_avg, discriminator)",
      _inspect_arguments)
def _inspect(args: argparse.Namespace) -> int:
    from .stylegan2 import infer_generator_config, read_checkpoint
    from .utils import format_table

    data = read_checkpoint(args.path)
    config = {**infer_generator_config(data["generator"]), **data["config"]}
    rows = [[f"generator.{k}", v] for k, v in config.items()]
    rows.append(["generator.tensors", len(data["generator"])])
    rows.append(["latent_avg", "yes" if data["latent_avg"] is not None else "no (computed when loaded)"])
    rows.append(["discriminator", "yes" if data["discriminator"] is not None else "no"])
    print(format_table(rows, ["field", "value"]))
    return 0


# ------------------------------------------------------------------------------------------------ sample
def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", default=None,
                        help="generator file; without it a randomly initialised generator is built from --size etc.")
    parser.add_argument("--size", type=int, default=64, help="resolution of a random generator")
    parser.add_argument("--style-dim", type=int, default=512)
    parser.add_argument("--n-mlp", type=int, default=8)
    parser.add_argument("--channel-multiplier", type=int, default=2)
    parser.add_argument("--channel-max", type=int, default=None)
    parser.add_argument("--init-seed", type=int, default=0, help="seed of a random generator's weights")
    parser.add_argument("--n", type=int, default=16, help="number of images")
    parser.add_argument("--nrow", type=int, default=None, help="images per grid row")
    parser.add_argument("--truncation", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the z samples")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--noise", choices=["const", "random", "zero"], default="const")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--out", default="outputs/samples.png", help="grid image to write")


@tool("sample", "sample a grid of images from a generator and print timings", _sample_arguments)
def _sample(args: argparse.Namespace) -> int:
    import torch

    from .stylegan2 import FrozenGenerator, Generator, load_generator
    from .stylegan2.sampling import sample_images
    from .utils import Timer, format_table, save_image, select_device

    device = select_device(args.device)
    with Timer() as load_timer:
        if args.generator:
            generator = load_generator(args.generator)
            source = args.generator
        else:
            torch.manual_seed(args.init_seed)
            generator = Generator(args.size, style_dim=args.style_dim, n_mlp=args.n_mlp,
                                  channel_multiplier=args.channel_multiplier, channel_max=args.channel_max)
            source = f"random init (seed {args.init_seed})"
        frozen = FrozenGenerator(generator).to(device)
    result = sample_images(frozen, args.n, args.truncation, args.seed, args.batch_size, args.noise)
    path = save_image(result.images, args.out, nrow=args.nrow)
    parameters = sum(p.numel() for p in frozen.parameters())
    rows = [
        ["generator", source],
        ["resolution / n_latent", f"{frozen.size} / {frozen.n_latent}"],
        ["parameters", f"{parameters / 1e6:.2f} M"],
        ["device / ops", f"{device} / {_ops_summary(device)}"],
        ["load + build (s)", round(load_timer.seconds, 3)],
        ["first batch incl. warm-up (s)", round(result.batch_seconds[0], 3)],
        ["steady images/s", round(result.steady_images_per_second, 2)],
        ["ms per image", round(1000 / max(result.steady_images_per_second, 1e-12), 1)],
        ["grid", f"{path} ({args.n} images, truncation {args.truncation}, seed {args.seed})"],
    ]
    print(format_table(rows, ["sample", "value"]))
    return 0


def _ops_summary(device) -> str:
    from . import ops

    if device.type != "cuda" or ops.get_impl() == "ref":
        return "reference"
    return ", ".join(f"{name}: {state.split(':')[0]}" for name, state in ops.plugin_status().items())


# ------------------------------------------------------------------------------------------------ init-generator
def _init_generator_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="output rosinality .pt")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--style-dim", type=int, default=512)
    parser.add_argument("--n-mlp", type=int, default=8)
    parser.add_argument("--channel-multiplier", type=int, default=2)
    parser.add_argument("--channel-max", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mean-samples", type=int, default=10000, help="z samples for latent_avg")


@tool("init-generator", "write a randomly initialised generator (seeded) for synthetic-data experiments and demos",
      _init_generator_arguments)
def _init_generator(args: argparse.Namespace) -> int:
    import torch

    from .stylegan2 import Generator, save_generator

    torch.manual_seed(args.seed)
    generator = Generator(args.size, style_dim=args.style_dim, n_mlp=args.n_mlp,
                          channel_multiplier=args.channel_multiplier, channel_max=args.channel_max)
    latent_avg = generator.mean_latent(args.mean_samples, torch.Generator().manual_seed(args.seed))
    path = save_generator(args.out, generator, latent_avg=latent_avg)
    count = sum(p.numel() for p in generator.parameters())
    print(f"wrote {path}: random generator {args.size}px, {count / 1e6:.2f} M parameters, seed {args.seed}")
    return 0


# ------------------------------------------------------------------------------------------------ weights
def _weights_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--missing", action="store_true", help="list only the files that are missing")


@tool("weights", "list every pretrained file the toolkit can use, which are present and what each is for",
      _weights_arguments)
def _weights(args: argparse.Namespace) -> int:
    from .utils import format_table
    from .weights import ENV_VAR, weight_table, weights_dir

    rows = [row for row in weight_table() if not args.missing or row[2] == "missing"]
    print(f"weights folder: {weights_dir().resolve()} (set ${ENV_VAR} to change it)\n")
    print(format_table([[key, file, "yes" if found != "missing" else "MISSING", purpose]
                        for key, file, found, purpose, _ in rows], ["key", "file", "present", "used for"]))
    print()
    print(format_table([[key, found if found != "missing" else "-", source] for key, _, found, _, source in rows],
                       ["key", "found at", "where to get it"]))
    return 0


# ------------------------------------------------------------------------------------------------ Lightning
LIGHTNING_COMMANDS = {
    "fit": "train a module (LightningCLI)",
    "validate": "run validation of a module (LightningCLI)",
    "test": "run the test loop of a module (LightningCLI)",
    "predict": "run prediction with a module (LightningCLI)",
}
# Modules whose classes LightningCLI may instantiate by short name; importing them registers the subclasses.
LIGHTNING_REGISTRY = (
    "stylegan_lightning.data",
    "stylegan_lightning.encoders",
    "stylegan_lightning.editing",
)
CONFIG_SECTIONS = ("model", "data", "trainer", "seed_everything", "ckpt_path", "optimizer", "lr_scheduler")


def run_lightning(argv: list[str]) -> int:
    """``LightningCLI`` for ``fit`` / ``validate`` / ``test`` / ``predict`` (argv starts with the subcommand)."""
    import importlib

    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    for module in LIGHTNING_REGISTRY:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:  # a package of the toolkit not built yet
            if error.name != module:
                raise
    LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        seed_everything_default=0,
        args=argv,
    )
    return 0


# ------------------------------------------------------------------------------------------------ driver
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stylegan-lightning", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in LIGHTNING_COMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    for entry in TOOLS.values():
        sub = subparsers.add_parser(entry.name, help=entry.help, description=entry.help)
        sub.add_argument("--config", default=None, help="YAML file of option values (command line overrides)")
        entry.add_arguments(sub)
        sub.set_defaults(_tool=entry, _parser=sub)
    return parser


def _apply_config(sub: argparse.ArgumentParser, path: str) -> None:
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise UsageError(f"config file '{path}' does not exist") from None
    except yaml.YAMLError as error:
        raise UsageError(f"config file '{path}' is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise UsageError(f"config file '{path}' must hold a mapping of option: value")
    if isinstance(values.get(sub.prog.split()[-1]), dict):  # a section named after the tool
        values = values[sub.prog.split()[-1]]
    elif any(section in values for section in CONFIG_SECTIONS):
        values = {k: v for k, v in values.items() if k not in CONFIG_SECTIONS}
    known = {action.dest for action in sub._actions}
    values = {str(key).replace("-", "_"): value for key, value in values.items()}
    unknown = sorted(set(values) - known - {"config"})
    if unknown:
        raise UsageError(f"config file '{path}': unknown option(s) {unknown}; known: {sorted(known - {'help'})}")
    sub.set_defaults(**values)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        return run_lightning(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.config:
            _apply_config(args._parser, args.config)
            args = parser.parse_args(argv)
        return int(args._tool.run(args) or 0)
    except (CheckpointError, UsageError) as error:
        print(f"stylegan-lightning {args.command}: error: {error}", file=sys.stderr)
        return 2


def run(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    raise SystemExit(main(argv))
