"""Cross-precision check of the codec's coding path: streams written by one set-up decode to the very same symbols in
another (see the cross-device section of :mod:`.model`).

:func:`cross_precision_check` encodes style tokens with the codec as it is (its dtype, ``sender_threads`` intra-op
threads), decodes every stream with a float64 copy of the codec on ``receiver_threads`` threads (and with the
codec itself on those threads), and compares every symbol. It also measures how safe the decisions were:

- the smallest distance of any mean (before rounding) to a rounding boundary of the mean grid, in grid steps, and of
  any scale to a scale-table threshold, in ``|log|`` units (:class:`~.model.CodingChoice` margins);
- the float64 noise: the largest difference between the values (raw means and scales) the sender computed and the
  ones the float64 receiver computes from the same inputs; a decision could only flip where a margin is below it;
- for comparison, the float32 noise and how many decisions the codec's own float32 entropy model would have taken
  differently from the same inputs (what streams of format version 1 were exposed to).

:func:`random_tokens` gives style tokens of random latents (no image encoder needed): W+ from the generator's mapping
network, half with one w per image and half with an independent w per style vector (style mixing).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from .model import CODING_DTYPE, CodingStep, ScalableFaceCodec, round_to_grid


@dataclass
class CrossPrecisionReport:
    """What :func:`cross_precision_check` measured (symbols compared over every layer of every stream)."""

    streams: int
    symbols: int
    mismatched_float64: int
    mismatched_same_dtype: int
    fingerprints_match: bool
    min_mean_margin: float
    min_scale_margin: float
    float64_noise: float
    float32_noise: float
    float32_flips: int

    def as_rows(self) -> list[tuple[str, str]]:
        """(quantity, value) rows for a table."""
        return [("streams", f"{self.streams}"), ("symbols compared", f"{self.symbols:,}"),
                ("symbols differing (float64 receiver)", f"{self.mismatched_float64}"),
                ("symbols differing (same-dtype receiver)", f"{self.mismatched_same_dtype}"),
                ("fingerprints equal", f"{self.fingerprints_match}"),
                ("min mean margin (grid steps, max 0.5)", f"{self.min_mean_margin:.3g}"),
                ("min scale margin (|log scale - log threshold|)", f"{self.min_scale_margin:.3g}"),
                ("float64 noise (max |sender - receiver| of raw means/scales)", f"{self.float64_noise:.3g}"),
                ("float32 noise (max |float32 - float64|)", f"{self.float32_noise:.3g}"),
                ("decisions the float32 entropy model takes differently", f"{self.float32_flips}")]


@torch.no_grad()
def random_tokens(codec: ScalableFaceCodec, n: int, seed: int = 0) -> torch.Tensor:
    """Style tokens [n, n_latent, C] of ``n`` random latents (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    frozen, n_latent = codec.generator, codec.n_latent
    half = n // 2
    single = frozen.sample_w(n - half, generator=generator)[:, None].expand(-1, n_latent, -1)
    mixed = frozen.sample_w(half * n_latent, generator=generator).reshape(half, n_latent, -1)
    w = torch.cat([single, mixed]).to(codec.encoder.latent_avg)
    return codec.analysis(w - codec.encoder.latent_avg)


class _Threads:
    """``with _Threads(n):`` runs with ``n`` intra-op threads, restoring the previous count afterwards."""

    def __init__(self, threads: int):
        self.threads, self.saved = threads, None

    def __enter__(self):
        self.saved = torch.get_num_threads()
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.saved)


def _float32_decisions(codec: ScalableFaceCodec, step: CodingStep) -> tuple[torch.Tensor, torch.Tensor,
                                                                             torch.Tensor, torch.Tensor]:
    """(means, scales, mean decisions, scale indexes) from the codec's own (float32) entropy model on the step's
    inputs: the rule of format version 1, for comparison."""
    parameter = codec.synthesis.weight
    means, scales = codec.entropy_parameters(step.z_hat.to(parameter), step.y_hat_before.to(parameter), step.layer)
    indexes = codec.gaussian.build_indexes(scales).cpu()
    means, scales = means.to("cpu", CODING_DTYPE), scales.to("cpu", CODING_DTYPE)
    return means, scales, round_to_grid(means, codec.config["mean_grid"]), indexes


@torch.no_grad()
def cross_precision_check(codec: ScalableFaceCodec, tokens: torch.Tensor, sender_threads: int = 2,
                          receiver_threads: int = 1) -> CrossPrecisionReport:
    """Encode ``tokens`` [B, n_latent, C] with ``codec`` on ``sender_threads`` threads, decode with a float64 copy
    and with ``codec`` on ``receiver_threads`` threads, and measure (see the module docstring). ``codec`` must be
    updated and in eval mode; it is not changed."""
    trace: list[CodingStep] = []
    with _Threads(sender_threads):
        strings, sent = codec.compress_tokens(tokens, trace)
    receiver = copy.deepcopy(codec).to(CODING_DTYPE).eval()
    receiver.invalidate_fingerprint()
    mismatched_float64 = mismatched_same = symbols = 0
    float64_noise = float32_noise = 0.0
    float32_flips = 0
    with _Threads(receiver_threads):
        for image, layer_strings in enumerate(strings):
            _, received = receiver.decompress(layer_strings, return_symbols=True)
            _, same = codec.decompress(layer_strings, return_symbols=True)
            expected = sent[image].cpu()
            symbols += expected.numel()
            mismatched_float64 += int((received.cpu() != expected).sum())
            mismatched_same += int((same.cpu() != expected).sum())
        network = receiver.coding_network()
        for step in trace:
            again = receiver.coding_parameters(step.z_hat, step.y_hat_before, step.layer, network)
            float64_noise = max(float64_noise, float((again.raw_means - step.choice.raw_means).abs().max()),
                                float((again.raw_scales - step.choice.raw_scales).abs().max()))
            means32, scales32, mean_decisions, indexes = _float32_decisions(codec, step)
            float32_noise = max(float32_noise, float((means32 - step.choice.raw_means).abs().max()),
                                float((scales32 - step.choice.raw_scales).abs().max()))
            float32_flips += int((mean_decisions != step.choice.means).sum() +
                                 (indexes != step.choice.indexes).sum())
    return CrossPrecisionReport(
        streams=len(strings), symbols=symbols, mismatched_float64=mismatched_float64,
        mismatched_same_dtype=mismatched_same,
        fingerprints_match=receiver.fingerprint() == codec.fingerprint(),
        min_mean_margin=min(step.choice.mean_margin for step in trace),
        min_scale_margin=min(step.choice.scale_margin for step in trace),
        float64_noise=float64_noise, float32_noise=float32_noise, float32_flips=float32_flips)
