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

Importing the package is cheap: each name is imported from its module on first use (PEP 562), so a tool that
needs an encoder does not pay for Lightning and torchmetrics.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "BackboneConfig": ".backbone",
    "ENCODER_CLASSES": ".factory",
    "ENCODER_TYPES": ".factory",
    "Encoder4Editing": ".e4e",
    "EncoderModule": ".module",
    "GradualStyleBlock": ".psp",
    "GradualStyleEncoder": ".psp",
    "IRSEBackbone": ".backbone",
    "Inverter": ".inverter",
    "LatentCodesDiscriminator": ".latent_discriminator",
    "LatentEncoder": ".inverter",
    "LatentPool": ".latent_discriminator",
    "OFFICIAL_BLOCKS": ".backbone",
    "OFFICIAL_CHANNELS": ".backbone",
    "PyramidFeatures": ".psp",
    "PyramidStyleEncoder": ".psp",
    "SMALL_BLOCKS": ".backbone",
    "SMALL_CHANNELS": ".backbone",
    "WEncoder": ".w_encoder",
    "build_encoder": ".factory",
    "build_inverter": ".inverter",
    "build_latent_encoder": ".inverter",
    "encoder_spec": ".inverter",
    "expand_latent_avg": ".inverter",
    "infer_backbone_config": ".backbone",
    "init_from_irse50": ".pretrained",
    "load_e4e": ".checkpoints",
    "load_encoder": ".checkpoints",
    "load_encoder_module_checkpoint": ".module",
    "load_psp": ".checkpoints",
    "load_w_encoder": ".checkpoints",
    "normalize_kind": ".factory",
    "read_encoder_checkpoint": ".checkpoints",
    "resize_images": ".inverter",
    "save_encoder_checkpoint": ".checkpoints",
    "upsample_add": ".backbone",
}

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
