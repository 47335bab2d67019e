"""e4e's ``Encoder4Editing``: one base code w0 plus per-style offsets, switched on progressively.

The parameters are pSp's (:class:`~.psp.PyramidStyleEncoder`), so both load the same checkpoint layout. The
output is ``w[:, i] = w0 + delta_i`` for ``1 <= i <= progressive_stage`` and ``w0`` for the other styles, with
``w0 = styles[0](c3)`` and ``delta_i = styles[i](level features)`` (encoder4editing
``models/encoders/psp_encoders.py``). Training raises the stage from 0 (W only) to ``n_styles - 1`` (all offsets,
the inference setting, official ``ProgressiveStage.Inference``).
"""

from __future__ import annotations

from enum import Enum

import torch

from .backbone import upsample_add
from .psp import PyramidFeatures, PyramidStyleEncoder

INFERENCE = "inference"


class Encoder4Editing(PyramidStyleEncoder):
    """e4e encoder (see the module docstring); constructor arguments as :class:`~.psp.PyramidStyleEncoder`.

    :attr:`progressive_stage` starts at ``n_styles - 1`` (every offset on). ``forward(x)`` returns W+ offsets
    [B, n_styles, style_dim] (before ``latent_avg``); ``forward(x, return_features=True)`` also returns the
    :class:`~.psp.PyramidFeatures` (also available alone through :meth:`features`).
    """

    kind = "e4e"
    official_name = "Encoder4Editing"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.progressive_stage = self.n_styles - 1

    def normalize_stage(self, stage: int | str | Enum | None) -> int:
        """``stage`` as an int in ``[0, n_styles - 1]``. ``None`` / ``"inference"`` mean every offset; so does
        any int >= ``n_styles - 1`` (the official enum's ``Inference`` is 18 whatever the resolution)."""
        if stage is None or (isinstance(stage, str) and stage.lower() == INFERENCE):
            return self.n_styles - 1
        if isinstance(stage, Enum):
            stage = stage.value
        if isinstance(stage, bool) or not isinstance(stage, int):
            raise ValueError(f"progressive stage must be an int, 'inference' or None, got {stage!r}")
        if stage < 0:
            raise ValueError(f"progressive stage must be >= 0, got {stage}")
        return min(stage, self.n_styles - 1)

    def set_progressive_stage(self, stage: int | str | Enum | None) -> int:
        """Set :attr:`progressive_stage` (see :meth:`normalize_stage`); returns the stored value."""
        self.progressive_stage = self.normalize_stage(stage)
        return self.progressive_stage

    @property
    def is_inference_stage(self) -> bool:
        return self.progressive_stage >= self.n_styles - 1

    def forward(self, x: torch.Tensor, return_features: bool = False):
        if return_features:
            features = self.features(x)
            c1, c2, c3 = features.c1, features.c2, features.c3
        else:
            self.check_input(x, self.input_size)
            c1, c2, c3 = self.backbone_features(x)
        w0 = self.styles[0](c3)
        styles = [w0]
        level_maps = [c3]
        for i in range(1, self.n_styles):
            if i > self.progressive_stage:
                styles.append(w0)
                continue
            level = self.style_level(i)
            while len(level_maps) <= level:  # FPN levels are computed only once a style needs them
                if return_features:
                    level_maps.append(features.level(len(level_maps)))
                elif len(level_maps) == 1:
                    level_maps.append(upsample_add(c3, self.latlayer1(c2)))
                else:
                    level_maps.append(upsample_add(level_maps[1], self.latlayer2(c1)))
            styles.append(w0 + self.styles[i](level_maps[level]))
        w = torch.stack(styles, dim=1)
        return (w, features) if return_features else w


__all__ = ["INFERENCE", "Encoder4Editing", "PyramidFeatures"]
