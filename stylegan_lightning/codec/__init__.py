"""Scalable face codec (arXiv 2312.15622): a face coded as the style vectors of a frozen StyleGAN2 prior, sent as
a 3-layer bitstream (basic: pose / expression / shape for machine tasks, middle: identity and attributes,
enhanced: detail for viewing), each layer decodable with the ones before it only.

- :class:`ScalableFaceCodec` (:mod:`.model`): encoder, hyper-transformer, cross-layer entropy transformer,
  CompressAI entropy models, synthesis into W+ and the frozen generator.
- :mod:`.layers`: grouping of the style vectors into layers.
- :mod:`.bitstream`: the versioned file format (:class:`CodecStream`, :class:`BitstreamError`).
- :mod:`.coding`: images <-> streams (:func:`compress_images`, :func:`decompress_stream`, :func:`code_batch`).
- :mod:`.checkpoints`: codec files (:func:`save_codec`, :func:`load_codec`).
- :class:`CodecModule` (:mod:`.module`): training with the multi-task scalable rate-distortion objective.
- :mod:`.classical`: JPEG / WebP / AVIF / HEIC baselines.

Importing the package is cheap: each name is imported from its module on first use (PEP 562), so a tool that needs
one part (and every ``--help``) does not pay for CompressAI or Lightning.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "BitstreamError": ".bitstream",
    "CodecModule": ".module",
    "CodecOutput": ".model",
    "CodecStream": ".bitstream",
    "CodedBatch": ".coding",
    "LAYER_NAMES": ".layers",
    "LayerStrings": ".bitstream",
    "ScalableFaceCodec": ".model",
    "build_codec": ".checkpoints",
    "check_stream": ".coding",
    "code_batch": ".coding",
    "codec_spec": ".checkpoints",
    "compress_images": ".coding",
    "decompress_stream": ".coding",
    "layer_groups": ".layers",
    "layer_name": ".layers",
    "load_codec": ".checkpoints",
    "read_stream": ".bitstream",
    "save_codec": ".checkpoints",
    "scale_table": ".model",
    "style_resolution": ".layers",
    "update_layer_metrics": ".coding",
    "write_stream": ".bitstream",
}

__all__ = ["BitstreamError", "CodecModule", "CodecOutput", "CodecStream", "CodedBatch", "LAYER_NAMES", "LayerStrings",
           "ScalableFaceCodec", "build_codec", "check_stream", "code_batch", "codec_spec", "compress_images",
           "decompress_stream", "layer_groups", "layer_name", "load_codec", "read_stream", "save_codec",
           "scale_table", "style_resolution", "update_layer_metrics", "write_stream"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
