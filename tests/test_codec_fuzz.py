"""Fuzzing the codec's decoder with hypothesis: 10,000 mutated and truncated streams through parse + decode, where
the only allowed failure is :class:`BitstreamError`; and payloads replaced by random bytes under valid CRCs, which
the entropy decoder must turn into a finite image or a BitstreamError (never a crash or NaN)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stylegan_lightning.codec import BitstreamError, CodecStream, LayerStrings, compress_images, decompress_stream
from model_helpers import tiny_codec  # noqa: E402  (test helper beside this file)

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]
OUTCOMES = {"bitstream_error": 0, "decoded": 0}


@pytest.fixture(scope="module")
def setup():
    codec = tiny_codec(0, perturb=True)
    codec.update(force=True)
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    stream = compress_images(codec, images)[0]
    return codec, stream, stream.to_bytes()


def decode_or_error(codec, data: bytes) -> torch.Tensor | None:
    """Parse and decode ``data``; ``None`` for a BitstreamError, any other exception fails the test."""
    try:
        return decompress_stream(codec, CodecStream.from_bytes(data))
    except BitstreamError:
        return None


mutation = st.one_of(
    st.tuples(st.just("cut"), st.integers(0, 10**6)),
    st.tuples(st.just("set"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 16)),
)


def mutate(data: bytes, edits) -> bytes:
    damaged = bytearray(data)
    for edit in edits:
        if not damaged:
            break
        kind, position = edit[0], edit[1] % (len(damaged) + (1 if edit[0] in ("cut", "insert") else 0))
        if kind == "cut":
            del damaged[position:]
        elif kind == "set":
            damaged[position] = edit[2]
        elif kind == "flip":
            damaged[position] ^= 1 << edit[2]
        elif kind == "insert":
            damaged[position:position] = edit[2]
        else:
            del damaged[position:position + edit[2]]
    return bytes(damaged)


@settings(max_examples=10_000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.lists(mutation, min_size=1, max_size=4))
def test_ten_thousand_mutated_streams_fail_only_with_bitstream_error(setup, edits):
    codec, stream, data = setup
    damaged = mutate(data, edits)
    image = decode_or_error(codec, damaged)
    OUTCOMES["bitstream_error" if image is None else "decoded"] += 1
    if image is not None:  # only intact prefixes parse: cuts at layer boundaries or edits that changed nothing
        parsed = CodecStream.from_bytes(damaged)
        assert damaged == data[:len(damaged)] and parsed.layers.symbols == stream.layers.symbols[:parsed.n_layers]
        assert torch.isfinite(image).all()


def test_the_fuzz_ran_ten_thousand_streams():
    """Runs after the fuzz test (file order): every example was counted."""
    assert sum(OUTCOMES.values()) >= 10_000, OUTCOMES
    assert OUTCOMES["bitstream_error"] > 0.9 * sum(OUTCOMES.values()), OUTCOMES


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(layer=st.integers(0, 2), part=st.sampled_from(["hyper", "symbols"]), payload=st.binary(max_size=64))
def test_random_payloads_with_valid_checksums_decode_to_finite_images_or_raise(setup, layer, part, payload):
    """The CRCs are recomputed, so the entropy decoder itself meets arbitrary bytes."""
    codec, stream, _ = setup
    hyper, symbols = list(stream.layers.hyper), list(stream.layers.symbols)
    (hyper if part == "hyper" else symbols)[layer] = payload
    forged = CodecStream(stream.fingerprint, stream.resolution, stream.height, stream.width, stream.total_layers,
                         LayerStrings(hyper, symbols)).to_bytes()
    image = decode_or_error(codec, forged)
    if image is not None:
        assert image.shape == (1, 3, stream.height, stream.width) and torch.isfinite(image).all()
