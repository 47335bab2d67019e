"""StyleGAN2 generator with rosinality/stylegan2-pytorch's parameter names, shapes and ``forward`` arguments.

An official ``{"g_ema": ..., "latent_avg": ...}`` checkpoint loads with ``strict=True`` and produces the same
images. Extensions for the methods are keyword arguments whose defaults leave the official behaviour unchanged:

- ``channel_max`` caps every layer's channel count (small test and demo models); ``channels`` gives an explicit
  per-resolution table instead (e.g. ``{4: 256, 8: 256, 16: 256, 32: 128, 64: 64}``: a CPU prior, or an NVlabs
  network trained with stylegan3's ``--cbase/--cmax``);
- ``weight_deltas`` (HyperStyle): one entry per modulated conv (:attr:`Generator.n_weight_slots` = 26 at 1024),
  ``None`` or a tensor broadcastable to [B, out, in, k, k] applied as ``W * (1 + delta)``;
- ``return_features``: also return the feature map after every synthesis block;
- ``feature_hook``: ``hook(block_index, features, rgb_skip)`` may return replacement ``(features, rgb_skip)``
  between blocks; ``layer_hook`` (GradStyle): ``hook(layer_index, features)`` may return replacement features
  after each styled conv (layer ``i`` is the conv whose noise is ``noise[i]``: 0 is the 4x4 conv, then two per
  resolution). :meth:`Generator.synthesis_block` runs one block for callers that drive the synthesis themselves.

Synthesis blocks: block 0 is the 4x4 block (``conv1`` + ``to_rgb1``); block j >= 1 doubles the resolution to
``4 * 2**j`` (``convs[2j-2]`` upsampling, ``convs[2j-1]``, ``to_rgbs[j-1]``).
"""

from __future__ import annotations

import math
import random
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from .layers import DEFAULT_BLUR_KERNEL, ConstantInput, EqualLinear, PixelNorm, StyledConv, ToRGB

FeatureHook = Callable[[int, torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor] | None"]
LayerHook = Callable[[int, torch.Tensor], "torch.Tensor | None"]


def _after(hook: LayerHook | None, index: int, features: torch.Tensor) -> torch.Tensor:
    replaced = hook(index, features) if hook is not None else None
    return features if replaced is None else replaced


def channel_layout(size: int, channel_multiplier: int = 2, channel_max: int | None = None,
                   channels: Mapping[int, int] | None = None) -> dict[int, int]:
    """Channels per resolution: the explicit table ``channels`` when given (keys 4, 8, ..., ``size``; string keys
    from JSON are accepted), else rosinality's table (config-f for ``channel_multiplier=2``), optionally capped
    at ``channel_max``."""
    resolutions = [2**i for i in range(2, int(math.log2(size)) + 1)]
    if channels is not None:
        return _checked_table(channels, resolutions)
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16, 2048: 8}
    layout = {}
    for res in resolutions:
        if res not in base:
            raise ValueError(f"unsupported resolution {res}")
        count = base[res] * (channel_multiplier if res >= 64 else 1)
        layout[res] = min(count, channel_max) if channel_max else count
    return layout


def _checked_table(channels: Mapping[int, int], resolutions: list[int]) -> dict[int, int]:
    """``channels`` with integer keys, exactly ``resolutions``, and positive integer values; ValueError otherwise."""
    if not isinstance(channels, Mapping):
        raise ValueError(f"channels must be a mapping resolution -> channel count, got {type(channels).__name__}")
    table = {}
    for key, value in channels.items():
        resolution = int(key) if isinstance(key, str) and key.isdigit() else key
        if isinstance(resolution, bool) or not isinstance(resolution, int):
            raise ValueError(f"channels: resolution {key!r} is not an integer")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"channels: {resolution} px has {value!r} channels; expected a positive integer")
        table[resolution] = value
    if sorted(table) != resolutions:
        raise ValueError(f"channels must give every resolution {resolutions}, got {sorted(table)}")
    return {res: table[res] for res in resolutions}


class Generator(nn.Module):
    """StyleGAN2 generator (mapping ``style`` + synthesis), rosinality-compatible.

    Args:
        size: output resolution (a power of two, >= 4).
        style_dim: dimension of z and w.
        n_mlp: number of mapping layers.
        channel_multiplier: 2 for config-f, 1 for the smaller config-e style layouts.
        blur_kernel: 1-D FIR kernel used for up/down sampling.
        lr_mlp: learning-rate multiplier of the mapping network.
        channel_max: optional cap on every layer's channel count (``None`` = official layout).
        channels: optional explicit channel table ``{resolution: channels}`` for 4 .. ``size``; when given,
            ``channel_multiplier`` and ``channel_max`` are not used (see :func:`channel_layout`).
    """

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[int] = DEFAULT_BLUR_KERNEL,
        lr_mlp: float = 0.01,
        channel_max: int | None = None,
        channels: Mapping[int, int] | None = None,
    ):
        super().__init__()
        if size < 4 or size & (size - 1):
            raise ValueError(f"size must be a power of two >= 4, got {size}")
        self.size = size
        self.style_dim = style_dim
        self.config = dict(
            size=size, style_dim=style_dim, n_mlp=n_mlp, channel_multiplier=channel_multiplier,
            blur_kernel=list(blur_kernel), lr_mlp=lr_mlp, channel_max=channel_max,
            channels=channel_layout(size, channels=channels) if channels is not None else None,
        )
        self.style = nn.Sequential(
            PixelNorm(),
            *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu") for _ in range(n_mlp)],
        )
        self.channels = channel_layout(size, channel_multiplier, channel_max, channels)
        self.input = ConstantInput(self.channels[4])
        self.conv1 = StyledConv(self.channels[4], self.channels[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(self.channels[4], style_dim, upsample=False)

        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = (layer_idx + 5) // 2
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, 2**res, 2**res))
        in_channel = self.channels[4]
        for i in range(3, self.log_size + 1):
            out_channel = self.channels[2**i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim, blur_kernel=blur_kernel))
            in_channel = out_channel
        self.n_latent = self.log_size * 2 - 2
        # Mean w of the training run when known (checkpoint ``latent_avg``); not part of the state dict so that
        # official checkpoints load strictly. Loaders set it.
        self.register_buffer("latent_avg", None, persistent=False)

    # ------------------------------------------------------------------ metadata
    @property
    def n_blocks(self) -> int:
        """Number of synthesis blocks (4x4 block included): ``log2(size) - 1``."""
        return self.log_size - 1

    @property
    def block_resolutions(self) -> list[int]:
        """Output resolution of each synthesis block."""
        return [2 ** (j + 2) for j in range(self.n_blocks)]

    @property
    def n_weight_slots(self) -> int:
        """Number of modulated convolutions (weight-offset slots): conv1, to_rgb1, then 3 per block."""
        return 2 + 3 * (self.log_size - 2)

    def modulated_convs(self) -> list[nn.Module]:
        """The ``ModulatedConv2d`` of every weight-offset slot, in slot order."""
        layers = [self.conv1.conv, self.to_rgb1.conv]
        for j in range(self.log_size - 2):
            layers += [self.convs[2 * j].conv, self.convs[2 * j + 1].conv, self.to_rgbs[j].conv]
        return layers

    def weight_slot_shapes(self) -> list[tuple[int, int, int, int]]:
        """(out, in, k, k) of every weight-offset slot."""
        return [tuple(conv.weight.shape[1:]) for conv in self.modulated_convs()]

    def to_rgb_slots(self) -> list[int]:
        """Indices of the toRGB slots (1, 4, 7, ...)."""
        return [1] + [4 + 3 * j for j in range(self.log_size - 2)]

    # ------------------------------------------------------------------ latents and noise
    def make_noise(self) -> list[torch.Tensor]:
        """Fresh N(0, 1) noise maps, one per noise layer (4x4, then two per resolution)."""
        device = self.input.input.device
        noises = [torch.randn(1, 1, 4, 4, device=device)]
        for i in range(3, self.log_size + 1):
            noises += [torch.randn(1, 1, 2**i, 2**i, device=device) for _ in range(2)]
        return noises

    def stored_noise(self) -> list[torch.Tensor]:
        """The fixed noise buffers ``noises.noise_i`` (what ``randomize_noise=False`` uses)."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    @torch.no_grad()
    def mean_latent(self, n_latent: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean of ``style(z)`` over ``n_latent`` random z, shape [1, style_dim]."""
        z = torch.randn(n_latent, self.style_dim, generator=generator).to(self.input.input)
        return self.style(z).mean(0, keepdim=True)

    def get_latent(self, z: torch.Tensor) -> torch.Tensor:
        """The mapping network: z -> w."""
        return self.style(z)

    def prepare_latent(
        self,
        styles: Sequence[torch.Tensor],
        inject_index: int | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
    ) -> torch.Tensor:
        """Turn ``forward``'s ``styles`` list into a W+ tensor [B, n_latent, style_dim] (rosinality semantics:
        mapping, truncation, broadcasting, style mixing at ``inject_index``)."""
        if not isinstance(styles, (list, tuple)):
            raise TypeError("styles must be a list of tensors, e.g. [z] or [w]")
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if truncation < 1:
            if truncation_latent is None:
                truncation_latent = self.latent_avg
            if truncation_latent is None:
                raise ValueError("truncation < 1 needs truncation_latent (or a generator with latent_avg)")
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) < 2:
            latent = styles[0]
            if latent.ndim < 3:
                latent = latent.unsqueeze(1).repeat(1, self.n_latent, 1)
        else:
            if inject_index is None:
                inject_index = random.randint(1, self.n_latent - 1)
            latent = styles[0].unsqueeze(1).repeat(1, inject_index, 1)
            latent2 = styles[1].unsqueeze(1).repeat(1, self.n_latent - inject_index, 1)
            latent = torch.cat([latent, latent2], 1)
        if latent.shape[1:] != (self.n_latent, self.style_dim):
            raise ValueError(
                f"latent has shape {tuple(latent.shape)}; expected [B, {self.n_latent}, {self.style_dim}]"
            )
        return latent

    # ------------------------------------------------------------------ synthesis
    def _block_layers(self, index: int):
        if index == 0:
            return (None, self.conv1, self.to_rgb1)
        return (self.convs[2 * index - 2], self.convs[2 * index - 1], self.to_rgbs[index - 1])

    def synthesis_block(
        self,
        index: int,
        latent: torch.Tensor,
        features: torch.Tensor | None = None,
        skip: torch.Tensor | None = None,
        noise: Sequence[torch.Tensor | None] | None = None,
        weight_deltas: Sequence[torch.Tensor | None] | None = None,
        layer_hook: LayerHook | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run synthesis block ``index`` on W+ ``latent``; returns the new ``(features, rgb_skip)``.

        Block 0 starts from the constant input (``features``/``skip`` ignored). ``noise`` is the full
        per-layer list (entries ``None`` = fresh noise), ``weight_deltas`` the full per-slot list, ``layer_hook``
        see the module docstring.
        """
        noise = noise if noise is not None else [None] * self.num_layers
        deltas = weight_deltas if weight_deltas is not None else [None] * self.n_weight_slots
        if index == 0:
            out = self.input(latent)
            out = _after(layer_hook, 0, self.conv1(out, latent[:, 0], noise=noise[0], weight_delta=deltas[0]))
            return out, self.to_rgb1(out, latent[:, 1], weight_delta=deltas[1])
        up_conv, conv, to_rgb = self._block_layers(index)
        i = 2 * index - 1  # style index of the block's first conv (and noise index)
        slot = 3 * index - 1
        out = _after(layer_hook, i, up_conv(features, latent[:, i], noise=noise[i], weight_delta=deltas[slot]))
        out = _after(layer_hook, i + 1, conv(out, latent[:, i + 1], noise=noise[i + 1], weight_delta=deltas[slot + 1]))
        return out, to_rgb(out, latent[:, i + 2], skip, weight_delta=deltas[slot + 2])

    def synthesize(
        self,
        latent: torch.Tensor,
        noise: Sequence[torch.Tensor | None] | None = None,
        weight_deltas: Sequence[torch.Tensor | None] | None = None,
        feature_hook: FeatureHook | None = None,
        return_features: bool = False,
        layer_hook: LayerHook | None = None,
    ):
        """Synthesis network on a W+ tensor [B, n_latent, style_dim]; returns the image, or
        ``(image, features)`` with ``return_features`` (one feature map per block)."""
        if weight_deltas is not None and len(weight_deltas) != self.n_weight_slots:
            raise ValueError(f"weight_deltas needs {self.n_weight_slots} entries, got {len(weight_deltas)}")
        if noise is not None and len(noise) != self.num_layers:
            raise ValueError(f"noise needs {self.num_layers} entries, got {len(noise)}")
        features, skip, all_features = None, None, []
        for index in range(self.n_blocks):
            features, skip = self.synthesis_block(index, latent, features, skip, noise, weight_deltas, layer_hook)
            if feature_hook is not None:
                replaced = feature_hook(index, features, skip)
                if replaced is not None:
                    features, skip = replaced
            if return_features:
                all_features.append(features)
        return (skip, all_features) if return_features else skip

    def forward(
        self,
        styles,
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
        weight_deltas: Sequence[torch.Tensor | None] | None = None,
        return_features: bool = False,
        feature_hook: FeatureHook | None = None,
    ):
        """rosinality's forward: returns ``(image, latent or None)``; with ``return_features`` a third item,
        the list of per-block feature maps."""
        latent = self.prepare_latent(styles, inject_index, truncation, truncation_latent, input_is_latent)
        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.stored_noise()
        result = self.synthesize(latent, noise, weight_deltas, feature_hook, return_features)
        image, features = result if return_features else (result, None)
        out = (image, latent if return_latents else None)
        return out + (features,) if return_features else out
