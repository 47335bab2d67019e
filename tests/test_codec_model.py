"""The scalable face codec's model: layer grouping, block-causal attention, exact entropy-coded round trips,
progressive (layered) decoding, rates, the training signal and the receiver-side fingerprint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stylegan_lightning.codec import CodecOutput, LayerStrings, ScalableFaceCodec, layer_groups, layer_name
from stylegan_lightning.codec.layers import style_resolution
from stylegan_lightning.codec.model import TokenLinear
from stylegan_lightning.codec.transformer import (
    CrossLayerEntropyTransformer,
    HyperDecoder,
    HyperEncoder,
    block_causal_mask,
)
from model_helpers import tiny_codec  # noqa: E402  (test helper beside this file)

SIZE = 32
PIXELS = SIZE * SIZE

pytestmark = pytest.mark.usefixtures("single_thread")


# ---------------------------------------------------------------------------------------------- helpers
def random_images(n: int, seed: int = 7) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def main_parameters(codec: ScalableFaceCodec) -> list[torch.nn.Parameter]:
    return [p for n, p in codec.named_parameters() if p.requires_grad and not n.endswith(".quantiles")]


def train_steps(codec: ScalableFaceCodec, images: torch.Tensor, steps: int, lr: float = 1e-2) -> None:
    """A few optimiser steps on rate + W+ distortion (cheap: no synthesis)."""
    codec.train()
    optimizer = torch.optim.Adam(main_parameters(codec), lr=lr)
    for _ in range(steps):
        out = codec(images)
        loss = 0.01 * out.layer_bits().sum(1).mean() / PIXELS + 10 * F.mse_loss(out.w_hat[-1], out.w)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    codec.invalidate_fingerprint()


@pytest.fixture(scope="module")
def trained_codec():
    """A codec after 15 optimiser steps, in eval mode with its CDF tables built."""
    codec = tiny_codec(seed=3, perturb=True)
    train_steps(codec, random_images(4, seed=5), steps=15)
    codec.eval()
    codec.update(force=True)
    return codec


# ---------------------------------------------------------------------------------------------- layers
def test_style_resolution_and_layer_names():
    assert [style_resolution(j) for j in range(18)] == [4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256,
                                                        512, 512, 1024, 1024]
    assert style_resolution(0) == 4 and style_resolution(17) == 1024
    assert [layer_name(k) for k in (1, 2, 3, 4, 0)] == ["basic", "middle", "enhanced", "layer4", "layer0"]


def test_resolution_split():
    assert layer_groups(18) == [[0, 1, 2, 3], [4, 5, 6, 7], list(range(8, 18))]
    assert layer_groups(18, "resolution") == layer_groups(18)
    assert layer_groups(14) == [[0, 1, 2, 3], [4, 5, 6, 7], list(range(8, 14))]
    assert layer_groups(12) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert layer_groups(10) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize("n_latent, expected", [(8, [[0, 1, 2], [3, 4], [5, 6, 7]]), (6, [[0, 1], [2, 3], [4, 5]])])
def test_resolution_split_falls_back_to_even(n_latent, expected):
    groups = layer_groups(n_latent)  # 32 px / 16 px generators have no 64 px band
    assert groups == expected == layer_groups(n_latent, "even")
    assert len(groups) == 3 and all(groups)
    assert sum(groups, []) == list(range(n_latent))  # contiguous, in order, covering everything


def test_psp_even_and_explicit_splits():
    assert layer_groups(18, "psp") == [[0, 1, 2], [3, 4, 5, 6], list(range(7, 18))]
    assert layer_groups(8, "psp") == [[0, 1, 2], [3, 4, 5, 6], [7]]
    assert layer_groups(18, "even") == [list(range(0, 6)), list(range(6, 12)), list(range(12, 18))]
    assert layer_groups(18, [4, 8]) == [[0, 1, 2, 3], [4, 5, 6, 7], list(range(8, 18))]
    assert layer_groups(8, [5]) == [[0, 1, 2, 3, 4], [5, 6, 7]]  # 2 layers
    assert layer_groups(8, (2, 4, 6)) == [[0, 1], [2, 3], [4, 5], [6, 7]]  # 4 layers
    assert layer_groups(3, []) == [[0, 1, 2]]  # a single layer


@pytest.mark.parametrize("n_latent, split", [
    (8, [0, 4]), (8, [4, 4]), (8, [5, 3]), (8, [4, 8]), (8, [4, 9]), (8, [-1, 4]),
    (6, "psp"), (2, "resolution"), (2, "even"), (0, "even"), (0, [1]), (8, "unknown"),
])
def test_invalid_splits_raise(n_latent, split):
    with pytest.raises(ValueError):
        layer_groups(n_latent, split)


def test_codec_layout_follows_the_split():
    codec = tiny_codec(layer_split=[2, 4, 6])
    assert codec.n_layers == 4 and codec.groups == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert codec.layer_ids.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [codec.layer_end(k) for k in (1, 2, 3, 4)] == [2, 4, 6, 8]
    assert len(codec.hyper_bottlenecks) == 4


# ---------------------------------------------------------------------------------------------- attention
def test_block_causal_mask():
    mask = block_causal_mask(torch.tensor([0, 0, 1, 2]))
    expected = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    assert mask.dtype == torch.bool and torch.equal(mask, expected)


@pytest.mark.parametrize("depth", [1, 2])
def test_hyper_decoder_is_block_causal(depth):
    torch.manual_seed(0)
    layer_ids = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    decoder = HyperDecoder(hyper_channels=4, dim=32, n_tokens=8, depth=depth, heads=2).eval()
    z = torch.randn(2, 8, 4)
    with torch.no_grad():
        full = decoder(z, layer_ids)
        for end in (3, 5):  # layer 1, layers 1-2
            prefix = decoder(z[:, :end], layer_ids)
            assert prefix.shape == (2, end, 32)
            assert torch.allclose(prefix, full[:, :end], atol=1e-6)
        changed = z.clone()
        changed[:, 6] += 3.0  # a layer-3 token
        other = decoder(changed, layer_ids)
    assert torch.allclose(other[:, :5], full[:, :5], atol=1e-6)  # layers 1-2 do not see it
    assert (other[:, 5:] - full[:, 5:]).abs().amax(dim=(0, 2)).min() > 1e-3  # every layer-3 token does
    # a layer-2 token changes layers 2 and 3 but not layer 1
    changed = z.clone()
    changed[:, 3] -= 2.0
    with torch.no_grad():
        other = decoder(changed, layer_ids)
    assert torch.allclose(other[:, :3], full[:, :3], atol=1e-6)
    assert (other[:, 3:] - full[:, 3:]).abs().amax(dim=(0, 2)).min() > 1e-3


def test_hyper_encoder_is_block_causal():
    torch.manual_seed(1)
    layer_ids = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    encoder = HyperEncoder(channels=6, hyper_channels=4, dim=16, n_tokens=8, depth=2, heads=2).eval()
    y = torch.randn(1, 8, 6)
    changed = y.clone()
    changed[:, 5:] = torch.randn(1, 3, 6)
    with torch.no_grad():
        a, b = encoder(y, layer_ids), encoder(changed, layer_ids)
    assert a.shape == (1, 8, 4)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6) and not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-3)


def test_cross_layer_entropy_transformer():
    torch.manual_seed(2)
    model = CrossLayerEntropyTransformer(channels=6, dim=16, n_tokens=8, depth=1, heads=2).eval()
    features = torch.randn(2, 3, 16)
    with torch.no_grad():
        means, scales = model(features, torch.zeros(2, 0, 6), torch.arange(0))
    # zero-initialised head: means 0, scales softplus(1)
    assert means.shape == scales.shape == (2, 3, 6)
    assert torch.equal(means, torch.zeros_like(means))
    assert torch.allclose(scales, torch.full_like(scales, math.log1p(math.e)), atol=1e-6)
    torch.nn.init.normal_(model.parameters_head.weight, std=0.5)
    context = torch.randn(2, 4, 6)
    with torch.no_grad():
        with_context = model(features, context, torch.arange(4))
        other_context = model(features, context + 1.0, torch.arange(4))
        no_context = model(features, torch.zeros(2, 0, 6), torch.arange(0))
    assert (with_context[1] > 0).all()
    assert not torch.allclose(with_context[0], other_context[0], atol=1e-4)  # the earlier layers are used
    assert not torch.allclose(with_context[0], no_context[0], atol=1e-4)


# ---------------------------------------------------------------------------------------------- building blocks
def test_token_linear():
    torch.manual_seed(3)
    layer = TokenLinear(n_tokens=5, in_channels=3, out_channels=4)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 5, 3)
    expected = torch.stack([x[:, n] @ layer.weight[n] + layer.bias[n] for n in range(5)], dim=1)
    assert torch.allclose(layer(x), expected, atol=1e-6)
    positions = torch.tensor([4, 1])
    selected = layer(x[:, [4, 1]], positions)
    assert torch.allclose(selected, expected[:, [4, 1]], atol=1e-6)
    square = TokenLinear(n_tokens=3, in_channels=4, out_channels=4, gain=2.5)
    v = torch.randn(2, 3, 4)
    assert torch.allclose(square(v), 2.5 * v)  # identity times the gain at initialisation


def test_analysis_and_synthesis_start_as_quantisation_step():
    codec = tiny_codec(quantization_step=0.5)
    images = random_images(2)
    with torch.no_grad():
        w, y = codec.encode_tokens(images)
        assert torch.allclose(y, (w - codec.encoder.latent_avg) / 0.5, atol=1e-5)
        w_hat = codec.synthesize(y)
        assert torch.allclose(w_hat, w, atol=1e-5)
        partial = codec.synthesize(y[:, :3])
    assert torch.allclose(partial[:, :3], w[:, :3], atol=1e-5)
    assert torch.equal(partial[:, 3:], codec.encoder.latent_avg[3:].expand(2, -1, -1))
    assert torch.equal(codec.synthesize(y[:, :0]), codec.encoder.latent_avg.expand(2, -1, -1))


def test_constructor_checks():
    codec = tiny_codec()
    with pytest.raises(TypeError):
        ScalableFaceCodec(codec.generator.generator, codec.encoder)
    with pytest.raises(ValueError):
        ScalableFaceCodec(codec.generator, codec.encoder, quantization_step=0.0)


# ---------------------------------------------------------------------------------------------- round trips
def _check_round_trip(codec: ScalableFaceCodec, images: torch.Tensor) -> None:
    strings, symbols = codec.compress(images)
    assert len(strings) == len(symbols) == images.shape[0]
    with torch.no_grad():
        batch = codec(images)
    for i, (s, sym) in enumerate(zip(strings, symbols)):
        assert isinstance(s, LayerStrings) and len(s) == codec.n_layers
        assert all(isinstance(b, bytes) and b for b in s.hyper + s.symbols)
        assert sym.shape == (codec.n_latent, codec.channels) and sym.dtype == torch.int32
        w_hat, decoded = codec.decompress(s, return_symbols=True)
        assert torch.equal(decoded, sym)
        assert w_hat.shape == (1, codec.n_latent, codec.generator.style_dim)
        with torch.no_grad():
            single = codec(images[i:i + 1])
        assert torch.allclose(w_hat, single.w_hat[-1], atol=1e-5)
        # the batched pass agrees up to a symbol that rounding flipped (batched convolutions differ in the last
        # bits); the streams do not depend on the batch (compress codes each image alone)
        assert (w_hat - batch.w_hat[-1][i:i + 1]).abs().mean() < 1e-2
        # the symbols are round(y - mu) of the eval pass: y_hat - mu
        assert torch.allclose(sym.float(), (single.y_hat - single.means)[0], atol=1e-4)
        for k in range(1, codec.n_layers):
            m = codec.layer_end(k)
            partial, partial_symbols = codec.decompress(s, layers=k, return_symbols=True)
            assert torch.equal(partial_symbols, sym[:m])
            assert torch.equal(partial[0, :m], w_hat[0, :m])
            assert torch.equal(partial[0, m:], codec.encoder.latent_avg[m:])
            assert torch.allclose(partial, single.w_hat[k - 1], atol=1e-5)
        # strings of fewer layers decode the same way
        cut = LayerStrings(s.hyper[:1], s.symbols[:1])
        assert torch.equal(codec.decompress(cut), codec.decompress(s, layers=1))


def test_exact_round_trip_at_initialisation():
    codec = tiny_codec().eval()
    codec.update(force=True)
    images = random_images(3)
    _check_round_trip(codec, images)


def test_exact_round_trip_non_trivial_symbols():
    codec = tiny_codec(seed=1, perturb=True)
    codec.update(force=True)
    images = random_images(3, seed=11)
    strings, symbols = codec.compress(images)
    # the check is meaningful: many different non-zero symbols, different streams per image
    assert all((s != 0).float().mean() > 0.3 and torch.unique(s).numel() > 5 for s in symbols)
    assert len({b"".join(s.symbols) for s in strings}) == 3
    _check_round_trip(codec, images)


def test_exact_round_trip_after_training(trained_codec):
    images = random_images(3, seed=12)
    _check_round_trip(trained_codec, images)
    _check_round_trip(trained_codec, images.flip(-1))


def test_compress_is_deterministic_and_per_image(trained_codec):
    images = random_images(3, seed=13)
    strings, _ = trained_codec.compress(images)
    again, _ = trained_codec.compress(images)
    alone, _ = trained_codec.compress(images[1:2])
    assert strings == again
    assert alone[0] == strings[1]  # an image codes the same whatever batch it is in


# ---------------------------------------------------------------------------------------------- rate
def test_layer_bits_formula():
    likelihoods = [{"z": torch.full((2, 4, 3), 0.5), "y": torch.full((2, 6, 3), 0.25)},
                   {"z": torch.full((2, 4, 2), 0.125), "y": torch.tensor([[[1.0, 0.5]] * 6, [[0.5, 0.5]] * 6])}]
    output = CodecOutput(w=torch.zeros(1), y=torch.zeros(1), y_hat=torch.zeros(1), w_hat=[], likelihoods=likelihoods,
                         means=torch.zeros(1), scales=torch.zeros(1))
    bits = output.layer_bits()
    # layer 1: 12 * 1 + 18 * 2 = 48; layer 2: 8 * 3 + (6 * 1 | 12 * 1)
    assert bits.shape == (2, 2)
    assert torch.allclose(bits, torch.tensor([[48.0, 30.0], [48.0, 36.0]]))


def test_layer_bits_of_a_forward_pass(trained_codec):
    images = random_images(2, seed=14)
    with torch.no_grad():
        output = trained_codec(images)
    bits = output.layer_bits()
    assert bits.shape == (2, trained_codec.n_layers)
    for k, layer in enumerate(output.likelihoods):
        assert set(layer) == {"z", "y"}
        n_k = len(trained_codec.groups[k])
        assert layer["z"].shape == (2, 4, n_k) and layer["y"].shape == (2, trained_codec.channels, n_k)
        for i in range(2):
            expected = sum(-math.log2(p) for t in layer.values() for p in t[i].double().flatten().tolist())
            assert bits[i, k].item() == pytest.approx(expected, rel=1e-4)


def test_file_bits_match_likelihood_bits(trained_codec):
    images = random_images(4, seed=15)
    strings, _ = trained_codec.compress(images)
    with torch.no_grad():
        likelihood_bits = trained_codec(images).layer_bits()
    gaps = []
    for i, s in enumerate(strings):
        for k in range(trained_codec.n_layers):
            file_bits = 8 * (len(s.hyper[k]) + len(s.symbols[k]))
            estimate = likelihood_bits[i, k].item()
            gaps.append(file_bits - estimate)
            # the range coder adds a few bytes per string (rANS64 flush: 8 bytes, 32-bit words)
            assert estimate - 16 <= file_bits <= 1.05 * estimate + 8 * 12 * 2, (i, k, file_bits, estimate)
    assert sum(gaps) / len(gaps) > 0  # on average the file costs more than the estimate, never much more


def test_compress_needs_update():
    codec = tiny_codec().eval()
    assert not codec.is_updated
    with pytest.raises(RuntimeError, match=r"update\(\)"):
        codec.compress(random_images(1))
    with pytest.raises(RuntimeError, match=r"update\(\)"):
        codec.decompress(LayerStrings([b"\0" * 4] * 3, [b"\0" * 4] * 3))
    assert codec.update() is True
    assert codec.is_updated
    assert codec.update() is False  # already built
    assert codec.update(force=True) is True


# ---------------------------------------------------------------------------------------------- training
def test_training_reduces_the_rate_distortion_loss():
    codec = tiny_codec(seed=5)
    frozen = codec.generator
    gen = torch.Generator().manual_seed(21)
    with torch.no_grad():
        images = frozen(frozen.sample_w(4, generator=gen), space="w")

    def objective(out):
        bits = out.layer_bits().sum(1).mean() / PIXELS
        return 0.01 * bits + F.mse_loss(codec.decode_images(out.w_hat[-1]), images)

    def evaluate():
        codec.eval()
        with torch.no_grad():
            return objective(codec(images)).item()

    initial = evaluate()
    generator_state = {k: v.clone() for k, v in frozen.state_dict().items()}
    optimizer = torch.optim.Adam(main_parameters(codec), lr=1e-3)
    codec.train()
    for _ in range(30):
        loss = objective(codec(images))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    final = evaluate()
    assert final < 0.5 * initial, (initial, final)  # measured: 2.36 -> 0.26
    for key, value in frozen.state_dict().items():  # the prior stays frozen
        assert torch.equal(value, generator_state[key]), key

    aux_optimizer = torch.optim.Adam([p for n, p in codec.named_parameters() if n.endswith(".quantiles")], lr=1e-3)
    aux = []
    for _ in range(30):
        loss = codec.aux_loss()
        aux.append(loss.item())
        aux_optimizer.zero_grad()
        loss.backward()
        aux_optimizer.step()
    aux.append(codec.aux_loss().item())
    assert all(b < a for a, b in zip(aux, aux[1:])), aux  # Adam, lr 1e-3: about 4e-3 per step here
    assert aux[-1] < aux[0] - 0.05, aux


def test_aux_loss_only_reaches_the_quantiles():
    codec = tiny_codec()
    codec.aux_loss().backward()
    with_grad = {n for n, p in codec.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad == {f"hyper_bottlenecks.{k}.quantiles" for k in range(codec.n_layers)}


# ---------------------------------------------------------------------------------------------- fingerprint
def test_fingerprint():
    codec = tiny_codec(seed=2, perturb=True)
    train_steps(codec, random_images(2), steps=2)
    codec.eval()
    codec.update(force=True)
    fp = codec.fingerprint()
    assert isinstance(fp, bytes) and len(fp) == 8
    assert codec.fingerprint() == fp

    assert tiny_codec(seed=9).fingerprint() != fp  # other random weights
    fresh = tiny_codec(seed=9)  # CDF tables not built (and no fingerprint computed yet: see the test below)
    assert not fresh.is_updated
    fresh.load_state_dict(codec.state_dict())  # the empty CDF buffers are resized
    assert fresh.is_updated and fresh.fingerprint() == fp
    images = random_images(2, seed=31)
    strings, _ = codec.compress(images)
    assert fresh.eval().compress(images)[0] == strings
    assert torch.equal(fresh.decompress(strings[0]), codec.decompress(strings[0]))

    # receiver side: synthesis, generator, entropy models change it
    for name in ("synthesis.weight", "generator.generator.convs.0.conv.weight", "hyper_decoder.position",
                 "entropy_transformer.parameters_head.bias", "hyper_bottlenecks.1.biases.0"):
        other = tiny_codec(seed=9)
        other.load_state_dict(codec.state_dict())
        assert other.fingerprint() == fp
        with torch.no_grad():
            tensor = dict(other.named_parameters(), **dict(other.named_buffers()))[name]
            tensor.view(-1)[0] += 0.01
        assert other.fingerprint() == fp  # cached
        other.invalidate_fingerprint()
        assert other.fingerprint() != fp, name
    other = tiny_codec(seed=9)
    other.load_state_dict(codec.state_dict())
    with torch.no_grad():
        other.encoder.latent_avg[0, 0] += 0.01  # the receiver fills missing layers with it
    other.invalidate_fingerprint()
    assert other.fingerprint() != fp

    # sender side: the encoder, the analysis and the hyper-encoder are not part of the receiver
    with torch.no_grad():
        next(codec.encoder.encoder.parameters()).view(-1)[0] += 0.5
        codec.analysis.weight.view(-1)[0] += 0.5
        codec.hyper_encoder.embed.weight.view(-1)[0] += 0.5
    codec.invalidate_fingerprint()
    assert codec.fingerprint() == fp
    # update() rebuilds the tables from the same quantiles: same model
    codec.update(force=True)
    assert codec.fingerprint() == fp
    with torch.no_grad():
        codec.hyper_bottlenecks[0].quantiles[0, 0, 0] -= 3.0
    codec.update(force=True)  # new CDF table -> new fingerprint without invalidate_fingerprint()
    assert codec.fingerprint() != fp


def test_load_state_dict_after_fingerprint():
    """BUG: fingerprint() hashes ``tensor.numpy()`` of the CDF buffers themselves, which marks their storage as not
    resizable, so a later load_state_dict of a codec whose CDF tables have other shapes fails in
    resize_entropy_buffers (``buffer.resize_``) with 'Trying to resize storage that is not resizable'."""
    source = tiny_codec(seed=0)
    source.update()
    target = tiny_codec(seed=1)
    fp = target.fingerprint()  # e.g. a stream was checked before the weights were loaded
    target.load_state_dict(source.state_dict())
    assert target.is_updated and target.fingerprint() == source.fingerprint() != fp
    # the same with an updated codec whose tables grow (quantiles moved during training)
    with torch.no_grad():
        source.hyper_bottlenecks[0].quantiles[:, :, 0] -= 5.0
    source.update(force=True)
    assert source.hyper_bottlenecks[0]._quantized_cdf.shape != target.hyper_bottlenecks[0]._quantized_cdf.shape
    target.load_state_dict(source.state_dict())
    assert target.fingerprint() == source.fingerprint()
    strings, _ = source.eval().compress(random_images(1))
    assert torch.equal(target.eval().decompress(strings[0]), source.decompress(strings[0]))


def test_layout_is_part_of_the_fingerprint():
    a = tiny_codec(seed=0)
    b = tiny_codec(seed=0, layer_split=[4, 6])
    assert a.groups != b.groups and a.fingerprint() != b.fingerprint()
    assert tiny_codec(seed=0).fingerprint() == a.fingerprint()


def test_resize_entropy_buffers():
    source = tiny_codec(seed=0)
    source.update()
    state = source.state_dict()
    target = tiny_codec(seed=1)
    target.resize_entropy_buffers(state)
    for key, value in target.state_dict().items():
        if any(key.endswith(n) for n in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")):
            assert value.shape == state[key].shape, key
    with_prefix = tiny_codec(seed=1)
    with_prefix.resize_entropy_buffers({f"codec.{k}": v for k, v in state.items()}, prefix="codec.")
    assert with_prefix.gaussian._quantized_cdf.shape == source.gaussian._quantized_cdf.shape


# ---------------------------------------------------------------------------------------------- bad input
def test_decompress_rejects_bad_layer_counts(trained_codec):
    strings, _ = trained_codec.compress(random_images(1))
    s = strings[0]
    for layers in (0, -1, trained_codec.n_layers + 1):
        with pytest.raises(ValueError, match="layers"):
            trained_codec.decompress(s, layers=layers)
    two = LayerStrings(s.hyper[:2], s.symbols[:2])
    with pytest.raises(ValueError, match="holds 2"):
        trained_codec.decompress(two, layers=3)
    assert trained_codec.decompress(two).shape == (1, trained_codec.n_latent, 32)


def test_scalable_objective_gives_quality_rising_with_the_layers():
    """The multi-task objective (every layer's decode judged, rate penalised) trains a codec whose quality rises
    from 1 to 3 layers while the rate falls.

    The groups are [0] / [1-2] / [3-7]: in the tiny random generator the styles from index 3 on move the image
    little, so with the default split ([0-2] / [3-4] / [5-7]) layers 2 and 3 end within 1% of each other (0.0413 vs
    0.0409), a gap float noise could close; here each layer adds a measurable share."""
    codec = tiny_codec(seed=7, quantization_step=0.02, layer_split=[1, 3])  # a fine initial step: a high rate
    frozen = codec.generator
    with torch.no_grad():
        images = frozen(frozen.sample_w(8, generator=torch.Generator().manual_seed(3)), space="w")

    def layer_errors_and_rate():
        codec.eval()
        with torch.no_grad():
            out = codec(images)
            errors = [F.mse_loss(codec.decode_images(w), images).item() for w in out.w_hat]
            return errors, out.layer_bits().sum(1).mean().item() / PIXELS

    initial_errors, initial_rate = layer_errors_and_rate()
    optimizer = torch.optim.Adam(main_parameters(codec), lr=2e-3)
    codec.train()
    for _ in range(60):
        out = codec(images)
        loss = 0.2 * out.layer_bits().sum(1).mean() / PIXELS
        loss = loss + sum(F.mse_loss(codec.decode_images(w), images) for w in out.w_hat)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    errors, rate = layer_errors_and_rate()
    # measured: MSE 0.389 / 0.0747 / 0.0709 (from 0.85), 1.08 -> 0.61 bpp
    assert errors[1] < 0.5 * errors[0] and errors[2] < 0.98 * errors[1], errors
    assert errors[2] < 0.5 * initial_errors[2], (initial_errors, errors)
    assert rate < initial_rate, (initial_rate, rate)
