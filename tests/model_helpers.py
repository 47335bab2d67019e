"""Helpers shared by test modules (imported as a plain module beside them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from stylegan_lightning.codec import ScalableFaceCodec


class ImageBatches(torch.utils.data.Dataset):
    """A tensor of images [N, 3, H, W] as a dataset of ``{"image": ...}`` items, the batches the modules train on."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index]}


def randomize_batchnorm(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial batch-norm statistics, so eval-mode outputs depend on every buffer a loader must restore."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=g) + 0.5)
            elif name.endswith("num_batches_tracked"):
                buffer.fill_(7)
    return module


def tiny_codec(seed: int = 0, perturb: bool = False, **codec_kwargs) -> ScalableFaceCodec:
    """A tiny random codec: a 32 px generator (8 style vectors; groups [0-2] [3-4] [5-7] with the default split), a
    small pSp encoder and a 32-wide, 1-deep, 2-head transformer with 4 hyper channels, built after
    ``torch.manual_seed(seed)``. ``codec_kwargs`` override or add ScalableFaceCodec options (``layer_split``,
    ``quantization_step``, ...). Returned in eval mode, without CDF tables: call ``update(force=True)`` before coding.

    At initialisation every symbol codes as 0 with constant Gaussian parameters. ``perturb=True`` moves the codec away
    from that, drawing from a generator seeded ``seed + 100``: analysis weights x10, entropy-parameter head N(0, 0.3),
    generator noise strengths and encoder batch-norm running means N(0, 0.1), hyper-bottleneck parameters (not the
    quantiles) + N(0, 0.1). Symbols, means and scales then vary per token and per image, and every receiver-side
    parameter matters."""
    from stylegan_lightning.codec import ScalableFaceCodec
    from stylegan_lightning.encoders import LatentEncoder, build_encoder
    from stylegan_lightning.stylegan2 import FrozenGenerator, Generator

    size = 32
    torch.manual_seed(seed)
    g = FrozenGenerator(Generator(size=size, style_dim=32, n_mlp=2, channel_max=32), n_mean_latent=100)
    enc = LatentEncoder(build_encoder("psp", g.n_latent, g.style_dim, size, (1, 1, 1, 1), (16, 16, 32, 32)),
                        g.n_latent, g.latent_avg)
    options = dict(dim=32, heads=2, depth=1, hyper_channels=4)
    options.update(codec_kwargs)
    codec = ScalableFaceCodec(g, enc, **options)
    if perturb:
        gen = torch.Generator().manual_seed(seed + 100)
        with torch.no_grad():
            codec.analysis.weight.mul_(10)
            head = codec.entropy_transformer.parameters_head.weight
            head.copy_(torch.randn(head.shape, generator=gen) * 0.3)
            for name, param in g.generator.named_parameters():
                if name.endswith("noise.weight"):
                    param.normal_(0, 0.1, generator=gen)
            for name, buffer in enc.named_buffers():
                if name.endswith("running_mean"):
                    buffer.normal_(0, 0.1, generator=gen)
            for bottleneck in codec.hyper_bottlenecks:
                for name, param in bottleneck.named_parameters():
                    if not name.endswith("quantiles"):
                        param.add_(torch.randn(param.shape, generator=gen) * 0.1)
        codec.invalidate_fingerprint()
    return codec.eval()
