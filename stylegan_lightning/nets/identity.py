"""One interface over the face-identity networks: aligned images in [-1, 1] -> unit-norm identity embeddings.

- ``"arcface"``: IR-SE50 (``model_ir_se50.pth``), pSp's crop: rows 35:223, cols 32:220 of the 256-px image (as
  fractions, any resolution) area-averaged to 112x112; RGB in [-1, 1]; 512-d; differentiable.
- ``"mobilefacenet"``: MobileFaceNet (``068.ckpt``), similarity warp of the average aligned face onto the SphereFace
  96x112 template; ``(pixel - 127.5) / 128``; 128-d; differentiable.
- ``"curricularface"``: CurricularFace IR-101 (``CurricularFace_Backbone.pth``, Huang et al. 2020: the network the
  GradStyle paper measures ID with), similarity warp onto the ArcFace 112x112 template (the alignment of its
  MS1M training crops); RGB in [-1, 1] (``(pixel - 127.5) / 127.5``); 512-d; differentiable. For evaluation: the
  losses use another network, so that a metric is not the objective itself.
- ``"onnx"``: insightface ArcFace ONNX (``w600k_r50.onnx``), similarity warp onto the ArcFace 112x112 template;
  normalisation read from the model; 512-d; **not** differentiable (metrics only).

The crops are fixed (no detector) and work at any resolution; they assume the input alignment given by
``alignment`` ("ffhq" by default, see :mod:`.alignment`). Cosine similarity of two embeddings is their dot product.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .alignment import ARCFACE_112x112, PSP_ID_BOX, SPHEREFACE_96x112, BoxCrop, Points, SimilarityCrop, face_template
from ._state import FrozenModule
from .common import check_images
from .irse import load_curricularface, load_ir_se50
from .mobilefacenet import load_mobilefacenet
from .onnx_arcface import load_onnx_arcface


class IdentityEncoder(FrozenModule):
    """Frozen identity embedder: ``forward(images [B, 3, H, W] in [-1, 1]) -> [B, D]`` L2-normalised float32.

    ``net`` maps ``[B, 3, h, w]`` normalised crops to raw features; ``crop`` maps aligned images to the crops;
    the crops (in [-1, 1]) are fed to ``net`` as ``input_scale * crop + input_shift``. With ``flip_average`` the
    features of the crop and of its mirror image are summed before normalising (test-time augmentation).
    ``differentiable`` says whether gradients reach the images; a non-differentiable encoder refuses inputs that
    require grad while grad mode is on, rather than silently cutting the graph.
    """

    def __init__(self, net: nn.Module, crop: nn.Module, embedding_dim: int, *, input_scale: float = 1.0,
                 input_shift: float = 0.0, differentiable: bool = True, flip_average: bool = False, name: str = ""):
        super().__init__()
        self.net = net
        self.crop = crop
        self.embedding_dim = int(embedding_dim)
        self.input_scale = float(input_scale)
        self.input_shift = float(input_shift)
        self.differentiable = bool(differentiable)
        self.flip_average = bool(flip_average)
        self.name = name
        self.freeze()

    def crops(self, images: torch.Tensor) -> torch.Tensor:
        """The aligned crops the network sees, still in [-1, 1] (for inspection)."""
        check_images(images, "IdentityEncoder")
        return self.crop(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-norm identity embeddings ``[B, embedding_dim]`` (float32) of aligned face images."""
        check_images(images, "IdentityEncoder")
        if not self.differentiable and images.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(f"the {self.name or 'identity'} encoder is not differentiable (it runs outside "
                               "PyTorch); pass images.detach() or run it under torch.no_grad(), or use a "
                               "differentiable backend ('arcface', 'mobilefacenet') for a loss")
        context = nullcontext() if self.differentiable else torch.no_grad()
        with context:
            first = next(self.net.parameters(), None)
            dtype = first.dtype if first is not None else torch.float32
            x = self.crop(images.to(dtype)) * self.input_scale + self.input_shift
            features = self.net(x)
            if self.flip_average:
                features = features + self.net(x.flip(-1))
            return F.normalize(features.float(), dim=1)

    @staticmethod
    def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of paired embeddings ``[B, D]`` -> ``[B]``."""
        return (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, embedding_dim={self.embedding_dim}, differentiable={self.differentiable}, "
                f"input_scale={self.input_scale:.6g}, input_shift={self.input_shift:.6g}")


def arcface_crop(alignment: str | Points = "ffhq") -> nn.Module:
    """pSp's identity crop (112x112). For FFHQ alignment the exact box; for another alignment the similarity that
    puts that alignment's landmarks where the box puts the FFHQ ones."""
    box = BoxCrop(PSP_ID_BOX, (112, 112))
    if isinstance(alignment, str) and alignment == "ffhq":
        return box
    return SimilarityCrop(alignment, box.map_points(face_template("ffhq")), (112, 112))


def _arcface(path: str | Path | None, alignment: str | Points, **kwargs) -> IdentityEncoder:
    return IdentityEncoder(load_ir_se50(path), arcface_crop(alignment), 512, name="arcface-ir_se50", **kwargs)


def _mobilefacenet(path: str | Path | None, alignment: str | Points, **kwargs) -> IdentityEncoder:
    crop = SimilarityCrop(alignment, SPHEREFACE_96x112, (112, 96))
    # pixel = (x + 1) * 127.5; the reference feeds (pixel - 127.5) / 128
    return IdentityEncoder(load_mobilefacenet(path), crop, 128, input_scale=127.5 / 128.0, name="mobilefacenet",
                           **kwargs)


def _curricularface(path: str | Path | None, alignment: str | Points, **kwargs) -> IdentityEncoder:
    return IdentityEncoder(load_curricularface(path), SimilarityCrop(alignment, ARCFACE_112x112, (112, 112)), 512,
                           name="curricularface-ir101", **kwargs)


def _onnx(path: str | Path | None, alignment: str | Points, **kwargs) -> IdentityEncoder:
    net = load_onnx_arcface(path)
    crop = SimilarityCrop(alignment, [(x * net.input_size[1] / 112, y * net.input_size[0] / 112)
                                      for x, y in ARCFACE_112x112], net.input_size)
    scale, shift = net.pixel_affine()
    return IdentityEncoder(net, crop, net.embedding_dim, input_scale=scale, input_shift=shift, differentiable=False,
                           name="arcface-onnx", **kwargs)


BACKENDS: dict[str, Callable[..., IdentityEncoder]] = {"arcface": _arcface, "mobilefacenet": _mobilefacenet,
                                                       "curricularface": _curricularface, "onnx": _onnx}


IDENTITY_WEIGHT_KEYS = {"arcface": "arcface_ir_se50", "mobilefacenet": "mobilefacenet",
                        "curricularface": "curricularface", "onnx": "arcface_onnx"}


def identity_weight_key(backend: str) -> str | None:
    """The weights-registry key of an identity ``backend``'s file (``None`` for an unknown backend)."""
    return IDENTITY_WEIGHT_KEYS.get(backend)


def build_identity_encoder(backend: str = "arcface", path: str | Path | None = None, *,
                           alignment: str | Points = "ffhq", flip_average: bool = False) -> IdentityEncoder:
    """A frozen :class:`IdentityEncoder` for aligned faces.

    ``backend``: ``"arcface"`` (IR-SE50, registry key ``arcface_ir_se50``), ``"mobilefacenet"`` (``mobilefacenet``),
    ``"curricularface"`` (IR-101, ``curricularface``) or ``"onnx"`` (insightface ArcFace ONNX, ``arcface_onnx``; not differentiable). ``path`` overrides the weights
    file; without it the weights folder is searched and a missing file raises ``MissingWeightError``.
    ``alignment``: how the input images are aligned (``"ffhq"``, ``"celeba-64"`` or 5 fractional points).
    """
    try:
        make = BACKENDS[backend]
    except KeyError:
        raise ValueError(f"unknown identity backend {backend!r}; choose one of {sorted(BACKENDS)}") from None
    return make(path, alignment, flip_average=flip_average)


__all__ = ["BACKENDS", "IdentityEncoder", "arcface_crop", "build_identity_encoder"]
