"""The encoders' plain ``nn.Module``\\ s (usable without Lightning), gathered in one place as in the other method
folders (``model.py`` = networks, ``module.py`` = the LightningModule)."""

from .backbone import BackboneConfig, IRSEBackbone
from .e4e import Encoder4Editing
from .inverter import Inverter, LatentEncoder
from .psp import GradualStyleBlock, GradualStyleEncoder, PyramidFeatures, PyramidStyleEncoder
from .w_encoder import WEncoder

__all__ = ["BackboneConfig", "Encoder4Editing", "GradualStyleBlock", "GradualStyleEncoder", "IRSEBackbone",
           "Inverter", "LatentEncoder", "PyramidFeatures", "PyramidStyleEncoder", "WEncoder"]
