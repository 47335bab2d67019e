"""Frozen face parser (BiSeNet, face-parsing.PyTorch ``79999_iter.pth``) and the two 19-class label orders.

Two orders of the same 19 CelebAMask-HQ classes are in use, and they differ:

=====  =========================================  ==============================================
index  :data:`PARSER_CLASSES` (BiSeNet output,    :data:`CELEBAMASK_CLASSES` (CelebAMask-HQ index
       zllrunning/face-parsing.PyTorch)           masks, ``*_mask.png`` in the shared samples)
=====  =========================================  ==============================================
0      background                                 background
1      skin                                       skin
2      l_brow                                     nose
3      r_brow                                     eye_g
4      l_eye                                      l_eye
5      r_eye                                      r_eye
6      eye_g                                      l_brow
7      l_ear                                      r_brow
8      r_ear                                      l_ear
9      ear_r                                      r_ear
10     nose                                       mouth
11     mouth                                      u_lip
12     u_lip                                      l_lip
13     l_lip                                      hair
14     neck                                       hat
15     neck_l                                     ear_r
16     cloth                                      neck_l
17     hair                                       neck
18     hat                                        cloth
=====  =========================================  ==============================================

``l_`` / ``r_`` are the subject's left / right (``l_eye`` appears on the image's right). ``eye_g`` = eyeglasses,
``ear_r`` = earring, ``neck_l`` = necklace, ``mouth`` = the inner mouth between the lips.
:func:`celebamask_to_parser` and :func:`parser_to_celebamask` convert label maps between the two.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .bisenet import BiSeNet
from ._state import FrozenModule
from .common import check_images, load_pretrained

PARSER_CLASSES: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r", "nose",
    "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
CELEBAMASK_CLASSES: tuple[str, ...] = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth",
    "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")

#: ``CELEBAMASK_TO_PARSER[i]`` = parser index of CelebAMask-HQ class ``i``
CELEBAMASK_TO_PARSER: tuple[int, ...] = tuple(PARSER_CLASSES.index(name) for name in CELEBAMASK_CLASSES)
#: ``PARSER_TO_CELEBAMASK[i]`` = CelebAMask-HQ index of parser class ``i``
PARSER_TO_CELEBAMASK: tuple[int, ...] = tuple(CELEBAMASK_CLASSES.index(name) for name in PARSER_CLASSES)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _relabel(labels: torch.Tensor, table: tuple[int, ...]) -> torch.Tensor:
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"label maps must be integer tensors, got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(table)):
        raise ValueError(f"labels must lie in [0, {len(table) - 1}], got [{int(labels.min())}, {int(labels.max())}]")
    lut = torch.tensor(table, dtype=labels.dtype, device=labels.device)
    return lut[labels.long()]


def celebamask_to_parser(labels: torch.Tensor) -> torch.Tensor:
    """CelebAMask-HQ index labels (any shape, integer) -> the BiSeNet parser's class order."""
    return _relabel(labels, CELEBAMASK_TO_PARSER)


def parser_to_celebamask(labels: torch.Tensor) -> torch.Tensor:
    """BiSeNet parser labels (any shape, integer) -> the CelebAMask-HQ mask index order."""
    return _relabel(labels, PARSER_TO_CELEBAMASK)


class FaceParser(FrozenModule):
    """Frozen 19-class face parser for images in [-1, 1] of any size (classes in :data:`PARSER_CLASSES` order).

    Images are mapped to [0, 1], normalised with the ImageNet mean / std, resized to ``size x size`` (the
    reference works at 512; bilinear, anti-aliased when shrinking), parsed, and the logits resized back to the
    input size. Differentiable with respect to the images (parsing losses).
    """

    classes = PARSER_CLASSES

    def __init__(self, net: BiSeNet, size: int = 512):
        super().__init__()
        self.net = net
        self.size = int(size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    @staticmethod
    def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [-1, 1] -> logits ``[B, 19, H, W]``."""
        check_images(images, "FaceParser")
        x = ((images.to(self.mean.dtype) + 1) / 2 - self.mean) / self.std
        logits = self.net(self._resize(x, (self.size, self.size)), aux=False)
        return self._resize(logits, tuple(images.shape[-2:]))

    @torch.no_grad()
    def labels(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, H, W]`` long class indices (:data:`PARSER_CLASSES` order)."""
        return self.forward(images).argmax(1)

    def extra_repr(self) -> str:
        return f"size={self.size}, classes={len(self.classes)}"


def load_bisenet(path: str | Path | None = None, n_classes: int = 19) -> BiSeNet:
    """BiSeNet with the face-parsing weights ``79999_iter.pth`` (registry key ``bisenet_parsing``), loaded strictly,
    in eval mode. A missing file raises :class:`~stylegan_lightning.weights.MissingWeightError`."""
    net = BiSeNet(n_classes)
    load_pretrained(net, "bisenet_parsing", path, "BiSeNet face-parsing weights")
    return net.eval()


def build_face_parser(path: str | Path | None = None, size: int = 512) -> FaceParser:
    """A frozen :class:`FaceParser` with the face-parsing.PyTorch weights (see :func:`load_bisenet`)."""
    return FaceParser(load_bisenet(path), size=size)


__all__ = ["CELEBAMASK_CLASSES", "CELEBAMASK_TO_PARSER", "FaceParser", "IMAGENET_MEAN", "IMAGENET_STD",
           "PARSER_CLASSES", "PARSER_TO_CELEBAMASK", "build_face_parser", "celebamask_to_parser", "load_bisenet",
           "parser_to_celebamask"]
