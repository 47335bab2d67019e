"""Losses shared by every method: each a small module or function over images, latents or logits.

Networks (identity encoder, face parser, landmark net, LPIPS network) are passed in, so one frozen instance can
serve a loss and a metric at once.
"""

from .adversarial import d_logistic_loss, g_nonsaturating_loss, r1_penalty
from .identity import IdentityLoss
from .inversion import InversionLosses
from .landmark import LandmarkLoss
from .parsing import ParsingLoss
from .perceptual import LPIPSLoss
from .reconstruction import L2Loss
from .regularizers import delta_regularizer, w_norm

__all__ = [
    "IdentityLoss",
    "InversionLosses",
    "L2Loss",
    "LPIPSLoss",
    "LandmarkLoss",
    "ParsingLoss",
    "d_logistic_loss",
    "delta_regularizer",
    "g_nonsaturating_loss",
    "r1_penalty",
    "w_norm",
]
