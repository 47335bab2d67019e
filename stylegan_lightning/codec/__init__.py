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
"""

from .layers import LAYER_NAMES, layer_groups, layer_name, style_resolution
from .model import CodecOutput, LayerStrings, ScalableFaceCodec, scale_table
from .bitstream import BitstreamError, CodecStream, read_stream, write_stream
from .checkpoints import build_codec, codec_spec, load_codec, save_codec
from .coding import CodedBatch, check_stream, code_batch, compress_images, decompress_stream, update_layer_metrics
from .module import CodecModule  # last: the LightningModule builds on everything above

__all__ = ["BitstreamError", "CodecModule", "CodecOutput", "CodecStream", "CodedBatch", "LAYER_NAMES", "LayerStrings",
           "ScalableFaceCodec", "build_codec", "check_stream", "code_batch", "codec_spec", "compress_images",
           "decompress_stream", "layer_groups", "layer_name", "load_codec", "read_stream", "save_codec",
           "scale_table", "style_resolution", "update_layer_metrics", "write_stream"]
