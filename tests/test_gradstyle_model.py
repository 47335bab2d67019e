"""GradStyle model: stage boundaries, residual shapes, gates, the alpha = 0 identity of the two streams, frozen
encoder and generator, and the aligner applied only to moved codes."""

from __future__ import annotations

import pytest
import torch

from stylegan_lightning.encoders import LatentEncoder, build_encoder
from stylegan_lightning.gradstyle import (DEFAULT_REFINE_LAYERS, GradStyle, block_layer, check_refine_layers,
                                          default_refine_layers, layer_resolution)
from stylegan_lightning.stylegan2 import FrozenGenerator, Generator

pytestmark = pytest.mark.usefixtures("single_thread")


def _frozen(size: int, seed: int = 0) -> FrozenGenerator:
    torch.manual_seed(seed)
    return FrozenGenerator(Generator(size, style_dim=32, n_mlp=2, channel_max=32).eval(), n_mean_latent=100)


def _e4e(frozen: FrozenGenerator, seed: int = 1) -> LatentEncoder:
    torch.manual_seed(seed)
    encoder = build_encoder("e4e", frozen.n_latent, frozen.style_dim, 32, (1, 1, 1, 1), (16, 16, 32, 32))
    return LatentEncoder(encoder, frozen.n_latent, frozen.latent_avg).eval()


@pytest.fixture(scope="module")
def small():
    """A 32 px generator (refinement after styled convs 1 and 4: 8 and 16 px) and its GradStyle, in eval mode (the
    batch-norm layers of the residual networks use their running statistics, as the tools do)."""
    frozen = _frozen(32)
    torch.manual_seed(2)
    model = GradStyle(_e4e(frozen), frozen, refine_layers=[1, 4], aligner_head_dim=16, aligner_heads=2).eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    return model, images


def test_stage_boundaries_follow_table_3_and_invalid_layers():
    # Table 3: blocks 3, 6, 8 at 8, 16, 32 px; block 10 at 64 px; blocks 3-8 at (8, 16, 32) px twice
    assert [block_layer(block) for block in (3, 6, 8)] == list(DEFAULT_REFINE_LAYERS) == [1, 4, 6]
    assert [layer_resolution(block_layer(block)) for block in (3, 6, 8, 10)] == [8, 16, 32, 64]
    assert [layer_resolution(block_layer(block)) for block in range(3, 9)] == [8, 8, 16, 16, 32, 32]
    assert [layer_resolution(block_layer(block)) for block in (2, 11, 18)] == [4, 128, 1024]  # 18 blocks at 1024
    with pytest.raises(ValueError, match="block 1"):
        block_layer(1)
    for size, num_layers in ((64, 9), (256, 13), (1024, 17)):
        generator = Generator(size, style_dim=8, n_mlp=1, channel_max=8)
        assert generator.num_layers == num_layers
        assert default_refine_layers(generator.num_layers) == [1, 4, 6]
    assert [layer_resolution(layer) for layer in (0, 1, 2, 4, 5, 6, 7, 16)] == [4, 8, 8, 16, 32, 32, 64, 1024]
    assert default_refine_layers(Generator(32, style_dim=8, n_mlp=1, channel_max=8).num_layers) == [1, 4, 6]
    assert default_refine_layers(Generator(16, style_dim=8, n_mlp=1, channel_max=8).num_layers) == [1, 4]
    assert default_refine_layers(3) == [1]  # an 8 px generator: one stage
    with pytest.raises(ValueError):
        default_refine_layers(1)  # 4 px: no refinement layer exists
    for bad in ([5, 2], [2, 2], [-1, 2], [2, 9], []):
        with pytest.raises(ValueError):
            check_refine_layers(bad, 9)
    frozen = _frozen(32)
    with pytest.raises(ValueError):
        GradStyle(_e4e(frozen), frozen, refine_layers=[2, 7])  # a 32 px generator has styled convs 0..6


def test_residual_shapes_equal_generator_features_and_gates_in_unit_interval():
    frozen = _frozen(64)
    torch.manual_seed(0)
    model = GradStyle(_e4e(frozen), frozen, aligner_head_dim=16, aligner_heads=2)
    assert model.refine_layers == [1, 4, 6] and model.n_stages == 3
    assert [aligner.blocks[0].attention.heads for aligner in GradStyle(_e4e(frozen), frozen).aligners] == [8] * 3
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    shapes = {}
    with torch.no_grad():
        w_plus, features = model.encode(images)
        frozen(w_plus, layer_hook=lambda layer, f: shapes.setdefault(layer, tuple(f.shape)) and None)
        output = model.reconstruct(w_plus, features)
    assert [shapes[layer] for layer in (1, 4, 6)] == [(2, 32, 8, 8), (2, 32, 16, 16), (2, 32, 32, 32)]
    assert [tuple(r.shape) for r in output.residuals] == [shapes[1], shapes[4], shapes[6]]
    assert [tuple(g.shape) for g in output.gates] == [shapes[1], shapes[4], shapes[6]]
    for gate in output.gates:
        assert float(gate.min()) >= 0.0 and float(gate.max()) <= 1.0
        assert 0.05 < float(gate.mean()) < 0.95  # a sigmoid of small activations: near 0.5, not saturated
    assert tuple(output.image.shape) == (2, 3, 64, 64)
    # the residuals change the image: GradStyle's reconstruction is not the plain W+ decode
    assert float((output.image - frozen(w_plus)).abs().mean()) > 1e-3


def test_unedited_codes_make_both_streams_equal(small):
    model, images = small
    with torch.no_grad():
        w_plus, features = model.encode(images)
        reconstruction = model.reconstruct(w_plus, features)
        editing = model.edit_stream(w_plus, w_plus, reconstruction.residuals)  # alpha = 0, no augmentation
    assert torch.equal(editing.image, reconstruction.image)
    for aligned, residual in zip(editing.residuals, reconstruction.residuals):
        assert torch.equal(aligned, residual)
    for a, b in zip(editing.gates, reconstruction.gates):
        assert torch.equal(a, b)
    # with augmentation the residuals are warped and re-aligned: the editing stream differs
    with torch.no_grad():
        augmented = model.edit_stream(w_plus, w_plus, reconstruction.residuals, augment=True,
                                      generator=torch.Generator().manual_seed(0))
    assert float((augmented.image - reconstruction.image).abs().mean()) > 1e-4


def test_moved_codes_go_through_the_aligner_and_unmoved_ones_do_not(small):
    model, images = small
    with torch.no_grad():
        w_plus, features = model.encode(images)
        reconstruction = model.reconstruct(w_plus, features)
        w_edit = w_plus.clone()
        w_edit[0] += 0.5 * torch.randn(w_edit[0].shape, generator=torch.Generator().manual_seed(4))
        editing = model.edit_stream(w_edit, w_plus, reconstruction.residuals)
        direct = [aligner(residual, torch.zeros_like(residual)) for aligner, residual
                  in zip(model.aligners, reconstruction.residuals)]
    for stage, (aligned, residual) in enumerate(zip(editing.residuals, reconstruction.residuals)):
        assert torch.equal(aligned[1], residual[1]), stage  # not moved: the residual itself
        assert float((aligned[0] - residual[0]).abs().mean()) > 1e-3, stage  # moved: the aligner's output
        assert not torch.equal(direct[stage][0], residual[0])
    assert torch.allclose(editing.image[1], reconstruction.image[1], atol=1e-6)
    assert float((editing.image[0] - reconstruction.image[0]).abs().mean()) > 1e-3
    # The edit tool's interface: one source image, S codes. An unmoved code skips the aligner: its frame is the
    # reconstruction up to the float noise of another batch composition (a continuous path).
    with torch.no_grad():
        frames = model.edit(images[:1], w_plus[:1], torch.stack([w_plus[0], w_edit[0]]))
    assert torch.allclose(frames[0], reconstruction.image[0], atol=1e-5)
    # A moved code goes through the aligner, whose top-mu key selection is discontinuous: the ~1e-7 difference
    # between computing image 0 alone and in a batch of 2 can swap a key of near-equal score, which moves some
    # pixels by up to ~1e-4 (measured) and leaves the mean near the float noise. So this comparison is bounded on
    # the mean only; the exact comparisons below run at one batch composition.
    assert float((frames[1] - editing.image[0]).abs().mean()) < 1e-4
    # the batch path of the edit tool: each image inverted alone, so it is the single-image edit bit for bit
    with torch.no_grad():
        batch_w_plus, render = model.prepare_edits(images)
        assert torch.allclose(batch_w_plus, w_plus, atol=1e-5)
        for index in range(len(images)):
            codes = torch.stack([batch_w_plus[index], w_edit[0]])
            single = model.edit(images[index: index + 1], batch_w_plus[index: index + 1], codes)
            assert torch.equal(render(index, codes), single), index
            assert torch.equal(model.encode(images[index: index + 1])[0], batch_w_plus[index: index + 1])


def test_encoder_and_generator_stay_frozen_under_training():
    frozen = _frozen(32)
    torch.manual_seed(0)
    model = GradStyle(_e4e(frozen), frozen, refine_layers=[1, 4], aligner_head_dim=16, aligner_heads=2).train()
    assert not model.encoder.training and not model.generator.training
    frozen_params = dict(model.encoder.named_parameters(prefix="encoder"))
    frozen_params.update(model.generator.named_parameters(prefix="generator"))
    assert frozen_params and not any(p.requires_grad for p in frozen_params.values())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith(("grms.", "fusions.", "aligners.")) for n in trainable)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)  # every parameter, frozen ones included
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    w_plus, features = model.encode(images)
    reconstruction = model.reconstruct(w_plus, features)
    editing = model.edit_stream(w_plus, w_plus, [r.detach() for r in reconstruction.residuals], augment=True)
    loss = (reconstruction.image - images).pow(2).mean() + (editing.image - images).pow(2).mean()
    loss = loss + sum((a - r.detach()).abs().mean() for a, r in zip(editing.residuals, reconstruction.residuals))
    loss.backward()
    assert all(p.grad is None for p in frozen_params.values())
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert all(float(grads[n].abs().sum()) > 0 for n in grads if n.startswith(("grms.", "aligners.")))
    optimizer.step()
    after = model.state_dict()
    for key in before:
        if key.startswith(("encoder.", "generator.")):
            assert torch.equal(before[key], after[key]), key
    changed = [k for k in trainable if not torch.equal(before[k], after[k])]
    assert len(changed) == len(trainable)
