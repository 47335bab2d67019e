"""The ``stylegan-lightning`` command (also ``python -m stylegan_lightning``).

- ``fit`` / ``validate`` / ``test`` / ``predict``: Lightning's ``LightningCLI`` over any of the toolkit's
  LightningModules and DataModules (``--config configs/X.yaml`` with ``model:``, ``data:``, ``trainer:``
  sections; class paths may be short names such as ``EncoderModule``).
- tool subcommands (``convert``, ``inspect``, ``sample``, ``weights``, ``invert``, ``edit``, ``compress``,
  ``decompress``, ``evaluate``, ``label-latents``, ``compare-edits``, ``serve``, ...): every option can also come from the
  YAML file given with ``--config`` -- either at the top level or in a section named after the tool, so one file
  can hold a training run and the tools that use its results. Options on the command line override the file.
  Errors about user input (missing or mismatched weight files, bad configuration) are printed as one line, exit
  status 2.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from . import __version__
from .errors import CheckpointError, UsageError
from .options import (DEVICE_HELP, channel_table, finite_float, generator_size, nonnegative_int, output_file, output_folder,
                      positive_int, truncation)


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


# ------------------------------------------------------------------------------------------------ convert
def _convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="generator file: rosinality .pt, NVlabs .pkl, pSp/e4e/HyperStyle .pt, "
                                       "or a stylegan-lightning checkpoint")
    parser.add_argument("destination", help="output rosinality .pt ({g_ema, latent_avg, [d], generator_config})")
    parser.add_argument("--lr-mlp", type=float, default=None,
                        help="mapping-network learning-rate multiplier if not the official 0.01")
    parser.add_argument("--no-discriminator", action="store_true", help="do not copy a discriminator")
    parser.add_argument("--half", action="store_true", help="store the weights as float16: half the file, for "
                                                             "shipping a model (loaders cast them back to float32)")


@tool("convert", "convert a generator checkpoint to the rosinality .pt layout", _convert_arguments)
def _convert(args: argparse.Namespace) -> int:
    output_file(args.destination, "DESTINATION", suffixes=(".pt", ".pth"), not_same_as={"SOURCE": args.source})
    import torch

    from .stylegan2 import convert_checkpoint
    from .utils import format_table

    report = convert_checkpoint(args.source, args.destination, with_discriminator=not args.no_discriminator,
                                dtype=torch.float16 if args.half else None, lr_mlp=args.lr_mlp)
    rows = [[key, value] for key, value in report.items() if key != "config"]
    rows += [[f"config.{key}", value] for key, value in report["config"].items()]
    print(format_table(rows, ["field", "value"]))
    return 0


# ------------------------------------------------------------------------------------------------ ship
def _ship_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a trained file: codec, encoder, HyperStyle, StyleAE, classifier or a Lightning "
                                       "checkpoint")
    parser.add_argument("destination", help="the copy to distribute (weights as float16, run state dropped)")
    parser.add_argument("--keep", nargs="*", default=["model."], metavar="PREFIX",
                        help="state_dict prefixes a Lightning checkpoint keeps (none given: all)")


@tool("ship", "write the small copy of a trained file to distribute (float16 weights; a Lightning checkpoint "
              "without optimiser and loop state)", _ship_arguments)
def _ship(args: argparse.Namespace) -> int:
    output_file(args.destination, "DESTINATION", suffixes=(".pt", ".pth", ".ckpt"),
                not_same_as={"SOURCE": args.source})
    from .shipping import ship_file
    from .utils import format_table

    report = ship_file(args.source, args.destination, tuple(args.keep))
    print(format_table([[key, value] for key, value in report.items()], ["field", "value"]))
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
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in data["generator"].values() if hasattr(t, "dtype")})
    rows = [["format", data["format"]], ["file bytes", Path(args.path).stat().st_size]]
    rows += [[f"generator.{k}", v] for k, v in config.items()]
    rows.append(["generator.tensors", f"{len(data['generator'])} ({', '.join(dtypes)}; loaders use float32)"])
    rows.append(["latent_avg", "yes" if data["latent_avg"] is not None else "no (computed when loaded)"])
    rows.append(["discriminator", "yes" if data["discriminator"] is not None else "no"])
    print(format_table(rows, ["field", "value"]))
    return 0


# ------------------------------------------------------------------------------------------------ sample
def _random_generator_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """The architecture options of a randomly initialised generator (``sample`` and ``init-generator``)."""
    parser.add_argument("--size", type=generator_size, default=64, help=f"resolution {what} (a power of two)")
    parser.add_argument("--style-dim", type=positive_int, default=512, help=f"width of z and w {what}")
    parser.add_argument("--n-mlp", type=positive_int, default=8, help=f"mapping-network layers {what}")
    parser.add_argument("--channel-multiplier", type=positive_int, default=2,
                        help=f"channel multiplier {what} (2 = config-f)")
    parser.add_argument("--channel-max", type=positive_int, default=None,
                        help=f"cap on the channels of every layer {what} (default: 512)")
    parser.add_argument("--channels", type=channel_table, default=None, metavar="RES:CH,...",
                        help=f"explicit channel table {what}, e.g. 4:256,8:256,16:256,32:128,64:64 (replaces "
                             "--channel-multiplier / --channel-max)")


def _channels_for(args: argparse.Namespace) -> dict[int, int] | None:
    """``--channels`` checked against ``--size`` (one entry per resolution 4 .. size)."""
    if args.channels is not None and sorted(args.channels) != [2**i for i in range(2, args.size.bit_length())]:
        raise UsageError(f"--channels must give every resolution 4..{args.size} once, got {sorted(args.channels)}")
    return args.channels


def _sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", default=None,
                        help="generator file; without it a randomly initialised generator is built from --size etc.")
    _random_generator_arguments(parser, "of a random generator")
    parser.add_argument("--init-seed", type=int, default=0, help="seed of a random generator's weights")
    parser.add_argument("--n", type=positive_int, default=16, help="number of images")
    parser.add_argument("--nrow", type=positive_int, default=None, help="images per grid row (default: about the "
                                                                        "square root of --n)")
    parser.add_argument("--truncation", type=truncation, default=1.0,
                        help="truncation psi: w_avg + psi (w - w_avg), in [-4, 4]; 1 = none, 0 = the average face")
    parser.add_argument("--seed", type=int, default=0, help="seed of the z samples")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="images per generator batch")
    parser.add_argument("--noise", choices=["const", "random", "zero"], default="const",
                        help="noise inputs: the generator's stored maps, fresh random ones, or none")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--out", default="outputs/samples.png", help="grid image to write (.png, .jpg, .webp ...)")
    parser.add_argument("--truncation-sweep", type=truncation, nargs="+", default=None, metavar="PSI",
                        help="also write OUT_truncation.png: the first --sweep-n samples (rows) at each truncation "
                             "PSI (columns), e.g. 1 0.7 0.5 0")
    parser.add_argument("--sweep-n", type=positive_int, default=4, help="rows of the truncation sweep")


@tool("sample", "sample a grid of images from a generator and print timings", _sample_arguments)
def _sample(args: argparse.Namespace) -> int:
    import torch

    from .stylegan2 import FrozenGenerator, Generator, load_generator
    from .stylegan2.sampling import sample_images, truncation_sweep
    from .utils import Timer, format_table, save_image, select_device

    if args.truncation_sweep is not None and not 1 <= args.sweep_n <= args.n:
        raise UsageError(f"--sweep-n must be in 1..--n ({args.n}), got {args.sweep_n}")
    output_file(args.out)
    device = select_device(args.device)
    with Timer() as load_timer:
        if args.generator:
            generator = load_generator(args.generator)
            source = args.generator
        else:
            torch.manual_seed(args.init_seed)
            generator = Generator(args.size, style_dim=args.style_dim, n_mlp=args.n_mlp,
                                  channel_multiplier=args.channel_multiplier, channel_max=args.channel_max,
                                  channels=_channels_for(args))
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
    if args.truncation_sweep is not None:
        sweep = truncation_sweep(frozen, args.sweep_n, args.truncation_sweep, args.seed, args.noise)
        sweep_path = save_image(sweep, path.with_name(f"{path.stem}_truncation{path.suffix}"),
                                nrow=len(args.truncation_sweep))
        rows.append(["truncation sweep", f"{sweep_path} (rows: the first {args.sweep_n} samples, columns: "
                                         f"truncation {' '.join(str(t) for t in args.truncation_sweep)})"])
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
    _random_generator_arguments(parser, "of the generator")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and of the latent_avg samples")
    parser.add_argument("--mean-samples", type=positive_int, default=10000, help="z samples for latent_avg")


@tool("init-generator", "write a randomly initialised generator (seeded) for synthetic-data experiments and demos",
      _init_generator_arguments)
def _init_generator(args: argparse.Namespace) -> int:
    output_file(args.out, "OUT", suffixes=(".pt", ".pth"))
    import torch

    from .stylegan2 import Generator, save_generator

    torch.manual_seed(args.seed)
    generator = Generator(args.size, style_dim=args.style_dim, n_mlp=args.n_mlp,
                          channel_multiplier=args.channel_multiplier, channel_max=args.channel_max,
                          channels=_channels_for(args))
    latent_avg = generator.mean_latent(args.mean_samples, torch.Generator().manual_seed(args.seed))
    path = save_generator(args.out, generator, latent_avg=latent_avg)
    count = sum(p.numel() for p in generator.parameters())
    print(f"wrote {path}: random generator {args.size}px, {count / 1e6:.2f} M parameters, seed {args.seed}")
    return 0


# ------------------------------------------------------------------------------------------------ invert
# Method-specific options of the inversion tools: args attribute -> (flag, keyword option of the method's loader).
INVERSION_OPTIONS = {"iters": ("--iters", "n_iters"), "w_encoder": ("--w-encoder", "w_encoder")}


def _inversion_option_arguments(parser: Any) -> None:
    """``--iters`` / ``--w-encoder`` on a parser or an argument group."""
    parser.add_argument("--iters", type=positive_int, default=None, help="hyperstyle: refinement iterations "
                                                                         "(default: the model's, 5 for official files)")
    parser.add_argument("--w-encoder", default=None, help="hyperstyle: W-encoder file, when the checkpoint's opts "
                                                          "do not point at an existing one")


def _inversion_options(args: argparse.Namespace, method: str | None = None) -> dict[str, Any]:
    """The loader options given on the command line (``{}`` when none), checked against the inversion ``method``
    (default ``args.method``)."""
    method = method or args.method
    from .inversion import INVERSION_METHODS, inversion_method_options

    given = {dest: getattr(args, dest) for dest in INVERSION_OPTIONS if getattr(args, dest, None) is not None}
    if not given:
        return {}
    if "iters" in given:
        try:
            given["iters"] = int(given["iters"])
        except (TypeError, ValueError):
            raise UsageError(f"--iters must be an integer, got {given['iters']!r}") from None
        if given["iters"] < 1:
            raise UsageError(f"--iters must be >= 1, got {given['iters']}")
    accepted = inversion_method_options(method)
    options = {}
    for dest, value in given.items():
        flag, option = INVERSION_OPTIONS[dest]
        if option not in accepted and accepted != ["*"]:
            users = [m for m in sorted(INVERSION_METHODS) if option in inversion_method_options(m)]
            raise UsageError(f"{flag} is not used by --method {method} (methods that use it: "
                             f"{', '.join(users) or 'none'})")
        options[option] = value
    return options


def _invert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="inversion model: official pSp / e4e / W-encoder .pt, or "
                                                            "a stylegan-lightning checkpoint")
    parser.add_argument("--method", default="encoder", help="inversion method: encoder (pSp / e4e / W-encoder), "
                                                            "gradstyle or hyperstyle")
    parser.add_argument("--images", required=True, help="an image file, a folder (recursive) or a zip archive")
    _inversion_option_arguments(parser)
    parser.add_argument("--out", default="outputs/invert", help="folder for latents.pt, reconstructions, grid.png")
    parser.add_argument("--generator", default=None, help="generator file if the checkpoint's is elsewhere")
    parser.add_argument("--resolution", type=positive_int, default=None,
                        help="read images at this size (default: the generator's)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="images per inversion batch")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--no-images", action="store_true", help="write latents.pt and the grid only")
    _align_arguments(parser)


def _align_arguments(parser: argparse.ArgumentParser) -> None:
    from .photos.arguments import align_input_arguments

    align_input_arguments(parser)


def _face_images(args: argparse.Namespace, size: int):
    """``(keys, images, alignment)`` of ``--images``: aligned photos with ``--align``, else aligned face images
    (``alignment`` empty)."""
    if args.align:
        from .photos.tools import aligned_inputs

        return aligned_inputs(args.images, size, args.all_faces, args.detector, args.framing)
    if args.all_faces:
        raise UsageError("--all-faces applies with --align")
    from .inversion import read_images

    return (*read_images(args.images, size), {})


@tool("invert", "invert face images into W+ with an encoder, GradStyle or HyperStyle (latents, reconstructions, "
                "metrics)", _invert_arguments)
def _invert(args: argparse.Namespace) -> int:
    import torch

    from .inversion import load_inversion_model, save_latents
    from .utils import Timer, format_table, progress, save_image, select_device

    options = _inversion_options(args)
    out = output_folder(args.out)
    device = select_device(args.device)
    model = load_inversion_model(args.checkpoint, args.method, args.generator, **options).to(device)
    generator = model.decoder
    keys, images, alignment = _face_images(args, args.resolution or generator.size)
    latents, reconstructions = [], []
    with Timer(device) as timer, torch.no_grad(), progress(len(images)) as bar:
        for start in range(0, len(images), args.batch_size):
            w_plus, reconstruction = model.invert(images[start: start + args.batch_size].to(device))
            latents.append(w_plus.cpu())
            reconstructions.append(reconstruction.clamp(-1, 1).cpu())
            bar.update(len(w_plus))
    w_plus, reconstructions = torch.cat(latents), torch.cat(reconstructions)
    save_latents(out / "latents.pt", keys, w_plus, args.method, args.checkpoint, generator.generator.config,
                 alignment=alignment)
    targets = torch.nn.functional.interpolate(images, size=reconstructions.shape[-2:], mode="bilinear",
                                              align_corners=False) if images.shape[-1] != generator.size else images
    if not args.no_images:
        for key, image in zip(keys, reconstructions):
            save_image(image, out / "reconstructions" / (Path(key).with_suffix(".png")))
    pairs = torch.stack([targets, reconstructions], 1).flatten(0, 1)
    save_image(pairs[: 2 * 16], out / "grid.png", nrow=2)
    from .metrics.fidelity import psnr

    mse = (reconstructions - targets).pow(2).flatten(1).mean(1)
    rows = [["images", len(keys)], ["method / checkpoint", f"{args.method} / {args.checkpoint}"],
            ["W+ shape", tuple(w_plus.shape)],
            ["seconds per image (first batch's warm-up included)", round(timer.seconds / len(keys), 4)],
            *([["refinement iterations", model.n_iters]] if hasattr(model, "n_iters") else []),
            ["mean MSE ([-1, 1])", round(mse.mean().item(), 5)],
            ["mean PSNR (dB)", round(psnr(reconstructions, targets).mean().item(), 2)],
            ["written", f"{out / 'latents.pt'}, {out / 'grid.png'} (input | reconstruction)"]]
    print(format_table(rows, ["invert", "value"]))
    return 0


# ------------------------------------------------------------------------------------------------ edit
def _edit_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("what to edit (latents file, or images with an inversion checkpoint)")
    source.add_argument("--latents", default=None, help="latents.pt from `invert` (or a W / W+ tensor file)")
    source.add_argument("--generator", default=None, help="generator for --latents (or to override a checkpoint's)")
    source.add_argument("--images", default=None, help="image file, folder or zip to invert first")
    source.add_argument("--checkpoint", default=None, help="inversion checkpoint for --images")
    source.add_argument("--method", default="encoder", help="inversion method for --images: encoder, gradstyle or "
                                                            "hyperstyle; or styleae: a StyleAE attribute edit (then "
                                                            "--inversion-method inverts the images)")
    source.add_argument("--inversion-method", default="encoder", help="with --method styleae: the inversion method "
                                                                      "for --images")
    _inversion_option_arguments(source)
    edit = parser.add_argument_group("the edit (an InterFaceGAN-style direction, or a GANSpace component)")
    edit.add_argument("--direction", default=None, help="direction file: InterFaceGAN .npy, e4e .pt, or ours")
    edit.add_argument("--layers", default=None,
                      help="W+ layers to edit: '5', '0-7' (inclusive), '8-' (to the last), '0:8' (half-open) or a "
                           "comma-separated list of those; a negative index counts from the last layer (-1 = the "
                           "last); default: all")
    edit.add_argument("--ganspace", default=None, help="PCA file (e4e-style .pt dict or GANSpace .npz)")
    edit.add_argument("--component", type=nonnegative_int, default=0,
                      help="GANSpace component index, 0 = the largest variance")
    edit.add_argument("--start", type=nonnegative_int, default=0, help="first W+ layer of a GANSpace edit")
    edit.add_argument("--end", type=positive_int, default=None,
                      help="end (exclusive) W+ layer of a GANSpace edit (default: after the last)")
    edit.add_argument("--ganspace-mode", choices=["set", "shift"], default="shift",
                      help="set: the component coordinate becomes the strength (e4e); shift: move by strength * std")
    styleae = parser.add_argument_group("a StyleAE edit (--method styleae)")
    styleae.add_argument("--styleae", default=None, help="StyleAE file (or StyleAEModule checkpoint)")
    styleae.add_argument("--attribute", default=None, help="the attribute to edit (a name the StyleAE knows)")
    styleae.add_argument("--value", type=finite_float, nargs="+", default=None,
                         help="target value(s) of the attribute in its own units (probability for binary "
                              "attributes, e.g. years for an age); one grid column each")
    styleae.add_argument("--shift", type=finite_float, nargs="+", default=None,
                         help="instead of --value: move the attribute's code coordinate by these amounts (labels "
                              "span [-1, 1])")
    styleae.add_argument("--keep-residual", action="store_true",
                         help="add back the autoencoder's reconstruction error w - D(E(w)), so a zero shift "
                              "returns the input code exactly")
    parser.add_argument("--strengths", type=finite_float, nargs="+", default=[-3.0, -1.5, 0.0, 1.5, 3.0],
                        help="edit strengths, one grid column each (direction units, or GANSpace standard "
                             "deviations with --ganspace-mode shift)")
    parser.add_argument("--out", default="outputs/edit", help="folder for edit_grid.png and strips/")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="images per inversion batch")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    _align_arguments(source)
    parser.add_argument("--paste-back", action="store_true",
                        help="also write pasted/<face>_<strength>.png: each edited face warped back into its "
                             "photo at the photo's resolution (needs --align, or latents from `invert --align`)")


def _styleae_edits(args: argparse.Namespace, style_dim: int):
    """StyleAE edits of W+ codes (row by row): ``w_plus -> [S, B, n_latent, D]``, one slice per ``--value`` /
    ``--shift``."""
    import torch

    from .styleae import load_styleae

    if not args.styleae or not args.attribute:
        raise UsageError("--method styleae needs --styleae FILE and --attribute NAME")
    if (args.value is None) == (args.shift is None):
        raise UsageError("--method styleae needs exactly one of --value or --shift")
    if args.direction or args.ganspace:
        raise UsageError("--method styleae edits with --styleae; --direction / --ganspace do not apply")
    model = load_styleae(args.styleae)
    if model.latent_dim != style_dim:
        raise UsageError(f"the StyleAE '{args.styleae}' works on {model.latent_dim}-d codes; the latents are "
                         f"{style_dim}-d")
    try:
        model.attribute_index(args.attribute)
    except ValueError as error:
        raise UsageError(str(error)) from None

    def edit(w_plus):
        with torch.no_grad():
            if args.value is not None:
                return torch.stack([model.edit(w_plus, args.attribute, keep_residual=args.keep_residual,
                                               coordinate=model.coordinate_of(args.attribute, v)) for v in args.value])
            return torch.stack([model.edit(w_plus, args.attribute, shift=v, keep_residual=args.keep_residual)
                                for v in args.shift])

    return edit


def _edit_columns(args: argparse.Namespace) -> list[float]:
    """The grid's column values: StyleAE values / shifts, or direction strengths."""
    if args.method == "styleae":
        return list(args.value if args.value is not None else args.shift)
    return list(args.strengths)


def _latent_edits(args: argparse.Namespace, n_latent: int, style_dim: int):
    """The edit the options ask for, checked and with its files loaded once: ``w_plus -> [S, B, n_latent, D]``
    edited codes (on the CPU), one slice per strength (or StyleAE value)."""
    import torch

    from .editing import apply_ganspace, apply_strengths, load_direction, load_pca

    if args.method == "styleae":
        return _styleae_edits(args, style_dim)
    from .editing.layers import resolve_layers

    if bool(args.direction) == bool(args.ganspace):
        raise UsageError("give exactly one of --direction or --ganspace")
    if args.direction:
        try:
            resolve_layers(args.layers, n_latent)
        except (TypeError, ValueError) as error:
            raise UsageError(f"--layers: {error}") from None
        direction = load_direction(args.direction, layers=args.layers)
        return lambda w_plus: apply_strengths(w_plus, direction, args.strengths, layers=args.layers,
                                              n_latent=n_latent)
    pca = load_pca(args.ganspace)
    if args.component >= pca.n_components:
        raise UsageError(f"--component {args.component}: the PCA file has components 0..{pca.n_components - 1}")
    end = n_latent if args.end is None else args.end
    if not args.start < end <= n_latent:
        raise UsageError(f"--start {args.start} --end {end}: need start < end <= {n_latent} (the W+ layers)")
    return lambda w_plus: torch.stack([apply_ganspace(w_plus, pca, args.component, args.start, args.end, strength,
                                                      mode=args.ganspace_mode, n_latent=n_latent)
                                       for strength in args.strengths])


@tool("edit", "edit faces along a latent direction (grid over strengths)", _edit_arguments)
def _edit(args: argparse.Namespace) -> int:
    import torch

    from .inversion import load_inversion_model, load_latents
    from .stylegan2 import FrozenGenerator
    from .utils import Timer, format_table, progress, save_image, select_device

    if args.paste_back and args.images and not args.align:
        raise UsageError("--paste-back with --images needs --align (the faces' place in their photos)")
    out = output_folder(args.out)
    device = select_device(args.device)
    inversion_method = args.inversion_method if args.method == "styleae" else args.method
    rows = []  # per image: its edited images [S, 3, H, W]
    if args.images:
        if not args.checkpoint:
            raise UsageError("--images needs --checkpoint (the inversion model)")
        options = _inversion_options(args, inversion_method)
        model = load_inversion_model(args.checkpoint, inversion_method, args.generator, **options).to(device)
        generator = model.decoder
        edits = _latent_edits(args, generator.n_latent, generator.style_dim)
        keys, images, alignment = _face_images(args, generator.size)
        with Timer(device) as timer, torch.no_grad(), progress(len(images)) as bar:
            for start in range(0, len(images), args.batch_size):
                # one inversion per image: GradStyle / HyperStyle keep its residuals / offsets for the edits
                w_plus, render = model.prepare_edits(images[start: start + args.batch_size].to(device))
                edited = edits(w_plus.cpu())  # [S, B, n, D]
                rows += [render(index, edited[:, index].to(device)).clamp(-1, 1).cpu()
                         for index in range(edited.shape[1])]
                bar.update(edited.shape[1])
    elif args.latents:
        flags = [flag for dest, (flag, _) in INVERSION_OPTIONS.items() if getattr(args, dest, None) is not None]
        if flags:
            raise UsageError(f"{', '.join(flags)} apply to inverting --images (with --checkpoint), not to --latents")
        if args.align:
            raise UsageError("--align applies to --images; latents from `invert --align` keep their alignment")
        data = load_latents(args.latents)
        alignment = data.get("alignment") or {}
        if not args.generator:
            raise UsageError("--latents needs --generator (the generator the latents belong to)")
        generator = FrozenGenerator.from_file(args.generator).to(device)
        edits = _latent_edits(args, generator.n_latent, generator.style_dim)
        keys, w_plus = data["keys"], generator.to_w_plus(data["w_plus"].to(device)).cpu()
        with Timer(device) as timer, torch.no_grad():
            edited = edits(w_plus)
            rows = [generator(edited[:, index].to(device)).clamp(-1, 1).cpu() for index in range(len(keys))]
    else:
        raise UsageError("give --latents (with --generator) or --images (with --checkpoint)")
    grid = torch.stack(rows).flatten(0, 1)  # image-major: each row one image, each column one strength
    columns = _edit_columns(args)
    save_image(grid, out / "edit_grid.png", nrow=len(columns))
    for key, strip in zip(keys, rows):
        save_image(strip, out / "strips" / Path(key).with_suffix(".png"), nrow=len(columns))
    pasted = []
    if args.paste_back:
        from .photos.tools import paste_back_edits

        pasted = paste_back_edits(rows, keys, alignment, [f"{value:g}" for value in columns], out / "pasted")
    if args.method == "styleae":
        edit_name = (f"StyleAE {args.styleae}: {args.attribute} "
                     f"{'set to value' if args.value is not None else 'coordinate shifted by'}")
    else:
        edit_name = args.direction or f"{args.ganspace} component {args.component} layers {args.start}-{args.end}"
    print(format_table([["images", len(keys)], ["edit", edit_name], ["strengths" if args.method != "styleae"
                                                                      else "values", columns],
                        [f"seconds per edited image ({'inversion and ' if args.images else ''}warm-up included)",
                         round(timer.seconds / max(1, grid.shape[0]), 4)],
                        ["grid", f"{out / 'edit_grid.png'} (rows: images, columns: strengths)"],
                        *([["pasted back", f"{len(pasted)} photos in {out / 'pasted'}"]] if pasted else [])],
                       ["edit", "value"]))
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
    print(f"weights folder: {weights_dir().resolve()} and its sub-folders (set ${ENV_VAR} to change it)\n")
    print(format_table([[key, file, "yes" if found != "missing" else "MISSING", purpose]
                        for key, file, found, purpose, _ in rows], ["key", "file", "present", "used for"],
                       max_width=120))
    print()
    print(format_table([[key, found if found != "missing" else "-", source] for key, _, found, _, source in rows],
                       ["key", "found at", "where to get it"], max_width=120))
    return 0


# ------------------------------------------------------------------------------------------------ codec, styleae
# The codec, photo and StyleAE tools live in stylegan_lightning.{codec,photos,styleae}.tools; those
# packages import CompressAI and Lightning, so they are imported only when one of their subcommands is parsed or run
# (build_parser adds the requested tool's options only).
def _package_tool(package: str, name: str, help: str) -> None:
    """Register ``name``: options from ``stylegan_lightning.<package>.arguments`` (``<name>_arguments``), logic
    from ``stylegan_lightning.<package>.tools`` (``run_<name>``), with dashes in ``name`` as underscores."""
    import importlib

    function = name.replace("-", "_")

    def add_arguments(parser: argparse.ArgumentParser) -> None:  # the light options module: --help stays fast
        arguments = importlib.import_module(f"stylegan_lightning.{package}.arguments")
        getattr(arguments, f"{function}_arguments")(parser)

    def run(args: argparse.Namespace) -> int:
        tools = importlib.import_module(f"stylegan_lightning.{package}.tools")
        return getattr(tools, f"run_{function}")(args)

    tool(name, help, add_arguments)(run)


_package_tool("codec", "compress", "compress face images into scalable codec streams (.sglc; bytes and bpp per layer)")
_package_tool("codec", "decompress", "decode codec streams (.sglc) into PNG images from layers 1..k")
_package_tool("codec", "evaluate", "rate, distortion and timings of every codec layer on a set of images (and "
                                  "classical baselines)")
_package_tool("web", "serve", "the web demo on this machine: invert, edit and compress your own photo in the "
                           "browser (127.0.0.1, offline)")
_package_tool("photos", "align", "detect and FFHQ-align the faces of ordinary photos (aligned PNG + JSON to paste "
                                "an edit back)")
_package_tool("styleae", "label-latents", "write (w, attribute) pairs for StyleAE training: sampled codes labelled "
                                          "by a classifier, or inverted images joined with their dataset labels")
_package_tool("styleae", "compare-edits", "StyleAE vs InterFaceGAN at equal attribute change: success rate, "
                                          "other-attribute change, identity similarity")


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
    "stylegan_lightning.stylegan2.module",
    "stylegan_lightning.stylegan2.prior",
    "stylegan_lightning.codec.module",
    "stylegan_lightning.gradstyle",
    "stylegan_lightning.hyperstyle",
    "stylegan_lightning.styleae.module",
)
CONFIG_SECTIONS = ("model", "data", "trainer", "seed_everything", "ckpt_path", "optimizer", "lr_scheduler")


def run_lightning(argv: list[str] | None) -> int:
    """``LightningCLI`` for ``fit`` / ``validate`` / ``test`` / ``predict`` (argv starts with the subcommand;
    ``None`` = the process's own command line)."""
    import importlib
    import warnings

    _check_lightning_configs(list(sys.argv[1:] if argv is None else argv))

    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    class ToolkitCLI(LightningCLI):
        """``LightningCLI`` in which ``--ckpt_path`` is read safely and its saved hyperparameters are the starting
        point that the config file and the command line override (Lightning applies the checkpoint's over them,
        so e.g. a weight file that moved could not be pointed to again). The checkpoint must be a local file, is
        read as plain data only (also by the trainer, whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says), and may
        name only the toolkit's classes or the one the user's config gives."""

        def parse_arguments(self, parser, args) -> None:
            self._given_args = args
            super().parse_arguments(parser, args)

        def _parse_ckpt_path(self) -> None:  # replaces Lightning's, which also unpickles URLs
            subcommand = self.config.get("subcommand")
            if not subcommand:
                return
            if self.config[subcommand].get("weights_only") is False:
                raise UsageError("--weights_only false is not supported: checkpoints are read as plain data only, "
                                 "so nothing in them can run")
            path = local_checkpoint_path(self.config[subcommand].get("ckpt_path"))
            if path is None or path == model_given_by:
                return
            model = self.config[subcommand].get("model")
            hparams = checkpoint_configs(path, getattr(model, "class_path", None)).get("model")
            if hparams:
                if "class_path" in hparams:  # as Lightning: extra saved values are passed through
                    hparams = {"class_path": hparams["class_path"], "dict_kwargs": hparams["init_args"]}
                self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)
                self.config = self.parser.parse_args(self._given_args, namespace=self.config)

        def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
            kwargs = super()._prepare_subcommand_kwargs(subcommand)
            if "weights_only" in self._subcommand_method_arguments[subcommand]:
                kwargs["weights_only"] = True  # checked in _parse_ckpt_path: never False
            return kwargs

        def after_fit(self) -> None:
            save_final_checkpoint(self.trainer)

    # frozen networks stay in eval mode on purpose; the pytree deprecation is Lightning's own
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    for module in LIGHTNING_REGISTRY:
        importlib.import_module(module)
    extended, model_given_by = _with_checkpoint_model(list(sys.argv[1:] if argv is None else argv))
    if model_given_by is not None:
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")  # argv extended on purpose
        argv = extended
    ToolkitCLI(
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


LIGHTNING_CKPT_KEYWORDS = ("last", "best", "hpc")  # resolved by Lightning to files it wrote itself


def local_checkpoint_path(ckpt_path: str | None) -> Path | None:
    """``--ckpt_path`` as an existing local file, or ``None`` when absent or one of Lightning's keywords
    (``last``, ``best``, ``hpc``). A URL (``http://``, ``s3://`` ...), a missing path or a folder is a
    :class:`UsageError`: remote checkpoints are never loaded (Lightning would unpickle them)."""
    if ckpt_path is None or str(ckpt_path) in LIGHTNING_CKPT_KEYWORDS or str(ckpt_path).startswith("registry"):
        return None
    text = str(ckpt_path)
    if "://" in text:
        raise UsageError(f"--ckpt_path '{text}' is not a local file: remote checkpoints are not loaded (download "
                         "it and give its path)")
    path = Path(text).expanduser()
    if not path.is_file():
        raise UsageError(f"--ckpt_path '{text}' {'is a directory' if path.is_dir() else 'does not exist'}")
    return path


def _foreign_class_paths(value: Any, allowed: set[str]) -> list[str]:
    """Every ``class_path`` / ``_class_path`` in the nested ``value`` that is neither a toolkit class, nor a short
    name (resolved among the registered subclasses only), nor in ``allowed``."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("class_path", "_class_path") and isinstance(item, str):
                if "." in item and not (item.startswith("stylegan_lightning.") or item in allowed):
                    found.append(item)
            else:
                found += _foreign_class_paths(item, allowed)
    elif isinstance(value, (list, tuple)):
        for item in value:
            found += _foreign_class_paths(item, allowed)
    return found


CHECKPOINT_SECTIONS = {"model": "hyper_parameters", "data": "datamodule_hyper_parameters"}


class ForeignClassError(CheckpointError):
    """A checkpoint's hyperparameters name a class that is neither the toolkit's nor the user's config's."""


def checkpoint_configs(path: Path, user_class_path: str | None = None) -> dict[str, dict[str, Any]]:
    """The saved hyperparameters of the Lightning checkpoint ``path`` as ``model:`` / ``data:`` config entries
    (``{"class_path", "init_args"}``, or plain values for a module saved without its class), read as plain data.
    The classes they name must be the toolkit's own or ``user_class_path`` (what the user's config gives): a
    checkpoint cannot make the command import anything else."""
    from .serialization import safe_torch_load

    data = safe_torch_load(path, "--ckpt_path checkpoint")
    if not isinstance(data, dict):
        raise CheckpointError(f"--ckpt_path '{path}' is not a Lightning checkpoint (its top level is a "
                              f"{type(data).__name__})")
    entries = {}
    for section, key in CHECKPOINT_SECTIONS.items():
        hparams = data.get(key, {})
        if not isinstance(hparams, dict):
            raise CheckpointError(f"--ckpt_path '{path}': its {key} are a {type(hparams).__name__}, not a mapping")
        hparams = {k: v for k, v in hparams.items() if k != "_instantiator"}
        foreign = _foreign_class_paths(hparams, {user_class_path} if user_class_path else set())
        if foreign:
            raise ForeignClassError(f"--ckpt_path '{path}' names {foreign[0]!r}, which is not a stylegan_lightning "
                                  "class (only the toolkit's classes, or the one your config gives, are loaded)")
        if "_class_path" in hparams:
            class_path = hparams.pop("_class_path")
            hparams = {"class_path": class_path, "init_args": hparams}
        if hparams:
            entries[section] = hparams
    return entries


def _with_checkpoint_model(argv: list[str]) -> tuple[list[str], Path | None]:
    """With ``--ckpt_path FILE`` on the command line, ``argv`` with the checkpoint's model and data module (classes
    and saved hyperparameters) given first, so ``validate --ckpt_path X`` needs nothing else; the user's
    ``--config``, ``--model.*`` and ``--data.*`` come after them and win. Returns the new argv and the checkpoint
    used (``None`` when nothing was added, e.g. a checkpoint naming a class only the user's config can allow)."""
    import json

    value = None
    for index, item in enumerate(argv):
        if item == "--ckpt_path" and index + 1 < len(argv):
            value = argv[index + 1]
        elif item.startswith("--ckpt_path="):
            value = item.split("=", 1)[1]
    path = local_checkpoint_path(value)
    if path is None:
        return argv, None
    try:
        entries = checkpoint_configs(path)
    except ForeignClassError:
        return argv, None  # _parse_ckpt_path decides, knowing the user's config
    given = [f"--{section}={json.dumps(entry)}" for section, entry in entries.items() if "class_path" in entry]
    if not any(item.startswith("--model=") for item in given):
        return argv, None
    return [argv[0], *given, *argv[1:]], path


def save_final_checkpoint(trainer) -> Path | None:
    """After ``fit``: a checkpoint of the last step in the checkpoint folder when the checkpoint callback did not
    write one there (e.g. ``--trainer.max_steps`` ended the run between two validations), so every fit can be
    resumed, validated or tested from where it stopped. Nothing for ``fast_dev_run`` or without checkpointing."""
    callback = trainer.checkpoint_callback
    if callback is None or trainer.fast_dev_run or callback.dirpath is None:
        return None
    if getattr(callback, "_last_global_step_saved", None) == trainer.global_step:
        return None
    path = Path(callback.dirpath) / f"last-step={trainer.global_step}.ckpt"
    trainer.save_checkpoint(path, weights_only=False)
    if trainer.is_global_zero:
        print(f"stylegan-lightning fit: wrote {path} (the last step)")
    return path


# ------------------------------------------------------------------------------------------------ driver
class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after an option's help, unless its help already says what the default is or there
    is none to show (``None``, or an off flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class ToolParser(argparse.ArgumentParser):
    """argparse with the defaults shown in ``--help`` and every error as one line (exit status 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command's parser; with ``command``, only that tool's options are added (all tools are listed)."""
    parser = ToolParser(prog="stylegan-lightning", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"stylegan-lightning {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ToolParser)
    for name, help_text in LIGHTNING_COMMANDS.items():
        subparsers.add_parser(name, help=help_text, add_help=False)
    for entry in TOOLS.values():
        sub = subparsers.add_parser(entry.name, help=entry.help, description=entry.help)
        sub.add_argument("--config", default=None, help="YAML file of option values (command line overrides)")
        if command is None or command == entry.name:
            entry.add_arguments(sub)
        sub.set_defaults(_tool=entry, _parser=sub)
    return parser


def read_config_file(path: str) -> Any:
    """The YAML content of the config file ``path``; a :class:`UsageError` (one line) when it is missing, a
    folder, not text or not valid YAML."""
    config = Path(path).expanduser()
    if not config.is_file():
        raise UsageError(f"config file '{path}' {'is a directory' if config.is_dir() else 'does not exist'}")
    try:
        return yaml.safe_load(config.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"config file '{path}' is not a text (YAML) file") from None
    except yaml.YAMLError as error:
        raise UsageError(f"config file '{path}' is not valid YAML: {' '.join(str(error).split())}") from None


def _check_lightning_configs(argv: list[str]) -> None:
    """Every ``--config`` / ``-c`` file of a Lightning subcommand is read by :func:`read_config_file` first, so a
    folder or a binary file is one line rather than Lightning's usage text."""
    for index, item in enumerate(argv):
        if item in ("--config", "-c") and index + 1 < len(argv):
            read_config_file(argv[index + 1])
        elif item.startswith("--config="):
            read_config_file(item.split("=", 1)[1])


def _apply_config(sub: argparse.ArgumentParser, path: str) -> None:
    values = read_config_file(path) or {}
    if not isinstance(values, dict):
        raise UsageError(f"config file '{path}' must hold a mapping of option: value")
    if isinstance(values.get(sub.prog.split()[-1]), dict):  # a section named after the tool
        values = values[sub.prog.split()[-1]]
    elif any(section in values for section in CONFIG_SECTIONS):
        values = {k: v for k, v in values.items() if k not in CONFIG_SECTIONS}
    actions = {action.dest: action for action in sub._actions}
    values = {str(key).replace("-", "_"): value for key, value in values.items()}
    unknown = sorted(set(values) - set(actions) - {"config"})
    if unknown:
        raise UsageError(f"config file '{path}': unknown option(s) {unknown}; known: {sorted(set(actions) - {'help'})}")
    sub.set_defaults(**{dest: _config_value(actions[dest], value, path) for dest, value in values.items()
                        if dest != "config"})


def _config_value(action: argparse.Action, value: Any, path: str) -> Any:
    """A config file's ``value`` for ``action``, checked and converted exactly as the same flag on the command line
    would be (its type, its choices, one value or a list)."""
    where = f"config file '{path}': {action.dest}"

    def one(item: Any) -> Any:
        if isinstance(item, (dict, list)) or (isinstance(item, bool) and action.type is not None):
            raise UsageError(f"{where}: expected a single {getattr(action.type, '__name__', 'value')}, got {item!r}")
        if action.type is not None and item is not None:
            try:
                item = action.type(str(item))
            except (argparse.ArgumentTypeError, TypeError, ValueError) as error:
                raise UsageError(f"{where}: {error or f'invalid value {item!r}'}") from None
        if action.choices is not None and item not in action.choices:
            raise UsageError(f"{where}: {item!r} is not one of {list(action.choices)}")
        return item

    if action.nargs == 0:  # store_true / store_false
        if not isinstance(value, bool):
            raise UsageError(f"{where}: expected true or false, got {value!r}")
        return value
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        if action.nargs == "+" and not items:
            raise UsageError(f"{where}: expected at least one value")
        return [one(item) for item in items]
    if isinstance(action, argparse._AppendAction):
        return None if value is None else [one(item) for item in (value if isinstance(value, list) else [value])]
    return one(value)


def parse_tool_arguments(argv: list[str]) -> argparse.Namespace:
    """A tool's options from ``argv`` (``[tool, ...]``): its ``--config`` YAML file's values, then the command line
    over them. Raises :class:`UsageError` for a bad or unknown config entry (argparse exits with status 2 for a bad
    flag); ``command`` is ``None`` in the result when ``argv`` names no tool."""
    parser = build_parser(argv[0] if argv else None)
    args = _parse(parser, argv)
    if args.command is not None and args.config:
        _apply_config(args._parser, args.config)
        args = _parse(parser, argv)
    return args


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``parser.parse_args`` with an unknown option reported by the tool's own parser (its name in the line)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        (getattr(args, "_parser", None) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _user_error(error: BaseException) -> Exception | None:
    """The user-input error (bad file, bad configuration) that caused ``error``, if any: LightningCLI and
    jsonargparse wrap the errors of the classes they build."""
    user_errors: tuple[type, ...] = (CheckpointError, UsageError, pickle.UnpicklingError)  # the last: a refused
    # --ckpt_path (Lightning loads it with torch.load(weights_only=True))
    for module, name in (("stylegan_lightning.data.errors", "DatasetError"),
                         ("stylegan_lightning.codec.bitstream", "BitstreamError"),
                         ("lightning.fabric.utilities.exceptions", "MisconfigurationException")):  # Lightning's
        # word for a trainer configuration that contradicts itself (e.g. progress bar off, a bar callback given)
        if module in sys.modules:  # an error of a module never imported cannot have been raised
            user_errors += (getattr(sys.modules[module], name),)
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, user_errors):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit status."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    try:
        if command in LIGHTNING_COMMANDS:
            return run_lightning(None if from_command_line else argv)
        try:
            args = parse_tool_arguments(argv)
        except SystemExit as exit:  # argparse: --help, --version (0) or a bad flag (2, its message printed)
            return int(exit.code or 0)
        if args.command is None:
            build_parser().print_help()
            return 2
        return int(args._tool.run(args) or 0)
    except Exception as error:  # noqa: BLE001 - only user-input errors are turned into one line
        cause = _user_error(error)
        if cause is None:
            raise
        print(f"stylegan-lightning {command}: error: {cause}", file=sys.stderr)
        return 2


def run(argv: list[str] | None = None) -> Any:
    """Console-script entry point. Output cut short by the reader (``stylegan-lightning weights | head -1``) ends
    quietly."""
    import os

    try:
        status = main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        status = 0
    raise SystemExit(status)
