"""HyperStyle (Alaluf et al., CVPR 2022): per-image offsets for a frozen StyleGAN2's conv kernels, predicted
iteratively by a hypernetwork from (image ⊕ current reconstruction), over a frozen W-encoder.

- :mod:`.hypernet`: :class:`HyperNetwork` (official ``SharedWeightsHyperNetResNet`` names), refinement heads,
  the slot tables (:data:`TO_RGB_LAYERS`, :func:`default_layers_to_tune`, :func:`medium_fine_layers_to_tune`).
- :mod:`.model`: :class:`HyperStyle` (``initial`` / ``refine_step`` / ``run`` / ``invert`` / ``edit``),
  :func:`build_hyperstyle`.
- :mod:`.checkpoints`: :func:`load_hyperstyle` / :func:`save_hyperstyle` (official ``hyperstyle_ffhq.pt`` layout;
  the hypernetwork loads without its W-encoder file, :func:`attach_w_encoder` pairs it later).
- :mod:`.module`: :class:`HyperStyleModule` (training, per-iteration metrics, export) and
  :func:`load_hyperstyle_module_checkpoint` (the model of its Lightning checkpoints).
"""

from .hypernet import (DEFAULT_LAYERS_TO_TUNE, OFFICIAL_LAYERS_TO_TUNE, OFFICIAL_SHARED_LAYERS, TO_RGB_LAYERS,
                       HyperNetwork, HyperRefinementBlock, RefinementBlock, SharedWeightsHypernet,
                       default_layers_to_tune, generator_slot_shapes, init_from_resnet34, medium_fine_layers_to_tune,
                       parse_layers_to_tune, slot_resolution, to_rgb_slots)
from .model import HyperStyle, HyperStyleOutput, accumulate, build_hyperstyle
from .checkpoints import attach_w_encoder, load_hyperstyle, read_hyperstyle_checkpoint, save_hyperstyle
from .module import HyperStyleModule, load_hyperstyle_module_checkpoint

__all__ = ["DEFAULT_LAYERS_TO_TUNE", "OFFICIAL_LAYERS_TO_TUNE", "OFFICIAL_SHARED_LAYERS", "TO_RGB_LAYERS",
           "HyperNetwork", "HyperRefinementBlock", "HyperStyle", "HyperStyleOutput", "RefinementBlock",
           "SharedWeightsHypernet", "accumulate", "attach_w_encoder", "build_hyperstyle", "default_layers_to_tune",
           "generator_slot_shapes", "init_from_resnet34", "load_hyperstyle", "medium_fine_layers_to_tune",
           "parse_layers_to_tune", "read_hyperstyle_checkpoint", "save_hyperstyle", "slot_resolution",
           "to_rgb_slots",
           "HyperStyleModule", "load_hyperstyle_module_checkpoint"]
