"""GradStyle (arXiv 2402.14398): dual-stream inversion and editing over a frozen e4e encoder and StyleGAN2.

- :class:`GradStyle` (:mod:`.model`): Gradual Residual Modules, Gate&Fusion, the reconstruction and editing
  streams (block-by-block synthesis through the generator's ``layer_hook``).
- :mod:`.attention`: selective (top-mu) attention and the :class:`Aligner` of the Global Alignment Module.
- :mod:`.augment`: random perspective warps that simulate misaligned residuals in training.
- :class:`GradStyleModule` (:mod:`.module`): the self-supervised training (LightningModule);
  :func:`load_gradstyle` reads its checkpoints (``--method gradstyle`` of ``invert`` / ``edit``).
"""

from .attention import Aligner, SelectiveAttention, selective_attention, top_ratio_mask
from .augment import perspective_homographies, random_perspective, warp_features
from .model import (DEFAULT_REFINE_LAYERS, GateFusion, GradStyle, GradualResidualModule, ResBlock, StreamOutput,
                    block_layer, check_refine_layers, default_refine_layers, layer_resolution)
from .module import GradStyleModule, load_gradstyle  # last: the LightningModule builds on everything above

__all__ = ["Aligner", "DEFAULT_REFINE_LAYERS", "GateFusion", "GradStyle", "GradStyleModule", "GradualResidualModule",
           "ResBlock", "SelectiveAttention", "StreamOutput", "block_layer", "check_refine_layers",
           "default_refine_layers", "layer_resolution", "load_gradstyle", "perspective_homographies",
           "random_perspective", "selective_attention", "top_ratio_mask", "warp_features"]
