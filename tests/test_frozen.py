"""FrozenGenerator: never trainable, gradients reach inputs, latent_avg, inputs and noise modes."""

from __future__ import annotations

import pytest
import torch

from stylegan_lightning.stylegan2 import FrozenGenerator


def test_no_trainable_parameters_and_always_eval(tiny_generator):
    frozen = FrozenGenerator(tiny_generator())
    assert not any(p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.training and not frozen.generator.training
    outer = torch.nn.Sequential(frozen, torch.nn.Linear(2, 2)).train()
    assert not frozen.training and outer[1].training
    trainable = [p for p in outer.parameters() if p.requires_grad]
    assert len(trainable) == 2  # only the Linear layer


def test_gradients_reach_w_but_not_weights(tiny_generator):
    frozen = FrozenGenerator(tiny_generator())
    w = frozen.sample_w(2, generator=torch.Generator().manual_seed(0)).detach().requires_grad_(True)
    frozen(w).square().mean().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert all(p.grad is None for p in frozen.parameters())


def test_latent_avg_from_generator_or_computed(tiny_generator):
    g = tiny_generator()
    g.latent_avg = torch.full((g.style_dim,), 0.5)
    assert torch.equal(FrozenGenerator(g).latent_avg, torch.full((g.style_dim,), 0.5))
    a = FrozenGenerator(tiny_generator(), n_mean_latent=256)
    b = FrozenGenerator(tiny_generator(), n_mean_latent=256)
    manual = a.generator.style(torch.randn(256, a.style_dim, generator=torch.Generator().manual_seed(0))).mean(0)
    assert torch.equal(a.latent_avg, b.latent_avg) and torch.allclose(a.latent_avg, manual)
    assert "latent_avg" in a.state_dict()  # saved with the methods' checkpoints
    # an [n_latent, D] latent_avg (some encoder checkpoints) is reduced to [D]
    c = FrozenGenerator(tiny_generator(), latent_avg=torch.ones(a.n_latent, a.style_dim))
    assert c.latent_avg.shape == (a.style_dim,)


def test_inputs_z_w_wplus_and_truncation(tiny_generator):
    frozen = FrozenGenerator(tiny_generator())
    g = frozen.generator
    z = torch.randn(2, frozen.style_dim)
    with torch.no_grad():
        w = frozen.mapping(z)
        from_z = frozen(z, space="z")
        from_w = frozen(w)
        from_w_plus = frozen(frozen.to_w_plus(w))
        official, _ = g([z], randomize_noise=False)
        truncated = frozen(z, space="z", truncation=0.6)
        official_truncated, _ = g([z], truncation=0.6, truncation_latent=frozen.latent_avg, randomize_noise=False)
    assert torch.equal(from_z, from_w) and torch.equal(from_w, from_w_plus) and torch.allclose(from_z, official)
    assert torch.allclose(truncated, official_truncated)
    with pytest.raises(ValueError, match="expected w"):
        frozen(torch.randn(2, frozen.n_latent - 1, frozen.style_dim))
    with pytest.raises(ValueError, match="space"):
        frozen(w, space="s")


def test_noise_modes_and_nan_rejected(tiny_generator):
    frozen = FrozenGenerator(tiny_generator())
    w = frozen.sample_w(2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        const = frozen(w)
        assert torch.equal(const, frozen(w, noise="const"))
        zero = frozen(w, noise="zero")
        explicit_zero = frozen(w, noise=[torch.zeros_like(n) for n in frozen.generator.stored_noise()])
        random_a = frozen(w, noise="random")
        random_b = frozen(w, noise="random")
    assert torch.equal(zero, explicit_zero) and (const - zero).abs().max() > 1e-4
    assert (random_a - random_b).abs().max() > 1e-4
    with pytest.raises(ValueError, match="noise mode"):
        frozen(w, noise="loud")
    bad = w.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        frozen(bad)


def test_metadata_and_dtype_moves(tiny_generator):
    frozen = FrozenGenerator(tiny_generator(size=32))
    assert (frozen.size, frozen.n_latent, frozen.num_layers, frozen.n_blocks) == (32, 8, 7, 4)
    assert frozen.block_resolutions == [4, 8, 16, 32] and frozen.n_weight_slots == 11
    double = frozen.double()
    assert double.latent_avg.dtype == torch.float64
    out = double(double.sample_w(1, generator=torch.Generator().manual_seed(0)))
    assert out.dtype == torch.float64


def test_block_api_matches_forward(tiny_generator):
    frozen = FrozenGenerator(tiny_generator())
    w_plus = frozen.to_w_plus(frozen.sample_w(2, generator=torch.Generator().manual_seed(2)))
    with torch.no_grad():
        features, skip = None, None
        for index in range(frozen.n_blocks):
            features, skip = frozen.synthesis_block(index, w_plus, features, skip)
        assert torch.equal(skip, frozen(w_plus))
