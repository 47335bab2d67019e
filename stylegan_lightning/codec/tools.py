"""The codec's command-line tools: ``compress``, ``decompress`` and ``evaluate`` (registered in
:mod:`stylegan_lightning.cli`; every option can also come from a ``--config`` YAML file).

- ``compress``: images -> one ``.sglc`` stream per image (:mod:`.bitstream`), with a table of the bytes and bits per
  pixel of the 1, 1-2, 1-3 layer prefixes of every stream.
- ``decompress``: streams -> PNG images decoded from layers 1..k.
- ``evaluate``: rate and distortion of every layer prefix on a set of images (real bitstreams: bpp from file sizes
  and from the entropy model, fidelity and machine-task metrics, timings), optionally against classical codecs
  at their lowest rate, with a picture grid and a CSV file.

Bits per pixel always count the pixels of the image as coded (the height x width stored in the stream), not those
of the original file.
"""

from __future__ import annotations

import argparse
import csv
import json
import warnings
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

import torch

from ..errors import UsageError
from ..data.errors import DatasetError
from ..options import output_file, output_folder
from ..utils import Timer, format_table, progress, save_image, select_device
from ..utils.bounds import check_size
from .bitstream import MAX_OUTPUT_SCALE, SUFFIX, BitstreamError, CodecStream, read_stream, write_stream
from .checkpoints import load_codec
from .coding import check_stream, code_batch, compress_images, decompress_stream, update_layer_metrics
from .layers import layer_name
from .model import ScalableFaceCodec

GRID_ROWS = 8
# Column order of the evaluate table (metrics a collection does not hold are left out).
METRIC_COLUMNS = ("bpp", "bpp_likelihood", "psnr", "ssim", "ms_ssim", "l2", "lpips", "dists", "id_similarity",
                  "id_accuracy", "parsing_miou", "parsing_accuracy", "attribute_accuracy", "landmark_nme")
METRIC_HEADERS = {"bpp": "bpp (file)", "bpp_likelihood": "bpp (likelihood)"}
# Metric of each pretrained network (build_metric_networks name -> codec_metrics key).
NETWORK_METRICS = {"landmarks": "landmark_nme", "parser": "parsing_miou", "identity": "id_similarity",
                   "lpips": "lpips", "dists": "dists"}


# ------------------------------------------------------------------------------------------------ shared helpers
def layer_span(layers: int) -> str:
    """``"1"``, ``"1-2"``, ``"1-3"``: the layers a receiver of a ``layers``-layer stream holds."""
    return "1" if layers == 1 else f"1-{layers}"


def layers_text(layers: int) -> str:
    """``"layer 1"``, ``"layers 1-2"``, ``"layers 1-3"``."""
    return f"layer{'s' if layers > 1 else ''} {layer_span(layers)}"


def layer_label(layers: int) -> str:
    """Row label of the image decoded from layers 1..``layers``, e.g. ``"middle (layers 1-2)"``."""
    return f"{layer_name(layers)} ({layers_text(layers)})"


def _device(name: str) -> torch.device:
    try:
        return select_device(name)
    except RuntimeError as error:
        raise UsageError(str(error)) from None


def _load_codec(path: str | None, device: torch.device) -> ScalableFaceCodec:
    if not path:
        raise UsageError("--codec is required (a codec file or a CodecModule checkpoint)")
    return load_codec(path, map_location=device)


def _check_layer_count(layers: int | None, codec: ScalableFaceCodec) -> int | None:
    if layers is not None and not 1 <= int(layers) <= codec.n_layers:
        raise UsageError(f"--layers must be in 1..{codec.n_layers} (the codec has {codec.n_layers} layers), "
                         f"got {layers}")
    return None if layers is None else int(layers)


def _resolution(value: Any, codec: ScalableFaceCodec) -> int:
    """``--resolution``: the generator's when not given, else a positive integer of at most ``MAX_OUTPUT_SCALE``
    times it (the largest image a stream may describe)."""
    size = codec.generator.size
    if value is None:
        return size
    return check_size(value, "--resolution", MAX_OUTPUT_SCALE * size, UsageError)


def _as_list(value: Any) -> list[str]:
    """A list option from the command line or a YAML file (one string or a list of them)."""
    if value is None:
        return []
    return [str(item) for item in ([value] if isinstance(value, (str, Path)) else value)]


def _names(value: Any) -> list[str]:
    """Comma-separated names (``"a,b"`` and ``[a, b]`` both give ``["a", "b"]``)."""
    return [part.strip() for item in _as_list(value) for part in item.split(",") if part.strip()]


def _relative_output(key: str, suffix: str) -> Path:
    """An image or stream key (a relative path) as a relative output path with ``suffix``; refuses keys that
    would leave the output folder."""
    parts = PurePosixPath(key.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or ".." in parts:
        raise UsageError(f"cannot write an output for '{key}': it is not a relative path inside the input")
    return Path(*parts[:-1], Path(parts[-1]).stem + suffix)


def _check_unique(outputs: Sequence[Path], sources: Sequence[str]) -> None:
    seen: dict[Path, str] = {}
    for output, source in zip(outputs, sources):
        if output in seen:
            raise UsageError(f"'{seen[output]}' and '{source}' would both be written to '{output}'; "
                             f"give them separately with different --out folders")
        seen[output] = source


def open_images(path: str | Path, resolution: int, masks: str | None = None, align: dict[str, Any] | None = None):
    """``(keys, read)`` for an image file, a folder (recursive) or a zip archive, as
    :func:`~stylegan_lightning.inversion.read_images` reads them (centre crop, ``resolution`` x ``resolution``,
    [-1, 1]); ``read(indices)`` -> (images [n, 3, R, R], parsing masks [n, R, R] or ``None``) decodes only those
    images, so a large folder is never held in memory at once. ``masks``: a folder of masks for the images.
    ``align``: photos instead of aligned faces (:func:`~stylegan_lightning.photos.tools.aligned_inputs` arguments
    ``all_faces``, ``detector``); the keys are then ``<photo>_face<i>`` and ``read.alignment`` maps each key to
    where its face was."""
    from ..data import FaceImageDataset
    from ..inversion import read_images

    source = Path(path).expanduser()
    if align is not None:
        if masks:
            raise UsageError("--masks and --align do not go together (the masks belong to aligned images)")
        from ..photos.tools import aligned_inputs

        keys, images, alignment = aligned_inputs(str(source), resolution, **align)

        def read_aligned(indices: Iterable[int]) -> tuple[torch.Tensor, None]:
            return images[list(indices)], None

        read_aligned.alignment = alignment
        return keys, read_aligned
    try:
        if source.is_file() and source.suffix.lower() != ".zip":
            if masks:
                raise UsageError("--masks needs the images to be a folder or a .zip archive")
            keys, images = read_images(source, resolution)
            return keys, lambda indices: (images[list(indices)], None)
        dataset = FaceImageDataset(str(source), resolution=resolution, masks=masks)
    except DatasetError as error:  # missing folder, no images, images without masks: user input
        raise UsageError(str(error)) from None

    def read(indices: Iterable[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        try:
            items = [dataset[i] for i in indices]
        except DatasetError as error:  # a bad image file, named in the message
            raise UsageError(str(error)) from None
        return (torch.stack([item["image"] for item in items]),
                torch.stack([item["mask"] for item in items]) if masks else None)

    return list(dataset.keys), read


# ------------------------------------------------------------------------------------------------ compress
def run_compress(args: argparse.Namespace) -> int:
    """``compress``: write one stream per input image and print the bytes and bpp of its layer prefixes."""
    inputs = _as_list(args.inputs)
    if not inputs:
        raise UsageError("give at least one INPUT (an image file, a folder or a .zip archive)")
    device = _device(args.device)
    codec = _load_codec(args.codec, device)
    layers = _check_layer_count(args.layers, codec) or codec.n_layers
    resolution = _resolution(args.resolution, codec)
    align = {"all_faces": args.all_faces, "detector": args.detector, "framing": args.framing} if args.align else None
    if args.all_faces and not args.align:
        raise UsageError("--all-faces applies with --align")
    sources = [open_images(source, resolution, align=align) for source in inputs]
    keys = [key for source_keys, _ in sources for key in source_keys]
    out = output_folder(args.out)
    targets = [out / _relative_output(key, SUFFIX) for key in keys]
    _check_unique(targets, keys)
    for _, read in sources:  # where each face was in its photo, for `decompress --paste-back`
        for key, metadata in getattr(read, "alignment", {}).items():
            path = (out / _relative_output(key, ".json"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(metadata, indent=1))

    streams: list[CodecStream] = []
    seconds = 0.0
    with progress(len(keys)) as bar:
        for source_keys, read in sources:
            for start in range(0, len(source_keys), args.batch_size):
                images, _ = read(range(start, min(start + args.batch_size, len(source_keys))))
                with Timer(device) as timer:
                    coded = compress_images(codec, images.to(device), layers)
                seconds += timer.seconds
                for stream in coded:
                    write_stream(targets[len(streams)], stream)
                    streams.append(stream)
                bar.update(len(coded))

    sizes = [stream.sizes() for stream in streams]
    headers = ["image"]
    for k in range(1, layers + 1):
        headers += [f"bytes {layer_span(k)}", f"bpp {layer_span(k)}"]
    rows = []
    for key, stream, stream_sizes in zip(keys, streams, sizes):
        row: list[Any] = [key]
        for size in stream_sizes:
            row += [size, round(stream.bits_per_pixel(size), 5)]
        rows.append(row)
    mean: list[Any] = [f"mean ({len(keys)} images)"]
    for k in range(layers):
        mean += [round(sum(s[k] for s in sizes) / len(sizes), 1),
                 round(sum(stream.bits_per_pixel(s[k]) for s, stream in zip(sizes, streams)) / len(sizes), 5)]
    rows.append(mean)
    print(format_table(rows, headers))
    height, width = streams[0].height, streams[0].width
    print(f"\n{len(keys)} image(s) coded at {height}x{width} with {layers_text(layers)} of {codec.n_layers} "
          f"({', '.join(layer_name(k) for k in range(1, layers + 1))}); encoding: "
          f"{seconds / len(keys):.4f} s per image on {device} (the first batch's warm-up included); streams written "
          f"under {out}")
    return 0


# ------------------------------------------------------------------------------------------------ decompress
def _stream_files(entries: Iterable[str]) -> list[tuple[Path, Path]]:
    """``(stream file, output path relative to --out without extension)`` for the STREAM arguments."""
    found = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob(f"*{SUFFIX}") if p.is_file())
            if not files:
                raise UsageError(f"no {SUFFIX} streams found in '{path}'")
            found += [(p, _relative_output(p.relative_to(path).as_posix(), "")) for p in files]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        else:
            raise UsageError(f"codec stream '{path}' does not exist")
    return found


def run_decompress(args: argparse.Namespace) -> int:
    """``decompress``: decode streams to PNG images (see :func:`decompress_arguments` for bad streams)."""
    entries = _as_list(args.streams)
    if not entries:
        raise UsageError(f"give at least one STREAM (a {SUFFIX} file or a folder of them)")
    files = _stream_files(entries)
    device = _device(args.device)
    codec = _load_codec(args.codec, device)
    most = _check_layer_count(args.layers, codec)
    out = output_folder(args.out)

    jobs = []
    for path, relative in files:
        try:
            stream = read_stream(path)  # its errors already name the file
            check_stream(codec, stream)
        except BitstreamError as error:
            message = str(error) if str(error).startswith(f"'{path}'") else f"'{path}': {error}"
            raise UsageError(message) from None
        layers = stream.n_layers if most is None else min(most, stream.n_layers)
        outputs = ([(k, out / relative.parent / f"{relative.name}_layer{k}.png") for k in range(1, layers + 1)]
                   if args.all_layers else [(layers, out / relative.parent / f"{relative.name}.png")])
        jobs.append((path, stream, layers, outputs))
    _check_unique([o for *_, outputs in jobs for _, o in outputs],
                  [str(path) for path, _, _, outputs in jobs for _ in outputs])

    placements = _placements(args, [path for path, *_ in jobs]) if args.paste_back else {}
    rows, seconds, decoded = [], 0.0, 0
    with progress(sum(len(outputs) for *_, outputs in jobs)) as bar:
        for path, stream, layers, outputs in jobs:
            for k, target in outputs:
                with Timer(device) as timer:
                    image = decompress_stream(codec, stream, k)
                seconds += timer.seconds
                decoded += 1
                save_image(image[0], target)
                if path in placements:
                    photo, metadata = placements[path]
                    pasted = target.with_name(f"{target.stem}_pasted.png")
                    _paste_into(photo, metadata, image[0], pasted)
                    outputs = [*outputs, (k, pasted)]
                bar.update(1)
            used = stream.sizes()[layers - 1]
            rows.append([str(path), path.stat().st_size, f"{layer_span(layers)} of {stream.n_layers}",
                         f"{stream.height}x{stream.width}", used, round(stream.bits_per_pixel(used), 5),
                         ", ".join(str(o) for _, o in outputs)])
    print(format_table(rows, ["stream", "file bytes", "layers decoded", "size", "bytes used", "bpp", "written"]))
    print(f"\n{len(jobs)} stream(s), {decoded} image(s) decoded: {seconds / decoded:.4f} s per image on {device} "
          "(the first image's warm-up included)")
    return 0


def _placements(args: argparse.Namespace, streams: list[Path]) -> dict[Path, tuple[Any, dict[str, Any]]]:
    """``decompress --paste-back``: for each stream, its photo and the alignment metadata of its face (the ``.json``
    beside it, from ``compress --align``); a missing or unreadable one is a :class:`UsageError` naming it."""
    from ..photos.tools import photo_for_paste_back

    if args.photo and len(streams) != 1:
        raise UsageError("--photo pastes one stream's face; give a single STREAM with it")
    placements = {}
    for stream in streams:
        metadata_file = stream.with_suffix(".json")
        try:
            metadata = json.loads(metadata_file.read_text())
        except (OSError, ValueError) as error:
            raise UsageError(f"--paste-back: '{metadata_file}' (written by `compress --align`) cannot be read "
                             f"({error})") from None
        placements[stream] = (photo_for_paste_back(args.photo or metadata.get("source", "")), metadata)
    return placements


def _paste_into(photo, metadata: dict[str, Any], image: torch.Tensor, target: Path) -> None:
    from ..photos.alignment import AlignedFace, paste_back
    from ..utils import tensor_to_pil

    try:
        face = AlignedFace.from_metadata(tensor_to_pil(image), metadata)
        paste_back(photo, face).save(target)
    except ValueError as error:
        raise UsageError(f"--paste-back: {error}") from None


# ------------------------------------------------------------------------------------------------ evaluate
def _weight_paths(entries: Any) -> dict[str, str]:
    """``--weights KEY=PATH`` entries (or a YAML mapping) -> ``{key: path}``, checked."""
    from ..weights import REGISTRY

    if isinstance(entries, dict):
        pairs = [(str(k), str(v)) for k, v in entries.items()]
    else:
        pairs = []
        for entry in _as_list(entries):
            key, sep, path = entry.partition("=")
            if not sep or not key.strip() or not path.strip():
                raise UsageError(f"--weights expects KEY=PATH, got {entry!r}")
            pairs.append((key.strip(), path.strip()))
    paths = {}
    for key, path in pairs:
        if key not in REGISTRY:
            raise UsageError(f"--weights: unknown key {key!r}; known: {', '.join(sorted(REGISTRY))}")
        if not Path(path).expanduser().is_file():
            raise UsageError(f"--weights {key}: file '{path}' does not exist")
        paths[key] = path
    return paths


def _baseline_names(value: Any) -> list[str]:
    from .classical import CLASSICAL_CODECS

    names = [name.lower() for name in _names(value)]
    unknown = [name for name in names if name not in CLASSICAL_CODECS]
    if unknown:
        raise UsageError(f"--baselines: unknown codec(s) {unknown}; known: {', '.join(CLASSICAL_CODECS)}")
    return list(dict.fromkeys(names))


def _metric_collections(count: int, paths: dict[str, str], options: dict[str, Any], device: torch.device):
    """``count`` codec metric collections sharing one set of pretrained networks, and the metrics left out."""
    from ..metrics import build_metric_networks, codec_metrics

    with warnings.catch_warnings():  # the missing files are reported once, as a note
        warnings.simplefilter("ignore", RuntimeWarning)
        networks = build_metric_networks(tuple(NETWORK_METRICS), paths, **options)
        collections = [codec_metrics("", paths, networks, build=False, **options).to(device) for _ in range(count)]
    missing = [metric for name, metric in NETWORK_METRICS.items() if name not in networks]
    return collections, missing


def _run_baseline(name: str, images: torch.Tensor, masks: torch.Tensor | None, collection) -> tuple[float, float]:
    """Update ``collection`` with classical codec ``name`` at its lowest rate on ``images`` (on the metrics'
    device); returns the (encode, decode) seconds."""
    from .classical import classical_round_trip

    seconds = [0.0, 0.0]
    decoded, sizes = classical_round_trip(images, name, seconds=seconds)
    extra = {} if masks is None else {"target_masks": masks}
    collection.update(preds=decoded, target=images, num_bytes=torch.tensor(sizes),
                      num_pixels=images.shape[-2] * images.shape[-1], **extra)
    return seconds[0], seconds[1]


def _values(collection) -> dict[str, float]:
    return {name: float(value) for name, value in collection.compute().items()}


def run_evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: rate, distortion and timings of every layer prefix (and of classical baselines)."""
    from .classical import LOWEST_QUALITY, available_classical_codecs

    if not args.images:
        raise UsageError("--images is required (an image file, a folder or a .zip archive)")
    baselines = _baseline_names(args.baselines)
    paths = _weight_paths(args.weights)
    inputs = {"--codec": args.codec, "--images": args.images, "--masks": args.masks,
              "--classifier": getattr(args, "classifier", None)}
    if args.grid:
        output_file(args.grid, "--grid", not_same_as=inputs)
    if args.csv:
        output_file(args.csv, "--csv", suffixes=(".csv",), not_same_as={**inputs, "--grid": args.grid})
    device = _device(args.device)
    codec = _load_codec(args.codec, device)
    resolution = _resolution(args.resolution, codec)
    keys, read = open_images(args.images, resolution, args.masks,
                             align={"detector": args.detector, "framing": args.framing} if args.align else None)
    keys = keys[: args.limit]
    options = {"lpips_net": args.lpips_net, "identity_backend": args.id_backend}
    if getattr(args, "classifier", None):
        from ..editing.classifier import load_attribute_classifier

        options["attribute_classifier"] = load_attribute_classifier(args.classifier).to(device)
    available = set(available_classical_codecs()) if baselines else set()
    skipped = [name for name in baselines if name not in available]
    baselines = [name for name in baselines if name in available]
    collections, missing = _metric_collections(codec.n_layers + len(baselines), paths, options, device)
    layer_metrics, baseline_metrics = collections[: codec.n_layers], collections[codec.n_layers:]
    for metrics in baseline_metrics:
        del metrics["bpp_likelihood"]  # no entropy model behind a classical codec

    count = len(keys)
    encode_seconds, decode_seconds = 0.0, [0.0] * codec.n_layers
    baseline_seconds = {name: [0.0, 0.0] for name in baselines}
    tiles, height, width = [], resolution, resolution
    bar = progress(count)
    for start in range(0, count, args.batch_size):
        batch, batch_masks = read(range(start, min(start + args.batch_size, count)))
        batch = batch.to(device)
        batch_masks = None if batch_masks is None else batch_masks.to(device)
        height, width = batch.shape[-2:]
        coded = code_batch(codec, batch)
        encoded, decoded = coded.encode_seconds, coded.decode_seconds
        update_layer_metrics(layer_metrics, coded, batch, batch_masks)
        encode_seconds += encoded
        decode_seconds = [a + b for a, b in zip(decode_seconds, decoded)]
        for name, metrics in zip(baselines, baseline_metrics):
            seconds = _run_baseline(name, batch, batch_masks, metrics)
            baseline_seconds[name] = [a + b for a, b in zip(baseline_seconds[name], seconds)]
        for index in range(max(0, min(len(batch), GRID_ROWS - start))):
            tiles += [batch[index].cpu()] + [layer[index].cpu() for layer in coded.decoded]
        bar.update(len(batch))
    bar.close()

    results = []  # (label, layers, values, encode s/img, decode s/img)
    for layers, metrics in enumerate(layer_metrics, start=1):
        results.append((layer_label(layers), layer_span(layers), _values(metrics), encode_seconds / count,
                        decode_seconds[layers - 1] / count))
    for name, metrics in zip(baselines, baseline_metrics):
        encoded, decoded = baseline_seconds[name]
        results.append((f"{name} (quality {LOWEST_QUALITY[name]})", "", _values(metrics), encoded / count,
                        decoded / count))

    present = {name for _, _, values, _, _ in results for name in values}
    columns = [c for c in METRIC_COLUMNS if c in present] + sorted(present - set(METRIC_COLUMNS))
    headers = ["codec", *(METRIC_HEADERS.get(c, c) for c in columns), "encode s/img", "decode s/img"]
    rows = [[label, *(values[c] if c in values else "-" for c in columns), encode, decode]
            for label, _, values, encode, decode in results]
    print(format_table(rows, headers))
    notes = [f"{count} image(s) from {args.images} coded at {height}x{width} on {device}; bpp (file) = 8 x stream "
             f"bytes / {height * width} pixels; s/img include the first batch's warm-up"]
    if missing:
        notes.append(f"metrics left out, their pretrained files are missing (see `stylegan-lightning weights "
                     f"--missing`): {', '.join(missing)}")
    if args.masks and "parsing_miou" in missing:
        notes.append("--masks unused: parsing_miou needs the face parser's pretrained file")
    for name in skipped:
        notes.append(f"baseline {name} skipped: not available on this install")
    if args.grid:
        save_image(torch.stack(tiles), args.grid, nrow=codec.n_layers + 1)
        columns_text = " | ".join(["input", *(layers_text(k) for k in range(1, codec.n_layers + 1))])
        notes.append(f"grid: {args.grid} (rows: the first {min(count, GRID_ROWS)} images; columns: {columns_text})")
    if args.csv:
        path = Path(args.csv)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["codec", "layers", *columns, "encode_seconds_per_image", "decode_seconds_per_image"])
            for label, span, values, encode, decode in results:
                writer.writerow([label, span, *(repr(values[c]) if c in values else "" for c in columns),
                                 repr(encode), repr(decode)])
        notes.append(f"csv: {path}")
    print("\n" + "\n".join(notes))
    return 0
