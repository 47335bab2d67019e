"""Generator: rosinality layout and forward semantics, extensions (weight offsets, block-by-block synthesis,
features), double backward."""

from __future__ import annotations

import random

import pytest
import torch

from stylegan_lightning.stylegan2 import Generator, channel_layout


def test_config_f_1024_state_dict_layout():
    """Key names and shapes of rosinality's config-f 1024 generator (anchors B1)."""
    sd = Generator(1024).state_dict()
    expected_shapes = {
        "style.1.weight": (512, 512), "style.8.bias": (512,), "input.input": (1, 512, 4, 4),
        "conv1.conv.weight": (1, 512, 512, 3, 3), "conv1.conv.modulation.weight": (512, 512),
        "conv1.conv.modulation.bias": (512,), "conv1.noise.weight": (1,), "conv1.activate.bias": (512,),
        "to_rgb1.conv.weight": (1, 3, 512, 1, 1), "to_rgb1.bias": (1, 3, 1, 1),
        "convs.0.conv.blur.kernel": (4, 4), "convs.15.conv.weight": (1, 32, 32, 3, 3),
        "convs.14.conv.weight": (1, 32, 64, 3, 3), "to_rgbs.7.conv.weight": (1, 3, 32, 1, 1),
        "to_rgbs.7.upsample.kernel": (4, 4), "noises.noise_0": (1, 1, 4, 4), "noises.noise_16": (1, 1, 1024, 1024),
    }
    for key, shape in expected_shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert "style.0.weight" not in sd and "style.9.weight" not in sd
    assert len([k for k in sd if k.startswith("noises.")]) == 17
    assert len([k for k in sd if k.endswith("blur.kernel")]) == 8  # one per upsampling conv
    assert not any("latent_avg" in k for k in sd)  # official files have no such key in g_ema
    # style 8x2, input, conv1 5, to_rgb1 4, convs 16x5 + 8 blur kernels, to_rgbs 8x5, noises 17
    assert len(sd) == 8 * 2 + 1 + 5 + 4 + 16 * 5 + 8 + 8 * 5 + 17


@pytest.mark.parametrize("size,n_latent,slots,layers", [(1024, 18, 26, 17), (512, 16, 23, 15), (256, 14, 20, 13)])
def test_counts_per_resolution(size, n_latent, slots, layers):
    g = Generator(size, style_dim=16, n_mlp=1, channel_max=8)
    assert (g.n_latent, g.n_weight_slots, g.num_layers) == (n_latent, slots, layers)
    assert len(g.weight_slot_shapes()) == slots
    assert g.block_resolutions == [2**i for i in range(2, g.log_size + 1)]
    assert g.to_rgb_slots() == [1] + list(range(4, slots, 3))


def test_weight_slot_shapes_match_official_table():
    shapes = Generator(1024).weight_slot_shapes()
    assert shapes[0] == (512, 512, 3, 3) and shapes[1] == (3, 512, 1, 1)
    assert shapes[14] == (256, 512, 3, 3)  # HyperStyle PARAMETERS[14] = [3, 512, 256]
    assert shapes[25] == (3, 32, 1, 1)


def test_channel_cap_and_multiplier():
    assert channel_layout(256, 1) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64}
    assert channel_layout(64, 2, channel_max=48) == {4: 48, 8: 48, 16: 48, 32: 48, 64: 48}


def _w(generator, batch=2, seed=0):
    return torch.randn(batch, generator.style_dim, generator=torch.Generator().manual_seed(seed))


def test_noise_modes(tiny_generator):
    g = tiny_generator()
    z = _w(g)
    with torch.no_grad():
        fixed_a, _ = g([z], randomize_noise=False)
        fixed_b, _ = g([z], randomize_noise=False)
        explicit, _ = g([z], noise=g.stored_noise())
        torch.manual_seed(5)
        random_a, _ = g([z])
        torch.manual_seed(5)
        random_b, _ = g([z])
        random_c, _ = g([z])
    assert torch.equal(fixed_a, fixed_b) and torch.equal(fixed_a, explicit)
    assert torch.equal(random_a, random_b)
    assert (random_a - random_c).abs().max() > 1e-4 and (random_a - fixed_a).abs().max() > 1e-4
    assert len(g.make_noise()) == g.num_layers
    assert [n.shape[-1] for n in g.make_noise()] == [n.shape[-1] for n in g.stored_noise()]


def test_truncation(tiny_generator):
    g = tiny_generator()
    z = _w(g)
    with torch.no_grad():
        mean = g.mean_latent(512, torch.Generator().manual_seed(0))
        w = g.get_latent(z)
        half, _ = g([z], truncation=0.5, truncation_latent=mean, randomize_noise=False)
        manual, _ = g([mean + 0.5 * (w - mean)], input_is_latent=True, randomize_noise=False)
        zero, _ = g([z], truncation=0.0, truncation_latent=mean, randomize_noise=False)
        mean_image, _ = g([mean.expand(2, -1)], input_is_latent=True, randomize_noise=False)
    assert torch.allclose(half, manual, atol=1e-6)
    assert torch.allclose(zero, mean_image, atol=1e-6)
    with pytest.raises(ValueError, match="truncation_latent"):
        g([z], truncation=0.5)


def test_style_mixing(tiny_generator):
    g = tiny_generator()
    z1, z2 = _w(g, seed=1), _w(g, seed=2)
    with torch.no_grad():
        mixed, latent = g([z1, z2], inject_index=3, return_latents=True, randomize_noise=False)
        w1, w2 = g.get_latent(z1), g.get_latent(z2)
        w_plus = torch.cat([w1[:, None].expand(-1, 3, -1), w2[:, None].expand(-1, g.n_latent - 3, -1)], 1)
        manual, _ = g([w_plus], input_is_latent=True, randomize_noise=False)
        random.seed(0)
        _, random_latent = g([z1, z2], return_latents=True)
    assert torch.equal(latent, w_plus)
    assert torch.allclose(mixed, manual, atol=1e-6)
    random.seed(0)
    k = random.randint(1, g.n_latent - 1)
    assert torch.equal(random_latent[:, :k], w1[:, None].expand(-1, k, -1))
    assert torch.equal(random_latent[:, k:], w2[:, None].expand(-1, g.n_latent - k, -1))


def test_w_plus_input_and_shape_errors(tiny_generator):
    g = tiny_generator()
    w = g.get_latent(_w(g)).detach()
    with torch.no_grad():
        a, latent = g([w], input_is_latent=True, randomize_noise=False, return_latents=True)
        b, _ = g([latent], input_is_latent=True, randomize_noise=False)
    assert latent.shape == (2, g.n_latent, g.style_dim) and torch.equal(a, b)
    assert a.shape == (2, 3, g.size, g.size)
    with pytest.raises(ValueError, match="latent has shape"):
        g([torch.randn(2, g.n_latent + 1, g.style_dim)], input_is_latent=True)
    with pytest.raises(TypeError):
        g(torch.randn(2, g.style_dim))
    with pytest.raises(ValueError):
        Generator(48)


def test_zero_weight_deltas_reproduce_plain_generator(tiny_generator):
    g = tiny_generator()
    w = _w(g)
    deltas = [torch.zeros(2, *shape) for shape in g.weight_slot_shapes()]
    with torch.no_grad():
        plain, _ = g([w], randomize_noise=False)
        with_zero, _ = g([w], randomize_noise=False, weight_deltas=deltas)
        with_none, _ = g([w], randomize_noise=False, weight_deltas=[None] * g.n_weight_slots)
    assert torch.equal(plain, with_none)
    # per-sample deltas take the grouped-convolution path: equal up to float rounding
    assert torch.allclose(plain, with_zero, atol=1e-5)


@pytest.mark.parametrize("size", [4, 16])
@pytest.mark.parametrize("mode", ["plain", "upsample", "downsample", "torgb"])
def test_grouped_and_activation_modulation_paths_agree(mode, size):
    """A shared kernel modulates activations, per-sample kernels use a grouped conv: same maths. A batch takes the
    activation path where its feature maps cost less to scale than per-sample kernels to modulate (4 px), else the
    grouped one (16 px)."""
    from stylegan_lightning.stylegan2.layers import ModulatedConv2d

    torch.manual_seed(0)
    kernel_size, demodulate = (1, False) if mode == "torgb" else (3, True)
    layer = ModulatedConv2d(6, 5, kernel_size, 8, demodulate=demodulate, upsample=mode == "upsample",
                            downsample=mode == "downsample").double()
    expected_path = (6 + 5) * size * size < 3 * 5 * 6 * kernel_size**2
    assert layer._activations_cost_less(size, size) == expected_path
    x, style = torch.randn(3, 6, size, size, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    batched = layer(x, style)  # shared kernel, batch 3
    one_by_one = torch.cat([layer(x[i: i + 1], style[i: i + 1]) for i in range(3)])  # batch 1 -> grouped conv
    zero_delta = layer(x, style, weight_delta=torch.zeros(3, 5, 6, kernel_size, kernel_size, dtype=torch.float64))
    assert torch.allclose(batched, one_by_one, atol=1e-12) and torch.allclose(batched, zero_delta, atol=1e-12)


def test_weight_delta_is_w_times_one_plus_delta(tiny_generator):
    """A delta on slot 3 equals editing that layer's weight to W * (1 + delta); channel-wise deltas broadcast."""
    g = tiny_generator()
    w = _w(g, batch=1)
    out_c, in_c, k, _ = g.weight_slot_shapes()[3]
    delta = 0.3 * torch.randn(1, out_c, in_c, 1, 1)  # per-channel, repeated over the kernel by broadcasting
    deltas = [None] * g.n_weight_slots
    deltas[3] = delta
    with torch.no_grad():
        shifted, _ = g([w], randomize_noise=False, weight_deltas=deltas)
        edited = Generator(**g.config)
        edited.load_state_dict(g.state_dict())
        edited.modulated_convs()[3].weight.mul_(1 + delta)
        manual, _ = edited([w], randomize_noise=False)
        plain, _ = g([w], randomize_noise=False)
    assert torch.allclose(shifted, manual, atol=1e-6)
    assert (shifted - plain).abs().max() > 1e-3
    with pytest.raises(ValueError, match="weight_deltas"):
        g([w], weight_deltas=[None] * 3)


def test_block_by_block_equals_forward(tiny_generator):
    g = tiny_generator()
    w = _w(g)
    with torch.no_grad():
        image, latent = g([w], randomize_noise=False, return_latents=True)
        features, skip = None, None
        for index in range(g.n_blocks):
            features, skip = g.synthesis_block(index, latent, features, skip, g.stored_noise())
        hooked, _ = g([w], randomize_noise=False, feature_hook=lambda i, f, s: None)
        _, _, block_features = g([w], randomize_noise=False, return_features=True)
    assert torch.equal(skip, image) and torch.equal(hooked, image)
    assert [f.shape[-1] for f in block_features] == g.block_resolutions
    assert [f.shape[1] for f in block_features] == [g.channels[r] for r in g.block_resolutions]
    assert torch.equal(block_features[-1], features)


def test_feature_hook_modifies_synthesis(tiny_generator):
    g = tiny_generator()
    w = _w(g)
    seen = []

    def hook(index, features, skip):
        seen.append(index)
        if index == 2:
            return features * 0.0, skip
        return None

    with torch.no_grad():
        plain, _ = g([w], randomize_noise=False)
        hooked, latent = g([w], randomize_noise=False, feature_hook=hook, return_latents=True)
        # manual: run blocks 0-2, zero the features, continue
        features, skip = None, None
        for index in range(g.n_blocks):
            features, skip = g.synthesis_block(index, latent, features, skip, g.stored_noise())
            if index == 2:
                features = features * 0.0
    assert seen == list(range(g.n_blocks))
    assert torch.allclose(hooked, skip) and (hooked - plain).abs().max() > 1e-3


def test_path_length_style_double_backward(tiny_generator):
    """Path-length regularisation needs d/dparams of |J^T y|: a double backward through the whole generator."""
    g = tiny_generator().train()
    w = g.get_latent(_w(g)).detach().requires_grad_(True)
    image, latent = g([w], input_is_latent=True, randomize_noise=False, return_latents=True)
    noise = torch.randn_like(image) / image.shape[-1]
    (grad,) = torch.autograd.grad((image * noise).sum(), latent, create_graph=True)
    path_lengths = grad.square().sum(2).mean(1).sqrt()
    path_lengths.mean().backward()
    assert g.conv1.conv.weight.grad is not None and g.conv1.conv.weight.grad.abs().sum() > 0
    modulation = g.convs[-1].conv.modulation.weight.grad
    assert modulation is not None and torch.isfinite(modulation).all() and modulation.abs().sum() > 0


def test_float64_gradcheck_through_small_generator(tiny_generator):
    g = tiny_generator(size=8, channel_max=4, style_dim=4, n_mlp=1).double()
    w = torch.randn(1, 4, dtype=torch.float64, requires_grad=True)
    fn = lambda t: g([t], input_is_latent=True, randomize_noise=False)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (w,))
    assert torch.autograd.gradgradcheck(fn, (w,))
