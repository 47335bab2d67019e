"""Perceptual distances between images in [-1, 1]: LPIPS v0.1 (Zhang et al. 2018) and DISTS (Ding et al. 2020).

Both are frozen, return one distance per image ([B]), and are differentiable with respect to both inputs.
Their ImageNet backbones are the user's torchvision files (registry keys ``alexnet_imagenet`` /
``vgg16_imagenet``); the small calibration weights ship with pip packages (``lpips_linear_alex`` /
``lpips_linear_vgg`` from lpips, ``dists_alpha_beta`` from torchmetrics). Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..serialization import CheckpointError, safe_torch_load
from ..weights import REGISTRY, resolve_weight
from ._state import FrozenModule, load_state_strict
from .feature_backbones import alexnet_features, load_torchvision_features, vgg16_features

LPIPS_SHIFT = (-0.030, -0.088, -0.188)  # lpips ScalingLayer: (x - shift) / scale maps [-1, 1] to ImageNet stats
LPIPS_SCALE = (0.458, 0.448, 0.450)
LPIPS_NETS = {
    # net: (features, registry key of the torchvision file, indices of the tapped ReLUs, their channels)
    "alex": (alexnet_features, "alexnet_imagenet", (1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg": (vgg16_features, "vgg16_imagenet", (3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
}


def lpips_backbone_key(net: str) -> str:
    """Registry key of the torchvision backbone file an LPIPS ``net`` needs."""
    if net not in LPIPS_NETS:
        raise ValueError(f"unknown LPIPS net {net!r}; expected one of {sorted(LPIPS_NETS)}")
    return LPIPS_NETS[net][1]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DISTS_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of VGG16
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)  # the image itself, then the five VGG stages
DISTS_C1 = DISTS_C2 = 1e-6


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: expected two image batches [B, 3, H, W] of the same shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")


def _taps(features: nn.Sequential, x: torch.Tensor, taps: tuple[int, ...]) -> list[torch.Tensor]:
    outputs = []
    for index, layer in enumerate(features[:taps[-1] + 1]):
        x = layer(x)
        if index in taps:
            outputs.append(x)
    return outputs


def unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """LPIPS channel normalisation ``f / (||f||_2 + eps)`` over channels (a zero vector has zero gradient)."""
    return features / (torch.linalg.vector_norm(features, dim=1, keepdim=True) + eps)


class LPIPSNetwork(FrozenModule):
    """LPIPS v0.1: ``network(x, y) -> [B]`` for images in [-1, 1].

    ``d(x, y) = sum_l mean_hw( w_l . (n(f_l(x)) - n(f_l(y)))^2 )``: features ``f_l`` at five ReLUs of AlexNet or
    VGG16 after lpips's input scaling, ``n`` the unit normalisation over channels, ``w_l`` the non-negative 1x1
    linear heads of the lpips package. Identical to ``lpips.LPIPS(net=net, version="0.1")`` given the same
    weights.
    """

    def __init__(self, net: str = "alex", backbone_path: str | Path | None = None,
                 linear_path: str | Path | None = None):
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"net must be one of {sorted(LPIPS_NETS)}, got {net!r}")
        make_features, backbone_key, self.taps, channels = LPIPS_NETS[net]
        self.net = net
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.features = load_torchvision_features(make_features(), backbone_key, backbone_path)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in channels)
        self._load_linear(f"lpips_linear_{net}", linear_path)
        self.freeze()

    def _load_linear(self, key: str, path: str | Path | None) -> None:
        file = resolve_weight(key, path)
        purpose = f"{REGISTRY[key].purpose} ('{file}')"
        state = safe_torch_load(file, purpose)
        if not isinstance(state, dict):
            raise CheckpointError(f"{purpose}: expected a state dict, got {type(state).__name__}")
        # lpips names the heads lin{k}.model.1.weight (model.0 is a dropout layer).
        renamed = {}
        for name, value in state.items():
            parts = name.split(".")
            if len(parts) == 4 and parts[0].startswith("lin") and parts[1:] == ["model", "1", "weight"]:
                renamed[f"{parts[0][3:]}.weight"] = value
            else:
                renamed[name] = value
        load_state_strict(self.lins, renamed, purpose)

    def layer_distances(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """The five per-layer terms, each [B]."""
        _check_pair(x, y, "LPIPS")
        both = _taps(self.features, (torch.cat((x, y)) - self.shift) / self.scale, self.taps)
        terms = []
        for feature, lin in zip(both, self.lins):
            fx, fy = feature.chunk(2)
            terms.append(lin((unit_normalize(fx) - unit_normalize(fy)) ** 2).mean((1, 2, 3)))
        return terms

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.layer_distances(x, y)).sum(0)


class L2Pooling(nn.Module):
    """DISTS's L2 pooling: ``sqrt(blur(x^2) + 1e-12)`` subsampled by 2, blur = normalised outer product of the
    Hann window ``hanning(5)[1:-1] = (0.5, 1, 0.5)``, padding 1, per channel."""

    def __init__(self, channels: int, filter_size: int = 5, stride: int = 2):
        super().__init__()
        n = torch.arange(filter_size, dtype=torch.float64)
        window = (0.5 - 0.5 * torch.cos(2 * torch.pi * n / (filter_size - 1)))[1:-1]
        kernel = window[:, None] * window[None, :]
        kernel = (kernel / kernel.sum()).float()
        self.register_buffer("filter", kernel.expand(channels, 1, -1, -1).contiguous(), persistent=False)
        self.stride, self.padding, self.channels = stride, (filter_size - 2) // 2, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x**2, self.filter, stride=self.stride, padding=self.padding, groups=self.channels)
        return (out + 1e-12).sqrt()


class DISTSNetwork(FrozenModule):
    """DISTS: ``network(x, y) -> [B]`` for images in [-1, 1] (mapped to [0, 1], then ImageNet-normalised).

    Features: the [0, 1] image and relu1_2 ... relu5_3 of a VGG16 whose max-pooling layers are L2 pooling.
    Per channel, structure ``(2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)`` and texture
    ``(2 cov_xy + c2) / (var_x + var_y + c2)`` (spatial statistics, c1 = c2 = 1e-6) are weighted by the learned
    ``alpha`` / ``beta`` (normalised to sum 1 together); ``d = 1 - sum``. Same numbers as torchmetrics'
    ``deep_image_structure_and_texture_similarity`` (and the DISTS_pytorch reference) given the same weights.
    """

    def __init__(self, backbone_path: str | Path | None = None, weights_path: str | Path | None = None):
        super().__init__()
        self.features = load_torchvision_features(vgg16_features(pool=L2Pooling), "vgg16_imagenet", backbone_path)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("alpha", torch.zeros(1, sum(DISTS_CHANNELS), 1, 1))
        self.register_buffer("beta", torch.zeros(1, sum(DISTS_CHANNELS), 1, 1))
        file = resolve_weight("dists_alpha_beta", weights_path)
        purpose = f"{REGISTRY['dists_alpha_beta'].purpose} ('{file}')"
        state = safe_torch_load(file, purpose)
        if not isinstance(state, dict):
            raise CheckpointError(f"{purpose}: expected a dict with 'alpha' and 'beta', got {type(state).__name__}")
        weights = nn.Module()
        weights.register_buffer("alpha", self.alpha)
        weights.register_buffer("beta", self.beta)
        load_state_strict(weights, state, purpose)
        self.freeze()

    def stage_features(self, images01: torch.Tensor) -> list[torch.Tensor]:
        """The six DISTS feature maps of images in [0, 1]."""
        return [images01] + _taps(self.features, (images01 - self.mean) / self.std, DISTS_TAPS)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y, "DISTS")
        both = self.stage_features((torch.cat((x, y)) + 1) / 2)
        total = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / total, DISTS_CHANNELS, dim=1)
        betas = torch.split(self.beta / total, DISTS_CHANNELS, dim=1)
        similarity = 0
        for feature, alpha, beta in zip(both, alphas, betas):
            fx, fy = feature.chunk(2)
            mx, my = fx.mean((2, 3), keepdim=True), fy.mean((2, 3), keepdim=True)
            structure = (2 * mx * my + DISTS_C1) / (mx**2 + my**2 + DISTS_C1)
            vx, vy = ((fx - mx) ** 2).mean((2, 3), keepdim=True), ((fy - my) ** 2).mean((2, 3), keepdim=True)
            cov = (fx * fy).mean((2, 3), keepdim=True) - mx * my
            texture = (2 * cov + DISTS_C2) / (vx + vy + DISTS_C2)
            similarity = similarity + (alpha * structure + beta * texture).sum((1, 2, 3))
        return 1 - similarity
