"""What the web demo's buttons do, as plain functions over :class:`~.models.DemoModels` (no web code).

- :func:`align_photo`: a photo file -> its largest face, aligned to the models' crop.
- :func:`invert_face` / :func:`render_edit` / :func:`write_latents`: inversion with PSNR and identity, edits from
  the sliders pasted back into the photo, the latents file.
- :func:`compress_face` / :func:`decode_stream`: the codec's stream of a face with the image each layer prefix
  decodes to, its bytes and bits per pixel, and WebP / JPEG at the closest file size; decoding an uploaded stream.

User mistakes (a photo without a face, an unreadable file, a stream of another model) raise
:class:`~stylegan_lightning.errors.UsageError` with a one-line message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from PIL import Image

from ..errors import UsageError
from .models import FAMILIES, DemoModels

PASTE_FEATHER = 0.1  # share of the face side over which a pasted face fades into the photo


def _pil(image: torch.Tensor) -> Image.Image:
    from ..utils import tensor_to_pil

    return tensor_to_pil(image.clamp(-1, 1).cpu())


# ------------------------------------------------------------------------------------------------ photos
@dataclass
class AlignedPhoto:
    """A photo and its largest face: ``face`` (:class:`~stylegan_lightning.photos.AlignedFace`, where it was)
    and ``image`` [1, 3, S, S] in [-1, 1] (the aligned face at the models' size)."""

    name: str
    photo: Image.Image
    face: Any
    image: torch.Tensor


def align_photo(path: str | Path, models: DemoModels, size: int) -> AlignedPhoto:
    """The largest face of the photo file ``path``, aligned at ``size`` px with the models' framing. An unreadable
    file or a photo without a face is a :class:`UsageError`."""
    from ..data.errors import BadImageError
    from ..data.imaging import image_to_tensor
    from ..photos.alignment import NoFaceError, align_faces, load_photo

    path = Path(path)
    try:
        photo = load_photo(path, name=path.name)
    except BadImageError as error:
        raise UsageError(f"cannot read the photo: {error}") from None
    try:
        face = align_faces(photo, size, all_faces=False, landmarker=models.landmarker, source=path.name,
                           framing=models.settings.framing)[0]
    except NoFaceError:
        raise UsageError(f"no face found in '{path.name}': upload a photo where a face is clearly visible "
                         "(frontal, not too small)") from None
    return AlignedPhoto(path.name, photo, face, image_to_tensor(face.image)[None])


# ------------------------------------------------------------------------------------------------ invert & edit
@dataclass
class Inversion:
    """An inverted face: its W+ code [1, n, D] (CPU), ``render(codes [S, n, D]) -> images`` (GradStyle and
    HyperStyle keep per-image state for it), the reconstruction [3, S, S] and how close it is."""

    method: str
    kind: str
    checkpoint: str
    generator_config: dict[str, Any]
    aligned: AlignedPhoto
    w_plus: torch.Tensor
    render: Callable[[torch.Tensor], torch.Tensor]
    reconstruction: torch.Tensor
    psnr: float
    identity: float | None
    seconds: float


@torch.no_grad()
def invert_face(aligned: AlignedPhoto, method: str, models: DemoModels) -> Inversion:
    """Invert the aligned face with ``method`` (a label of :attr:`DemoModels.methods`)."""
    from ..metrics.fidelity import psnr

    model = models.inversion_model(method)
    device = models.device
    start = time.perf_counter()
    target = aligned.image.to(device)
    w_plus, render = model.prepare_edits(target)
    reconstruction = render(0, w_plus[:1]).clamp(-1, 1)
    seconds = time.perf_counter() - start
    if target.shape[-2:] != reconstruction.shape[-2:]:  # a model whose generator has another size
        from ..utils.images import resize_images

        target = resize_images(target, tuple(reconstruction.shape[-2:]))
    identity = None
    if models.identity is not None:
        embeddings = models.identity(torch.cat([target, reconstruction]))
        identity = float(models.identity.similarity(embeddings[:1], embeddings[1:]))
    info = models.methods[method]
    return Inversion(method, info.kind, info.checkpoint, dict(model.decoder.generator.config), aligned, w_plus.cpu(),
                     lambda codes: render(0, codes.to(device)), reconstruction[0].cpu(),
                     float(psnr(reconstruction, target)), identity, seconds)


def edited_codes(w_plus: torch.Tensor, choices: Mapping[str, tuple[str | None, float]],
                 models: DemoModels) -> torch.Tensor:
    """``w_plus`` with each slider's edit applied in :data:`~.models.FAMILIES` order; ``choices``: family ->
    (edit label, strength); a missing label or strength 0 leaves the codes as they are."""
    edits = models.edits
    if any(strength for label, strength in choices.values() if label) and \
            w_plus.shape[-1] != models.generator.style_dim:
        raise UsageError(f"the edit sliders work on {models.generator.style_dim}-d codes (the first method's "
                         f"generator); this inversion's codes are {w_plus.shape[-1]}-d")
    for family in FAMILIES:
        label, strength = choices.get(family, (None, 0.0))
        if not label or not strength:
            continue
        if label not in edits[family]:
            raise UsageError(f"unknown {family} edit {label!r}; choose one of {', '.join(edits[family]) or 'none'}")
        w_plus = edits[family][label].apply(w_plus, float(strength))
    return w_plus


@dataclass
class EditResult:
    """The edited face (aligned, the models' size), the photo with it pasted back, and the render time."""

    face: Image.Image
    pasted: Image.Image
    seconds: float


@torch.no_grad()
def render_edit(inversion: Inversion, choices: Mapping[str, tuple[str | None, float]],
                models: DemoModels) -> EditResult:
    """The inverted face with the sliders' edits (:func:`edited_codes`), pasted back into its photo."""
    from ..photos.alignment import AlignedFace, paste_back

    start = time.perf_counter()
    codes = edited_codes(inversion.w_plus, choices, models)
    face = _pil(inversion.render(codes)[0])
    placed = AlignedFace.from_metadata(face, inversion.aligned.face.metadata())
    pasted = paste_back(inversion.aligned.photo, placed, feather=PASTE_FEATHER)
    return EditResult(face, pasted, time.perf_counter() - start)


def write_latents(inversion: Inversion, path: Path, codes: torch.Tensor | None = None) -> Path:
    """The latents file of ``inversion`` (``codes``: the edited ones, default the inverted code), as ``invert``
    writes it (:func:`~stylegan_lightning.inversion.save_latents`), with the face's alignment."""
    from ..inversion import save_latents

    key = f"{Path(inversion.aligned.name).stem}_face0"
    return save_latents(path, [key], inversion.w_plus if codes is None else codes, inversion.kind,
                        inversion.checkpoint, inversion.generator_config,
                        alignment={key: inversion.aligned.face.metadata()})


# ------------------------------------------------------------------------------------------------ compress
@dataclass
class LayerImage:
    """The image decoded from layers 1..``layers`` of a stream and what those layers cost."""

    layers: int
    image: Image.Image
    num_bytes: int
    bpp: float


@dataclass
class ClassicalImage:
    """A classical codec's file of the same face at the quality whose size is closest to the stream's."""

    codec: str
    quality: int
    image: Image.Image
    num_bytes: int
    bpp: float


@dataclass
class Compression:
    """A coded face: the stream's bytes (the ``.sglc`` file), each layer prefix decoded, and the baselines."""

    data: bytes
    height: int
    width: int
    layers: list[LayerImage]
    classical: list[ClassicalImage]
    seconds: float


def closest_classical(image: Image.Image, codec: str, target_bytes: int) -> tuple[int, bytes]:
    """``(quality, file bytes)`` of ``codec`` (``"webp"``, ``"jpeg"``) at the quality whose file size is
    closest to ``target_bytes`` (the smaller quality on a tie)."""
    from ..codec.classical import QUALITY_RANGE, encode_classical

    low, high = QUALITY_RANGE[codec]
    best: tuple[int, int, bytes] | None = None
    for quality in range(low, high + 1):
        data = encode_classical(image, codec, quality)
        distance = abs(len(data) - target_bytes)
        if best is None or distance < best[0]:
            best = (distance, quality, data)
        if len(data) > target_bytes and distance > best[0]:
            break  # sizes grow with quality: past the target nothing gets closer
    assert best is not None
    return best[1], best[2]


def _decoded_layers(stream, models: DemoModels) -> list[LayerImage]:
    from ..codec.coding import decompress_stream

    sizes = stream.sizes()
    return [LayerImage(k, _pil(decompress_stream(models.codec, stream, k)[0]), sizes[k - 1],
                       stream.bits_per_pixel(sizes[k - 1])) for k in range(1, stream.n_layers + 1)]


@torch.no_grad()
def compress_face(aligned: AlignedPhoto, models: DemoModels, baselines: tuple[str, ...] = ("webp", "jpeg")
                  ) -> Compression:
    """Code the aligned face with every layer of the codec, decode each layer prefix, and code the same face with
    each of ``baselines`` at the closest file size to the whole stream."""
    from ..codec.classical import available_classical_codecs, decode_classical
    from ..codec.coding import compress_images

    codec = models.codec
    start = time.perf_counter()
    stream = compress_images(codec, aligned.image.to(models.device))[0]
    data = stream.to_bytes()
    layers = _decoded_layers(stream, models)
    seconds = time.perf_counter() - start
    face = _pil(aligned.image[0])
    classical = []
    for name in (b for b in baselines if b in available_classical_codecs()):
        quality, file = closest_classical(face, name, len(data))
        classical.append(ClassicalImage(name, quality, decode_classical(file, name), len(file),
                                        stream.bits_per_pixel(len(file))))
    return Compression(data, stream.height, stream.width, layers, classical, seconds)


@torch.no_grad()
def decode_stream(data: bytes, models: DemoModels, name: str = "stream") -> list[LayerImage]:
    """Each layer prefix of the uploaded stream ``data`` decoded; a damaged file or a stream written by another
    model is a :class:`UsageError` naming ``name``."""
    from ..codec.bitstream import BitstreamError, CodecStream
    from ..codec.coding import check_stream

    try:
        stream = CodecStream.from_bytes(data)
        check_stream(models.codec, stream)
    except BitstreamError as error:
        raise UsageError(f"cannot decode '{name}': {error}") from None
    return _decoded_layers(stream, models)


__all__ = ["AlignedPhoto", "ClassicalImage", "Compression", "EditResult", "Inversion", "LayerImage", "align_photo",
           "closest_classical", "compress_face", "decode_stream", "edited_codes", "invert_face", "render_edit",
           "write_latents"]
