"""Cross-device decoding of the shipped demo codec: streams encoded in float32 on 2 threads decode to the very same
symbols with a float64 copy of the codec on 1 thread (and with the codec itself on 1 thread), over the 26 sample
faces and random latents, and every coding decision sits far from its rounding boundary compared with the float64
noise. The 1,000-latent version with timings is ``benchmarks/bench_codec_interop.py``."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from stylegan_lightning.codec import load_codec
from stylegan_lightning.codec.interop import cross_precision_check, random_tokens
from stylegan_lightning.codec.model import CODING_DTYPE

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted(str(p) for p in (ROOT / "data" / "samples").rglob("*.jpg"))
RANDOM_LATENTS = 48  # the benchmark runs 1,000; 2-thread encoding is slow when the cores are shared


@pytest.fixture(scope="module")
def codec():
    return load_codec(ROOT / "data" / "demo" / "codec.pt")


@pytest.fixture(scope="module")
def face_tokens(codec):
    """Style tokens of the 26 sample faces, aligned to the face prior's crop."""
    from stylegan_lightning.photos.tools import aligned_inputs

    _, images, _ = aligned_inputs(SAMPLES, 64, framing="utkface-64")
    assert images.shape[0] == 26
    return codec.encode_tokens_alone(images)[1]


def test_float32_two_threads_encode_float64_one_thread_decode(codec, face_tokens):
    threads = torch.get_num_threads()
    tokens = torch.cat([face_tokens, random_tokens(codec, RANDOM_LATENTS, seed=20)])
    report = cross_precision_check(codec, tokens, sender_threads=2, receiver_threads=1)
    assert torch.get_num_threads() == threads  # restored
    assert report.streams == 26 + RANDOM_LATENTS
    assert report.symbols == report.streams * codec.n_latent * codec.channels
    assert report.fingerprints_match
    assert report.mismatched_float64 == 0 and report.mismatched_same_dtype == 0
    # the float64 sender and receiver agree to the last bits, and no decision was anywhere near flipping
    assert report.float64_noise < 1e-12
    assert report.min_mean_margin > 1e-9 and report.min_scale_margin > 1e-9
    assert report.min_mean_margin > 1e3 * report.float64_noise * codec.config["mean_grid"]
    # float32 entropy parameters are ~1e-6 off: the reason they no longer pick the CDFs
    assert 1e-9 < report.float32_noise < 1e-3


def test_float64_codec_writes_streams_the_float32_codec_reads(codec, face_tokens):
    """The other direction: a float64 sender, a float32 receiver (same fingerprint, same symbols)."""
    double = copy.deepcopy(codec).to(CODING_DTYPE)
    double.invalidate_fingerprint()
    assert double.fingerprint() == codec.fingerprint()
    strings, sent = double.compress_tokens(face_tokens[:8].to(CODING_DTYPE))
    for layer_strings, expected in zip(strings, sent):
        w_hat, received = codec.decompress(layer_strings, return_symbols=True)
        assert torch.equal(received, expected) and w_hat.dtype == torch.float32


def test_mean_grid_option(codec):
    from model_helpers import tiny_codec  # test helper beside this file

    assert codec.config["mean_grid"] == 256  # the demo file predates the option: the default
    for bad in (0, 3, 100, 2**17, 2.0, True):
        with pytest.raises(ValueError, match="mean_grid"):
            tiny_codec(mean_grid=bad)
    coarse = tiny_codec(seed=1, perturb=True, mean_grid=4).eval()
    coarse.update(force=True)
    tokens = random_tokens(coarse, 3, seed=2)
    trace = []
    strings, sent = coarse.compress_tokens(tokens, trace)
    for step in trace:  # means on the 1/4 grid, margins in grid steps
        assert torch.equal(step.choice.means * 4, torch.round(step.choice.means * 4))
        assert 0 <= step.choice.mean_margin <= 0.5
    assert any(bool((step.choice.means != 0).any()) for step in trace)
    for layer_strings, expected in zip(strings, sent):
        assert torch.equal(coarse.decompress(layer_strings, return_symbols=True)[1], expected)
