"""Image encoders into the StyleGAN2 latent space over an IR-SE backbone: pSp's ``GradualStyleEncoder``, e4e's
``Encoder4Editing`` and HyperStyle's ``WEncoder``, with the official module names so pSp / e4e / HyperStyle
checkpoints load strictly.

- :func:`build_encoder` / :func:`build_inverter`: new encoders (official IR-SE50 or a small CPU configuration,
  optionally initialised from the ArcFace ``model_ir_se50.pth`` as in pSp).
- :class:`LatentEncoder`: images in [-1, 1] -> W+ (resizing, ``latent_avg``); :class:`Inverter`: encoder + frozen
  generator, ``invert(images) -> (w_plus, reconstruction)``.
- :func:`load_psp`, :func:`load_e4e`, :func:`load_w_encoder`, :func:`load_encoder`: official checkpoints;
  :func:`save_encoder_checkpoint` writes the same layout.
- :class:`EncoderModule`: the LightningModule that trains pSp / e4e / W encoders.
"""

from .backbone import (OFFICIAL_BLOCKS, OFFICIAL_CHANNELS, SMALL_BLOCKS, SMALL_CHANNELS, BackboneConfig,
                       IRSEBackbone, infer_backbone_config, upsample_add)
from .checkpoints import (load_e4e, load_encoder, load_psp, load_w_encoder, read_encoder_checkpoint,
                          save_encoder_checkpoint)
from .e4e import Encoder4Editing
from .factory import ENCODER_CLASSES, ENCODER_TYPES, build_encoder, normalize_kind
from .inverter import (Inverter, LatentEncoder, build_inverter, build_latent_encoder, encoder_spec, expand_latent_avg,
                       resize_images)
from .pretrained import init_from_irse50
from .psp import GradualStyleBlock, GradualStyleEncoder, PyramidFeatures, PyramidStyleEncoder
from .w_encoder import WEncoder
from .latent_discriminator import LatentCodesDiscriminator, LatentPool
from .module import EncoderModule, load_encoder_module_checkpoint  # last: the LightningModule builds on the rest

__all__ = [
    "ENCODER_CLASSES",
    "ENCODER_TYPES",
    "OFFICIAL_BLOCKS",
    "OFFICIAL_CHANNELS",
    "SMALL_BLOCKS",
    "SMALL_CHANNELS",
    "BackboneConfig",
    "Encoder4Editing",
    "EncoderModule",
    "GradualStyleBlock",
    "GradualStyleEncoder",
    "IRSEBackbone",
    "Inverter",
    "LatentCodesDiscriminator",
    "LatentEncoder",
    "LatentPool",
    "PyramidFeatures",
    "PyramidStyleEncoder",
    "WEncoder",
    "build_encoder",
    "build_inverter",
    "build_latent_encoder",
    "encoder_spec",
    "expand_latent_avg",
    "infer_backbone_config",
    "init_from_irse50",
    "load_encoder_module_checkpoint",
    "load_e4e",
    "load_encoder",
    "load_psp",
    "load_w_encoder",
    "normalize_kind",
    "read_encoder_checkpoint",
    "resize_images",
    "save_encoder_checkpoint",
    "upsample_add",
]
