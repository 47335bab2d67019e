"""Images <-> codec streams with a :class:`~.model.ScalableFaceCodec` (what the CLI tools and the evaluation
use)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..utils.images import check_images, resize_images
from ..utils.timing import Timer
from .bitstream import BitstreamError, CodecStream
from .model import ScalableFaceCodec


def compress_images(codec: ScalableFaceCodec, images: torch.Tensor, layers: int | None = None,
                    tokens: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[CodecStream]:
    """Images [B, 3, H, W] in [-1, 1] -> one :class:`CodecStream` per image holding layers 1..``layers``
    (default all). The codec must be updated (:meth:`ScalableFaceCodec.update`). ``tokens``: the images'
    :meth:`~ScalableFaceCodec.encode_tokens_alone` output when the caller already has it."""
    check_images(images, "compress_images")
    layers = codec._check_layers(layers)
    height, width = images.shape[-2:]
    strings, _ = codec.compress(images, tokens)
    fingerprint = codec.fingerprint()
    streams = [CodecStream(fingerprint, codec.generator.size, height, width, codec.n_layers, s) for s in strings]
    return [s.truncate(layers) for s in streams]


def check_stream(codec: ScalableFaceCodec, stream: CodecStream) -> None:
    """Raise :class:`BitstreamError` unless ``codec`` is the model that wrote ``stream``."""
    if stream.fingerprint != codec.fingerprint():
        raise BitstreamError(f"the stream was written by another model (fingerprint {stream.fingerprint.hex()}, "
                             f"this codec is {codec.fingerprint().hex()})")
    if stream.total_layers != codec.n_layers or stream.resolution != codec.generator.size:
        raise BitstreamError(f"the stream describes a {stream.total_layers}-layer {stream.resolution} px model; "
                             f"this codec has {codec.n_layers} layers at {codec.generator.size} px")


@torch.no_grad()
def decompress_stream(codec: ScalableFaceCodec, stream: CodecStream, layers: int | None = None,
                      resize: bool = True) -> torch.Tensor:
    """A stream -> the image decoded from layers 1..``layers`` (default: every layer present), [1, 3, H, W] in
    [-1, 1], resized to the stream's image size unless ``resize=False``."""
    check_stream(codec, stream)
    layers = stream.n_layers if layers is None else int(layers)
    if not 1 <= layers <= stream.n_layers:
        raise BitstreamError(f"asked for {layers} layers but the stream holds {stream.n_layers}")
    w_hat = codec.decompress(stream.layers, layers)
    image = codec.decode_images(w_hat).clamp(-1, 1)
    if resize and tuple(image.shape[-2:]) != (stream.height, stream.width):
        image = resize_images(image, (stream.height, stream.width))
    return image


@dataclass
class CodedBatch:
    """What :func:`code_batch` produced for a batch: the streams, and per layer k the images decoded from layers
    1..k (``decoded[k-1]``, [B, 3, H, W]), the file sizes of the k-layer streams in bytes (``sizes[k-1]``, [B]),
    the likelihood tensors of layers 1..k (``likelihoods[k-1]``), the seconds spent encoding the batch and the
    seconds spent decoding it from 1..k layers (``decode_seconds[k-1]``)."""

    streams: list[CodecStream]
    decoded: list[torch.Tensor]
    sizes: list[torch.Tensor]
    likelihoods: list[list[torch.Tensor]]
    encode_seconds: float = 0.0
    decode_seconds: list[float] = field(default_factory=list)


@torch.no_grad()
def code_batch(codec: ScalableFaceCodec, images: torch.Tensor) -> CodedBatch:
    """Compress ``images`` for real, then decode every image from 1, 2, ..., K layers of its stream, timing both
    (the evaluation that the ``evaluate`` tool and the validation of ``CodecModule`` share). The codec must be in
    eval mode and updated."""
    with Timer(images.device) as timer:
        tokens = codec.encode_tokens_alone(check_images(images, "code_batch"))  # for the streams and likelihoods
        streams = compress_images(codec, images, tokens=tokens)
    stream_sizes = [stream.sizes() for stream in streams]
    decoded, sizes, decode_seconds = [], [], []
    for layers in range(1, codec.n_layers + 1):
        with Timer(images.device) as decode_timer:
            w_hat = torch.cat([codec.decompress(s.layers, layers) for s in streams])
            image = codec.decode_images(w_hat).clamp(-1, 1)
        decode_seconds.append(decode_timer.seconds)
        decoded.append(resize_images(image, tuple(images.shape[-2:])))
        sizes.append(torch.tensor([s[layers - 1] for s in stream_sizes]))
    output = codec(images, tokens)
    likelihoods = [[t for layer in output.likelihoods[:k] for t in layer.values()]
                   for k in range(1, codec.n_layers + 1)]
    return CodedBatch(streams, decoded, sizes, likelihoods, timer.seconds, decode_seconds)


def update_layer_metrics(collections: Sequence, coded: CodedBatch, images: torch.Tensor,
                         target_masks: torch.Tensor | None = None) -> None:
    """Update one metric collection per layer (``collections[k-1]``, e.g. :func:`~stylegan_lightning.metrics
    .codec_metrics`) with the images decoded from layers 1..k, their file sizes and likelihoods."""
    num_pixels = images.shape[-2] * images.shape[-1]
    for layer, metrics in enumerate(collections, start=1):
        extra = {} if target_masks is None else {"target_masks": target_masks}
        metrics.update(preds=coded.decoded[layer - 1], target=images, num_bytes=coded.sizes[layer - 1],
                       likelihoods=coded.likelihoods[layer - 1], num_pixels=num_pixels, **extra)
