"""The scalable face codec: style vectors of a frozen StyleGAN2 prior coded as a layered bitstream.

Pipeline (sender -> receiver)::

    image -> hierarchical style encoder (pSp) -> W+ [B, n, D]
          -> analysis (per-vector linear map of w - w_avg)          -> y [B, n, C]   (style tokens)
          -> layer-wise hyper-transformer                           -> z [B, n, Cz]  (hyper-latent)
    per layer k = 1..K (in order):
          z_k  -> EntropyBottleneck_k                               -> ẑ_k   (hyper string k)
          ẑ_<=k -> masked hyper-decoder                              -> hyperprior features of layer k
          features + ŷ_<k -> cross-layer entropy transformer         -> (μ_k, σ_k)
          y_k  -> GaussianConditional(σ_k, μ_k)                     -> ŷ_k = round(y_k - μ_k) + μ_k  (string k)
    receiver holding layers 1..k: ŷ_<=k -> synthesis (per-vector linear) + w_avg -> W+, the vectors of missing
          layers = w_avg -> frozen generator -> x̂_k

The analysis / synthesis pair is this implementation's learned quantisation basis and step for the frozen W
space (initialised to ``y = (w - w_avg) / quantization_step``); the rest follows the paper's structure.

Cross-device exactness. The receiver picks each symbol's CDF (the index of its scale in the scale table) and its
mean from values it computes, so any difference between the sender's and the receiver's arithmetic (CPU or GPU,
thread counts, BLAS, float32 or float64 weights) could pick another CDF and silently corrupt the decode. The coding
path (:meth:`ScalableFaceCodec.compress_tokens` / :meth:`~ScalableFaceCodec.decompress`) therefore chooses them by a
fixed procedure whose inputs are exact and whose arithmetic is far more precise than its decisions:

a. exact inputs: ẑ is rebuilt from the decoded integer symbols plus the bottleneck medians in float64 (exact), and
   ŷ = symbol + mean with means on the grid ``1 / mean_grid`` (a power of two), also exact, so sender and receiver
   feed bit-identical numbers to the entropy-parameter network;
b. that network (hyper-decoder + cross-layer entropy transformer) always runs in float64 on the CPU, on a copy of
   its weights (float32 weights convert exactly), whatever device and dtype the rest of the codec uses;
c. its outputs are turned into decisions on coarse grids: means rounded to ``1 / mean_grid``, scales to one of
   the 64 scale-table entries (index = number of table thresholds below the scale, computed in float64).

This is not exact by construction: a pre-rounding value closer to a rounding boundary than the two sides' float64
disagreement would still be decided differently. That disagreement was 0 between float32 weights on 2 threads and
a float64 model on 1 thread on one CPU, and is of the order of float64's rounding (1e-16 relative, times the
accumulation depth) between BLAS builds. :meth:`ScalableFaceCodec.compress_tokens` records the distance of every
value to its nearest boundary on request (``trace``); :mod:`.interop` and ``benchmarks/bench_codec_interop.py``
measure the smallest one: over the 26 sample faces and 1,000 random latents, 3.2e-7 mean-grid steps and 6.2e-8
in log scale for the demo codec, orders of magnitude above that noise (README: cross-device decoding).
The fingerprint hashes the receiver weights widened to float64, so a float64 copy of a float32 codec has the same
fingerprint and decodes its streams. Training (``forward``) runs the same computation on the batch in the model's
dtype, with uniform noise for the likelihoods and straight-through rounding for the values passed on (means on the
same grid).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from ..encoders.inverter import LatentEncoder
from ..stylegan2.frozen import FrozenGenerator
from .bitstream import LayerStrings
from .entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional
from .layers import layer_groups
from .transformer import CrossLayerEntropyTransformer, HyperDecoder, HyperEncoder

SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
MEAN_GRID = 256  # default ``mean_grid``: coded means are multiples of 1/256 of a quantisation step
CODING_DTYPE = torch.float64  # the entropy-parameter network of the coding path runs in this dtype, on the CPU


def scale_table() -> torch.Tensor:
    """CompressAI's 64 log-spaced Gaussian scales 0.11 ... 256 that index the CDF tables."""
    return torch.exp(torch.linspace(torch.log(torch.tensor(SCALE_MIN)), torch.log(torch.tensor(SCALE_MAX)),
                                    SCALE_LEVELS))


def round_straight_through(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` forward, identity gradient backward."""
    return x + (torch.round(x) - x).detach()


def round_to_grid(x: torch.Tensor, grid: int) -> torch.Tensor:
    """``round(x * grid) / grid`` (exact for a power-of-two ``grid``)."""
    return torch.round(x * grid) / grid


def hash_tensors(digest: Any, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Feed each name and tensor into ``digest`` (a hashlib object); floating tensors are widened to float64 first
    (exactly), so a float64 copy of a model hashes like the model."""
    for key, value in named_tensors:
        digest.update(key.encode())
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.to(torch.float64)
        digest.update(value.clone().numpy().tobytes())  # a copy: numpy() pins storage


@dataclass
class CodingChoice:
    """What the coding path decides for one layer of one image (see the module docstring).

    ``means`` [1, n_k, C] on the mean grid and ``indexes`` [1, n_k, C] (int32 scale-table indexes), both on the
    CPU; ``raw_means``, ``raw_scales``: the float64 values they were chosen from; ``mean_margin``: the smallest
    distance of a mean, before rounding, to a rounding boundary, in grid steps (0.5 = as far as possible);
    ``scale_margin``: the smallest ``|log(scale) - log(threshold)|`` over the scales
    and the scale-table thresholds (0.0 when margins were not asked for).
    """

    means: torch.Tensor
    indexes: torch.Tensor
    mean_margin: float = 0.0
    scale_margin: float = 0.0
    raw_means: torch.Tensor | None = None
    raw_scales: torch.Tensor | None = None


@dataclass
class CodingStep:
    """One layer of one image as :meth:`ScalableFaceCodec.compress_tokens` coded it (its ``trace``): the exact
    inputs of the entropy-parameter network (ẑ of layers 1..layer, ŷ of the layers before) and the choice made."""

    image: int
    layer: int
    z_hat: torch.Tensor
    y_hat_before: torch.Tensor
    choice: CodingChoice


class TokenLinear(nn.Module):
    """A separate affine map per style vector: [B, n, in] -> [B, n, out] (n = vectors used, a prefix or a
    selection given by ``positions``)."""

    def __init__(self, n_tokens: int, in_channels: int, out_channels: int, gain: float = 1.0):
        super().__init__()
        if in_channels == out_channels:
            weight = torch.zeros(n_tokens, in_channels, out_channels)
            weight.diagonal(dim1=1, dim2=2).fill_(gain)  # gain * identity per vector
        else:
            weight = torch.randn(n_tokens, in_channels, out_channels).mul_(gain / in_channels ** 0.5)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(n_tokens, out_channels))

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = (self.weight, self.bias) if positions is None else (self.weight[positions], self.bias[positions])
        return torch.einsum("bnc,ncd->bnd", x, weight) + bias


# CompressAI buffers sized by update(): their shapes in a file differ from a fresh codec's
ENTROPY_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


@dataclass
class CodecOutput:
    """What :meth:`ScalableFaceCodec.forward` returns (one entry per scalable layer in the lists).

    ``w``: the encoder's W+; ``y``: style tokens; ``y_hat``: quantised tokens (all layers);
    ``w_hat[k-1]``: W+ decoded from layers 1..k (the other vectors = w_avg); ``likelihoods[k-1]``: ``{"z", "y"}``
    likelihood tensors of layer k (their bits are layer k's rate); ``means``, ``scales``: Gaussian parameters.
    """

    w: torch.Tensor
    y: torch.Tensor
    y_hat: torch.Tensor
    w_hat: list[torch.Tensor]
    likelihoods: list[dict[str, torch.Tensor]]
    means: torch.Tensor
    scales: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)

    def layer_bits(self) -> torch.Tensor:
        """Estimated bits of each layer per image, [B, K] (from the likelihoods)."""
        return torch.stack([sum(-torch.log2(t).flatten(1).sum(1) for t in layer.values())
                            for layer in self.likelihoods], dim=1)


class ScalableFaceCodec(nn.Module):
    """Scalable face codec over a frozen StyleGAN2 prior (see the module docstring).

    Args:
        generator: the frozen generator (the receiver must hold the same one).
        encoder: a :class:`LatentEncoder` (pSp ``GradualStyleEncoder``) predicting W+ for ``generator``.
        layer_split: grouping of the style vectors into layers (:func:`~.layers.layer_groups`).
        code_channels: channels per style token (default: the generator's ``style_dim``).
        hyper_channels: hyper-latent channels per style token.
        dim, depth, heads: width, blocks and heads of the three transformers.
        quantization_step: initial quantisation step in W units (the analysis starts as ``(w - w_avg) / step``).
        mean_grid: coded means are multiples of ``1 / mean_grid`` quantisation steps (a power of two; see the
            module docstring). With 256 a mean is off by at most 1/512 of a step (the demo codec's file rates moved
            by under 0.1 %) and a grid step is many orders of magnitude above the float64 noise of the network.
    """

    def __init__(self, generator: FrozenGenerator, encoder: LatentEncoder,
                 layer_split: str | Sequence[int] = "resolution", code_channels: int | None = None,
                 hyper_channels: int = 32, dim: int = 256, depth: int = 2, heads: int = 4,
                 quantization_step: float = 0.25, mean_grid: int = MEAN_GRID):
        super().__init__()
        if not isinstance(generator, FrozenGenerator):
            raise TypeError(f"generator must be a FrozenGenerator, got {type(generator).__name__}")
        if (encoder.n_styles, encoder.style_dim) != (generator.n_latent, generator.style_dim):
            raise ValueError(f"the encoder predicts [{encoder.n_styles}, {encoder.style_dim}] codes but the "
                             f"generator takes W+ [{generator.n_latent}, {generator.style_dim}]")
        if quantization_step <= 0:
            raise ValueError(f"quantization_step must be positive, got {quantization_step}")
        if isinstance(mean_grid, bool) or not isinstance(mean_grid, int) or mean_grid < 1 or \
                mean_grid & (mean_grid - 1) or mean_grid > 2**16:
            raise ValueError(f"mean_grid must be a power of two in 1..65536, got {mean_grid!r}")
        n, style_dim = generator.n_latent, generator.style_dim
        channels = int(code_channels or style_dim)
        self.generator = generator
        self.encoder = encoder
        self.groups = layer_groups(n, layer_split if isinstance(layer_split, str) else list(layer_split))
        self.config = dict(layer_split=layer_split if isinstance(layer_split, str) else list(layer_split),
                           code_channels=channels, hyper_channels=hyper_channels, dim=dim, depth=depth, heads=heads,
                           quantization_step=quantization_step, mean_grid=mean_grid)
        layer_ids = torch.tensor([k for k, group in enumerate(self.groups) for _ in group])
        self.register_buffer("layer_ids", layer_ids, persistent=False)
        self.analysis = TokenLinear(n, style_dim, channels, 1.0 / quantization_step)
        self.synthesis = TokenLinear(n, channels, style_dim, quantization_step)
        self.hyper_encoder = HyperEncoder(channels, hyper_channels, dim, n, depth, heads)
        self.hyper_decoder = HyperDecoder(hyper_channels, dim, n, depth, heads)
        self.entropy_transformer = CrossLayerEntropyTransformer(channels, dim, n, depth, heads)
        self.hyper_bottlenecks = nn.ModuleList(EntropyBottleneck(hyper_channels) for _ in self.groups)
        self.gaussian = GaussianConditional(None)
        self._fingerprint: bytes | None = None
        self._coding_network: tuple[tuple, nn.ModuleDict] | None = None
        self._tables_source: bytes | None = None  # table_source_digest() when the CDF tables were built / loaded

    # ------------------------------------------------------------------ shape
    @property
    def n_layers(self) -> int:
        return len(self.groups)

    @property
    def n_latent(self) -> int:
        return self.generator.n_latent

    @property
    def channels(self) -> int:
        return self.config["code_channels"]

    def layer_end(self, layer: int) -> int:
        """Number of style vectors held by layers 1..``layer``."""
        return self.groups[layer - 1][-1] + 1

    def _check_layers(self, layers: int | None) -> int:
        layers = self.n_layers if layers is None else int(layers)
        if not 1 <= layers <= self.n_layers:
            raise ValueError(f"layers must be in 1..{self.n_layers}, got {layers}")
        return layers

    # ------------------------------------------------------------------ sender side
    def encode_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [-1, 1] -> (W+, style tokens y)."""
        w = self.encoder(images)
        return w, self.analysis(w - self.encoder.latent_avg)

    def encode_tokens_alone(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode_tokens` one image at a time: the tokens a stream is coded from, so that an image's stream
        never depends on what else was in the batch (batched convolutions may differ in the last bits, and a
        rounding downstream turns that into a different symbol)."""
        pairs = [self.encode_tokens(images[i:i + 1]) for i in range(images.shape[0])]
        return torch.cat([w for w, _ in pairs]), torch.cat([y for _, y in pairs])

    def synthesize(self, y_hat: torch.Tensor) -> torch.Tensor:
        """Decoded tokens of the first ``y_hat.shape[1]`` style vectors -> full W+ (the rest = w_avg)."""
        b, m = y_hat.shape[:2]
        latent_avg = self.encoder.latent_avg
        w_hat = latent_avg.expand(b, -1, -1)
        if m == 0:
            return w_hat.clone()
        decoded = latent_avg[:m] + self.synthesis(y_hat, torch.arange(m, device=y_hat.device))
        return torch.cat([decoded, w_hat[:, m:]], dim=1)

    def entropy_parameters(self, z_hat_prefix: torch.Tensor, y_hat_before: torch.Tensor, layer: int,
                           network: nn.ModuleDict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scales) [B, n_k, C] of layer ``layer``'s tokens from ẑ of layers 1..layer and ŷ of layers
        1..layer-1 (exactly what a receiver holding those layers has), computed by this codec's hyper-decoder and
        entropy transformer or by ``network`` (:meth:`coding_network`'s copy of them)."""
        hyper_decoder = self.hyper_decoder if network is None else network["hyper_decoder"]
        transformer = self.entropy_transformer if network is None else network["entropy_transformer"]
        start, end = self.groups[layer - 1][0], self.layer_end(layer)
        features = hyper_decoder(z_hat_prefix[:, :end], self.layer_ids.to(z_hat_prefix.device))[:, start:end]
        positions = torch.arange(start, device=features.device)
        return transformer(features, y_hat_before[:, :start], positions)

    def forward(self, images: torch.Tensor,
                tokens: tuple[torch.Tensor, torch.Tensor] | None = None) -> CodecOutput:
        """Training / evaluation pass over all layers (noise in training, rounding in eval). ``tokens``: the
        images' :meth:`encode_tokens` output when the caller already has it."""
        w, y = self.encode_tokens(images) if tokens is None else tokens
        z = self.hyper_encoder(y, self.layer_ids)
        z_hats, y_hats, likelihoods, w_hats, all_means, all_scales = [], [], [], [], [], []
        for layer, group in enumerate(self.groups, start=1):
            start, end = group[0], group[-1] + 1
            z_hat, z_likelihood = self.hyper_bottlenecks[layer - 1](z[:, start:end].transpose(1, 2))
            z_hats.append(z_hat.transpose(1, 2))
            y_before = torch.cat(y_hats, dim=1) if y_hats else y[:, :0]
            means, scales = self.entropy_parameters(torch.cat(z_hats, dim=1), y_before, layer)
            means = means + (round_to_grid(means, self.config["mean_grid"]) - means).detach()
            y_layer = y[:, start:end]
            _, y_likelihood = self.gaussian(y_layer.transpose(1, 2), scales.transpose(1, 2),
                                            means.transpose(1, 2))
            y_hats.append(round_straight_through(y_layer - means) + means)
            likelihoods.append({"z": z_likelihood, "y": y_likelihood})
            w_hats.append(self.synthesize(torch.cat(y_hats, dim=1)))
            all_means.append(means)
            all_scales.append(scales)
        return CodecOutput(w=w, y=y, y_hat=torch.cat(y_hats, dim=1), w_hat=w_hats, likelihoods=likelihoods,
                           means=torch.cat(all_means, dim=1), scales=torch.cat(all_scales, dim=1))

    def decode_images(self, w_hat: torch.Tensor) -> torch.Tensor:
        """W+ -> images in [-1, 1] at the generator's resolution (stored noise, deterministic)."""
        return self.generator(w_hat, space="w", noise="const")

    # ------------------------------------------------------------------ entropy coding
    def aux_loss(self) -> torch.Tensor:
        """Sum of the hyper-latent bottlenecks' quantile losses (fits their ``quantiles`` only)."""
        return sum(b.loss() for b in self.hyper_bottlenecks)

    def update(self, force: bool = False) -> bool:
        """Build the CDF tables the range coder needs (after training, before any compression). Returns
        whether anything changed."""
        with torch.inference_mode(False), torch.no_grad():  # Lightning's eval hooks run in inference mode; tables
            # made there could never be loaded into again
            device = self.gaussian.lower_bound_scale.bound.device
            updated = self.gaussian.update_scale_table(scale_table().to(device), force=force)
            for bottleneck in self.hyper_bottlenecks:
                updated |= bottleneck.update(force=force)
        self._fingerprint = None
        self._tables_source = self.table_source_digest()
        return updated

    def table_source_digest(self) -> bytes:
        """Digest of everything the CDF tables are built from: the entropy models' parameters and buffers except
        the tables themselves (the hyper bottlenecks' quantiles and density parameters, the Gaussian's bounds)."""
        digest = hashlib.sha256()
        owners = [(f"hyper_bottlenecks.{i}.", b) for i, b in enumerate(self.hyper_bottlenecks)]
        for prefix, owner in [*owners, ("gaussian.", self.gaussian)]:
            hash_tensors(digest, ((prefix + key, value) for key, value in sorted(owner.state_dict().items())
                                  if key.rsplit(".", 1)[-1] not in ENTROPY_TABLE_BUFFERS))
        return digest.digest()

    @property
    def tables_are_current(self) -> bool:
        """Whether the CDF tables exist and were built from (or loaded with) the entropy models' present weights:
        False after any change to a bottleneck's quantiles or density parameters since :meth:`update`."""
        return self.is_updated and self._tables_source == self.table_source_digest()

    @property
    def is_updated(self) -> bool:
        """Whether the CDF tables exist (``update()`` ran)."""
        return self.gaussian._quantized_cdf.numel() > 0 and all(
            b._quantized_cdf.numel() > 0 for b in self.hyper_bottlenecks)

    def _require_cdfs(self) -> None:
        if not self.is_updated:
            raise RuntimeError("the codec's CDF tables are not built: call codec.update() after training (the "
                               "CodecModule does this at the end of fit and when a checkpoint is loaded)")

    # ------------------------------------------------------------------ coding path (see the module docstring)
    def coding_network(self) -> nn.ModuleDict:
        """A float64 CPU copy of the hyper-decoder and the entropy transformer (keys ``hyper_decoder``,
        ``entropy_transformer``), the network both sides choose the coding parameters with. Cached; rebuilt when
        any of their tensors changed (in-place updates included) or moved."""
        modules = (self.hyper_decoder, self.entropy_transformer)
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device)
                    for module in modules for t in itertools.chain(module.parameters(), module.buffers()))
        if self._coding_network is None or self._coding_network[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # usable outside Lightning's inference mode too
                network = nn.ModuleDict({"hyper_decoder": copy.deepcopy(self.hyper_decoder),
                                         "entropy_transformer": copy.deepcopy(self.entropy_transformer)})
                network = network.to("cpu", CODING_DTYPE).eval().requires_grad_(False)
            self._coding_network = (key, network)
        return self._coding_network[1]

    def coding_choice(self, means: torch.Tensor, scales: torch.Tensor, margins: bool = False) -> CodingChoice:
        """float64 (means, scales) -> means on the grid and scale-table indexes (index = number of table
        thresholds, the entries but the last, strictly below the scale: CompressAI's rule), with the smallest
        distances to a rounding boundary when ``margins``."""
        grid = self.config["mean_grid"]
        scaled = means * grid
        rounded = torch.round(scaled)
        thresholds = self.gaussian.scale_table[:-1].detach().to("cpu", CODING_DTYPE)
        indexes = torch.searchsorted(thresholds, scales.contiguous()).to(torch.int32)
        choice = CodingChoice(rounded / grid, indexes, raw_means=means, raw_scales=scales)
        if margins and means.numel():
            choice.mean_margin = float((0.5 - (scaled - rounded).abs()).min())
            choice.scale_margin = float((scales.log()[..., None] - thresholds.log()).abs().min())
        return choice

    def coding_parameters(self, z_hat: torch.Tensor, y_hat_before: torch.Tensor, layer: int,
                          network: nn.ModuleDict | None = None, margins: bool = False) -> CodingChoice:
        """The coding path's :meth:`entropy_parameters`: float64 CPU inputs (ẑ of layers 1..layer, ŷ of layers
        before it, both exact) through :meth:`coding_network`, then :meth:`coding_choice`."""
        network = self.coding_network() if network is None else network
        means, scales = self.entropy_parameters(z_hat, y_hat_before, layer, network)
        return self.coding_choice(means, scales, margins)

    def decode_hyper(self, layer: int, string: bytes) -> torch.Tensor:
        """Layer ``layer``'s hyper string -> ẑ [1, n_k, hyper_channels] in float64 on the CPU: the decoded integer
        symbols plus the bottleneck medians, added in float64 (exact)."""
        bottleneck = self.hyper_bottlenecks[layer - 1]
        size = (1, bottleneck._quantized_cdf.size(0), len(self.groups[layer - 1]))
        indexes = bottleneck._build_indexes(size).to(bottleneck._quantized_cdf.device)
        symbols = EntropyModel.decompress(bottleneck, [string], indexes, CODING_DTYPE).cpu()
        medians = bottleneck.quantiles[:, 0, 1].detach().to("cpu", CODING_DTYPE)
        return (symbols + medians[None, :, None]).transpose(1, 2)

    @torch.no_grad()
    def compress(self, images: torch.Tensor, tokens: tuple[torch.Tensor, torch.Tensor] | None = None
                 ) -> tuple[list[LayerStrings], list[torch.Tensor]]:
        """Entropy-code a batch, each image exactly as if it were coded alone. Returns, per image, its
        :class:`LayerStrings` and its quantised symbols ``round(y - μ)`` [n_latent, C] (for checks; the receiver
        decodes exactly these). ``tokens``: the images' :meth:`encode_tokens_alone` output when the caller
        already has it."""
        self._require_cdfs()
        _, y = self.encode_tokens_alone(images) if tokens is None else tokens
        return self.compress_tokens(y)

    @torch.no_grad()
    def compress_tokens(self, y: torch.Tensor, trace: list[CodingStep] | None = None
                        ) -> tuple[list[LayerStrings], list[torch.Tensor]]:
        """Entropy-code style tokens ``y`` [B, n_latent, C] (one stream per row; see :meth:`compress`). With a
        ``trace`` list, append a :class:`CodingStep` (margins included) for every image and layer."""
        self._require_cdfs()
        network = self.coding_network()
        results, all_symbols = [], []
        for i in range(y.shape[0]):  # one image at a time, as the receiver decodes
            z = self.hyper_encoder(y[i:i + 1], self.layer_ids)
            y_exact = y[i:i + 1].detach().to("cpu", CODING_DTYPE)
            hyper, strings, z_hats, y_hats, symbols = [], [], [], [], []
            for layer, group in enumerate(self.groups, start=1):
                start, end = group[0], group[-1] + 1
                hyper.append(self.hyper_bottlenecks[layer - 1].compress(z[:, start:end].transpose(1, 2))[0])
                z_hats.append(self.decode_hyper(layer, hyper[-1]))  # what the receiver will have
                y_before = torch.cat(y_hats, dim=1) if y_hats else y_exact[:, :0]
                z_prefix = torch.cat(z_hats, dim=1)
                choice = self.coding_parameters(z_prefix, y_before, layer, network, trace is not None)
                q = torch.round(y_exact[:, start:end] - choice.means)
                strings.append(self.gaussian.compress(q.transpose(1, 2), choice.indexes.transpose(1, 2))[0])
                symbols.append(q[0].to(torch.int32))
                y_hats.append(q + choice.means)
                if trace is not None:
                    trace.append(CodingStep(i, layer, z_prefix, y_before, choice))
            results.append(LayerStrings(hyper, strings))
            all_symbols.append(torch.cat(symbols, dim=0).to(y.device))
        return results, all_symbols

    @torch.no_grad()
    def decompress(self, strings: LayerStrings, layers: int | None = None,
                   return_symbols: bool = False):
        """One image's strings (at least ``layers`` of them) -> decoded W+ [1, n_latent, D] from layers
        1..``layers`` (default: all the strings hold); with ``return_symbols`` also the symbols [m, C] (int32)."""
        self._require_cdfs()
        layers = self._check_layers(len(strings) if layers is None else layers)
        if layers > len(strings):
            raise ValueError(f"asked for {layers} layers but the stream holds {len(strings)}")
        network = self.coding_network()
        z_hats, y_hats, symbols = [], [], []
        for layer in range(1, layers + 1):
            z_hats.append(self.decode_hyper(layer, strings.hyper[layer - 1]))
            y_before = (torch.cat(y_hats, dim=1) if y_hats
                        else torch.zeros(1, 0, self.channels, dtype=CODING_DTYPE))
            choice = self.coding_parameters(torch.cat(z_hats, dim=1), y_before, layer, network)
            q = self.gaussian.decompress([strings.symbols[layer - 1]], choice.indexes.transpose(1, 2).to(
                self.gaussian._quantized_cdf.device), CODING_DTYPE).cpu().transpose(1, 2)
            symbols.append(q[0].to(torch.int32))
            y_hats.append(q + choice.means)
        weight = self.synthesis.weight
        w_hat = self.synthesize(torch.cat(y_hats, dim=1).to(device=weight.device, dtype=weight.dtype))
        return (w_hat, torch.cat(symbols, dim=0).to(weight.device)) if return_symbols else w_hat

    # ------------------------------------------------------------------ identity of the model
    def decoder_state(self) -> dict[str, torch.Tensor]:
        """Everything the receiver computes with: generator, w_avg, synthesis, hyper-decoder, entropy
        transformer and entropy models (CDF tables included)."""
        state: dict[str, torch.Tensor] = {"latent_avg": self.encoder.latent_avg}
        for name in ("generator", "synthesis", "hyper_decoder", "entropy_transformer", "hyper_bottlenecks",
                     "gaussian"):
            for key, value in getattr(self, name).state_dict().items():
                state[f"{name}.{key}"] = value
        return state

    def fingerprint(self) -> bytes:
        """8-byte digest of the receiver-side model (:meth:`decoder_state`, floating tensors widened to float64,
        and the layout); a stream carries it so that a different model refuses it. Cached until :meth:`update` or
        :meth:`invalidate_fingerprint`."""
        if self._fingerprint is None:
            digest = hashlib.sha256(repr(sorted((k, v) for k, v in self.config.items())).encode())
            digest.update(repr(self.groups).encode())
            hash_tensors(digest, sorted(self.decoder_state().items()))
            self._fingerprint = digest.digest()[:8]
        return self._fingerprint

    def invalidate_fingerprint(self) -> None:
        self._fingerprint = None

    # ------------------------------------------------------------------ state dicts with CDF tables
    def resize_entropy_buffers(self, state: dict[str, torch.Tensor], prefix: str = "") -> None:
        """Give the CDF buffers the shapes they have in ``state`` (they are empty until ``update()``), so that
        a strict ``load_state_dict`` of an updated codec works (CompressAI's recipe)."""
        owners = {f"{prefix}hyper_bottlenecks.{i}.": b for i, b in enumerate(self.hyper_bottlenecks)}
        owners[f"{prefix}gaussian."] = self.gaussian
        for owner_prefix, owner in owners.items():
            for name in ENTROPY_TABLE_BUFFERS:
                buffer, incoming = getattr(owner, name, None), state.get(owner_prefix + name)
                if isinstance(buffer, torch.Tensor) and isinstance(incoming, torch.Tensor):
                    buffer.resize_(incoming.shape)
        self._fingerprint = None

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a state (CDF buffers resized first). Tables loaded with their weights count as current for
        :attr:`tables_are_current` (a codec file's tables are the sender's, kept bit for bit)."""
        self.resize_entropy_buffers(dict(state_dict))
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._tables_source = self.table_source_digest() if self.is_updated else None
        return result
