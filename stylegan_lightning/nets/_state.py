"""Helpers shared by the frozen auxiliary networks of this folder: freezing (eval mode that ``train()`` cannot
undo, no trainable parameters) and strict state loading (re-exported from :mod:`stylegan_lightning.serialization`)."""

from __future__ import annotations

from torch import nn

from ..serialization import load_state_strict  # noqa: F401  (re-exported for the nets)

class FrozenModule(nn.Module):
    """An ``nn.Module`` that stays in eval mode with no trainable parameters; gradients still reach its inputs.

    Subclasses call :meth:`freeze` at the end of ``__init__``. ``train(True)`` (e.g. from a parent
    LightningModule) is ignored, so BatchNorm statistics and dropout never change.
    """

    def freeze(self) -> "FrozenModule":
        """Switch to eval mode and turn off ``requires_grad`` on every parameter."""
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> "FrozenModule":
        return super().train(False)
