"""HyperStyle: hypernetwork layout (official names/shapes), offsets inside the frozen generator, iterative
refinement, gradients, checkpoints."""

from __future__ import annotations

import pytest
import torch

from stylegan_lightning.encoders import SMALL_BLOCKS, SMALL_CHANNELS, build_inverter
from stylegan_lightning.hyperstyle import (OFFICIAL_LAYERS_TO_TUNE, OFFICIAL_SHARED_LAYERS, TO_RGB_LAYERS, HyperNetwork,
                                           HyperStyle, build_hyperstyle, default_layers_to_tune,
                                           generator_slot_shapes, load_hyperstyle, medium_fine_layers_to_tune,
                                           read_hyperstyle_checkpoint, save_hyperstyle)
from stylegan_lightning.serialization import CheckpointError
from stylegan_lightning.stylegan2 import FrozenGenerator

pytestmark = pytest.mark.usefixtures("single_thread")

# tiny config: 32 px generator (11 slots, all 16 channels); slots 0,2,3 shared, 5,6,8,9 unshared 3×3, 10 toRGB 1×1
TUNE = [0, 2, 3, 5, 6, 8, 9, 10]
SHARED = [0, 2, 3]


@pytest.fixture(scope="module")
def parts():
    from stylegan_lightning.stylegan2 import Generator

    torch.manual_seed(0)
    generator = FrozenGenerator(Generator(32, style_dim=32, n_mlp=2, channel_max=16).eval())
    inverter = build_inverter("w", generator, input_size=32, blocks=SMALL_BLOCKS, channels=SMALL_CHANNELS)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    return generator, inverter.encoder, images


def make_model(parts, zero_init=False, seed=1) -> HyperStyle:
    generator, encoder, _ = parts
    torch.manual_seed(seed)
    return build_hyperstyle(encoder, generator, layers_to_tune=TUNE, n_iters=3, input_size=32, zero_init=zero_init,
                            shared_layers=SHARED).eval()


@pytest.fixture(scope="module")
def model(parts):
    return make_model(parts)


def test_slot_tables():
    shapes = generator_slot_shapes(1024)
    assert len(shapes) == 26 and len(generator_slot_shapes(256)) == 20
    # official PARAMETERS lists [k, in, out]; ours (out, in, k, k)
    assert shapes[0] == (512, 512, 3, 3) and shapes[1] == (3, 512, 1, 1) and shapes[14] == (256, 512, 3, 3)
    assert shapes[23] == (32, 64, 3, 3) and shapes[25] == (3, 32, 1, 1)
    assert [s for s, sh in enumerate(shapes) if sh[2] == 1] == TO_RGB_LAYERS
    assert default_layers_to_tune(26) == OFFICIAL_LAYERS_TO_TUNE
    assert default_layers_to_tune(20) == [s for s in OFFICIAL_LAYERS_TO_TUNE if s < 20]
    assert medium_fine_layers_to_tune(26) == [5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24]


def test_tiny_slot_shapes_match_generator(parts):
    generator = parts[0]
    assert generator_slot_shapes(32, channel_max=16) == generator.weight_slot_shapes()


def test_official_1024_state_dict_layout():
    with torch.device("meta"):
        hypernet = HyperNetwork(generator_slot_shapes(1024))
        all_layers = HyperNetwork(generator_slot_shapes(1024), layers_to_tune="")
    state = {k: tuple(v.shape) for k, v in hypernet.state_dict().items()}
    assert hypernet.shared_layers == OFFICIAL_SHARED_LAYERS and hypernet.layers_to_tune == OFFICIAL_LAYERS_TO_TUNE
    expected = {
        "conv1.weight": (64, 6, 7, 7), "bn1.weight": (64,), "bn1.running_var": (64,), "relu.weight": (64,),
        "body.0.conv1.weight": (64, 64, 3, 3), "body.3.downsample.0.weight": (128, 64, 1, 1),
        "body.7.downsample.1.running_mean": (256,), "body.13.downsample.0.weight": (512, 256, 1, 1),
        "body.15.conv2.weight": (512, 512, 3, 3), "body.15.bn2.bias": (512,),
        "shared_weight_hypernet.w1": (512, 512 * 9), "shared_weight_hypernet.b1": (512 * 9,),
        "shared_weight_hypernet.w2": (512, 512 * 512), "shared_weight_hypernet.b2": (512 * 512,),
        # shared head (slot 0): stride-1 conv to 128, three stride-2, one to 512 -> 1×1; EqualLinear; shared hypernet
        "refinement_blocks.0.convs.0.weight": (128, 512, 3, 3), "refinement_blocks.0.convs.6.weight": (128, 128, 3, 3),
        "refinement_blocks.0.convs.8.weight": (512, 128, 3, 3), "refinement_blocks.0.linear.weight": (512, 512),
        "refinement_blocks.0.linear.bias": (512,), "refinement_blocks.12.hypernet.w2": (512, 512 * 512),
        # unshared 3×3 head (slot 14 = [3, 512, 256]): 16 -> 8 -> 4 -> 2, avg-pool, 1×1 conv to in·out
        "refinement_blocks.14.convs.0.weight": (256, 512, 3, 3), "refinement_blocks.14.convs.2.weight": (256, 256, 3, 3),
        "refinement_blocks.14.convs.4.weight": (512, 256, 3, 3), "refinement_blocks.14.output.1.weight": (131072, 512, 1, 1),
        "refinement_blocks.14.output.1.bias": (131072,), "refinement_blocks.24.output.1.weight": (1024, 512, 1, 1),
    }
    for key, shape in expected.items():
        assert state.get(key) == shape, key
    assert "refinement_blocks.14.convs.6.weight" not in state
    assert max(int(k.split(".")[1]) for k in state if k.startswith("body.")) == 15
    assert sorted({int(k.split(".")[1]) for k in state if k.startswith("refinement_blocks.")}) == OFFICIAL_LAYERS_TO_TUNE
    # shared heads reference the same parameter object (written once per head in the state dict)
    assert hypernet.refinement_blocks[0].hypernet.w1 is hypernet.shared_weight_hypernet.w1
    # toRGB heads when tuned: down to 1×1, no pooling, 1×1 conv to 3·in
    rgb = {k: tuple(v.shape) for k, v in all_layers.state_dict().items() if k.startswith("refinement_blocks.25.")}
    assert rgb["refinement_blocks.25.convs.6.weight"] == (512, 256, 3, 3)
    assert rgb["refinement_blocks.25.output.0.weight"] == (96, 512, 1, 1)
    # output shapes (meta forward): [B, out, in, k, k] per tuned slot, None otherwise
    outputs = all_layers(torch.empty(2, 6, 256, 256, device="meta"))
    assert [tuple(o.shape) for o in outputs] == [(2, *s) for s in generator_slot_shapes(1024)]
    outputs = hypernet(torch.empty(1, 6, 256, 256, device="meta"))
    assert [i for i, o in enumerate(outputs) if o is not None] == OFFICIAL_LAYERS_TO_TUNE


def test_zero_offsets_reproduce_plain_generator(parts):
    generator, _, images = parts
    model = make_model(parts, zero_init=True)
    with torch.no_grad():
        out = model.run(images, n_iters=2)
        plain = generator(out.w_plus)
        # one image: the same conv path with and without offsets, W·(1 + 0) = W exactly
        single = model.run(images[:1], n_iters=2)
        plain_single = generator(single.w_plus)
        assert len(single.reconstructions) == 3
        assert all(torch.equal(r, plain_single) for r in single.reconstructions)
        zeros = [None if s % 2 else torch.zeros(1, *shape) for s, shape in enumerate(generator.weight_slot_shapes())]
        assert torch.equal(generator(single.w_plus, weight_deltas=zeros), plain_single)
    assert torch.equal(out.reconstructions[0], plain)
    assert [i for i, d in enumerate(out.deltas) if d is not None] == TUNE
    assert all(float(d.abs().max()) == 0.0 for d in out.deltas if d is not None)
    # a batch: per-sample kernels take the grouped-conv path instead of the shared-kernel one (float rounding only)
    for reconstruction in out.reconstructions[1:]:
        torch.testing.assert_close(reconstruction, plain, atol=1e-5, rtol=0)


def test_offsets_change_the_image(model, parts):
    _, _, images = parts
    with torch.no_grad():
        out = model.run(images, n_iters=1)
    assert float((out.reconstructions[1] - out.reconstructions[0]).abs().mean()) > 1e-3
    # unshared 3×3 offsets are per-(out, in) values repeated over the window
    delta = out.deltas[5]
    assert delta.shape == (2, 16, 16, 3, 3) and torch.equal(delta, delta[..., :1, :1].expand_as(delta))
    assert out.deltas[10].shape == (2, 3, 16, 1, 1) and out.deltas[0].shape == (2, 16, 16, 3, 3)


def test_iterative_refinement_accumulates(model, parts):
    _, _, images = parts
    with torch.no_grad():
        w_plus, y0 = model.initial(images)
        d1, y1 = model.refine_step(images, y0, w_plus, None)
        d2, y2 = model.refine_step(images, y1, w_plus, d1)
        update = model.hypernet(torch.cat([images, y1], 1))  # input_size 32 = image size: no resizing
        out = model.run(images, n_iters=2)
    for slot in range(len(d2)):
        if slot in TUNE:
            torch.testing.assert_close(d2[slot], d1[slot] + update[slot], atol=1e-6, rtol=0)
            torch.testing.assert_close(out.deltas[slot], d2[slot], atol=1e-6, rtol=0)
        else:
            assert d2[slot] is None and out.deltas[slot] is None
    assert len(out.reconstructions) == 3 and len(model.run(images).reconstructions) == model.n_iters + 1
    torch.testing.assert_close(out.reconstructions[2], y2, atol=1e-6, rtol=0)
    w, reconstruction = model.invert(images, n_iters=2)
    assert torch.equal(w, w_plus)
    torch.testing.assert_close(reconstruction, y2, atol=1e-6, rtol=0)


def test_edit_reuses_offsets(model, parts):
    _, _, images = parts
    with torch.no_grad():
        w_plus, reconstruction = model.invert(images[:1])
        codes = torch.cat([w_plus, w_plus + 0.5 * torch.randn_like(w_plus)])
        frames = model.edit(images[:1], w_plus, codes)
    assert frames.shape == (2, 3, 32, 32)
    torch.testing.assert_close(frames[:1], reconstruction, atol=1e-5, rtol=0)
    assert float((frames[1] - frames[0]).abs().mean()) > 1e-3


def test_prepare_edits_matches_edit_per_image(model, parts):
    """The edit tool's batch path: one inversion of the batch, then each image's edits with its own offsets."""
    _, _, images = parts
    with torch.no_grad():
        w_plus, render = model.prepare_edits(images)
        assert torch.equal(w_plus, model.invert(images)[0])
        for index in range(len(images)):
            codes = torch.stack([w_plus[index], w_plus[index] + 0.3])
            single = model.edit(images[index: index + 1], w_plus[index: index + 1], codes)
            torch.testing.assert_close(render(index, codes), single, atol=1e-5, rtol=0)
        other = render(1, torch.stack([w_plus[0]]))  # image 1's offsets on image 0's code: not image 0's edit
    assert float((other - model.edit(images[:1], w_plus[:1], w_plus[:1])).abs().mean()) > 1e-4


def test_gradient_reaches_hypernet_only(parts):
    generator, encoder, images = parts
    model = make_model(parts, seed=3).train()
    out = model.run(images, n_iters=2)
    loss = (out.reconstruction - images).pow(2).mean()
    loss.backward()
    for slot, block in enumerate(model.hypernet.refinement_blocks):
        if slot not in TUNE:
            assert block is None
            continue
        grads = [p.grad for p in block.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), slot
        assert all(float(g.abs().sum()) > 0 for g in grads), slot
    assert float(model.hypernet.conv1.weight.grad.abs().sum()) > 0
    assert float(model.hypernet.shared_weight_hypernet.w2.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in generator.parameters())
    assert all(p.grad is None and not p.requires_grad for p in encoder.parameters())
    assert not model.w_encoder.training


def test_save_load_round_trip(model, parts, tmp_path):
    _, _, images = parts
    path = save_hyperstyle(tmp_path / "hyperstyle.pt", model, w_encoder_path=tmp_path / "w_encoder.pt")
    data = read_hyperstyle_checkpoint(path)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"state_dict", "opts", "latent_avg"}
    assert {k.split(".")[0] for k in raw["state_dict"]} == {"hypernet", "decoder"}
    assert raw["opts"]["layers_to_tune"] == "0,2,3,5,6,8,9,10" and raw["opts"]["input_nc"] == 6
    assert raw["opts"]["output_size"] == 32 and raw["opts"]["encoder_type"] == "SharedWeightsHyperNetResNet"
    assert "hypernet.refinement_blocks.0.hypernet.w1" in raw["state_dict"]
    # the shared hypernetwork appears under every shared head's name but is written once
    shared = [k for k in raw["state_dict"] if k.endswith("hypernet.w2")]
    assert len(shared) == len(SHARED) + 1
    assert len({raw["state_dict"][k].data_ptr() for k in shared}) == 1
    tensor_bytes = sum(v.numel() * v.element_size() for k, v in raw["state_dict"].items() if k not in shared[1:])
    assert path.stat().st_size < tensor_bytes * 1.05 + 200_000
    assert data["hypernet"].keys() == model.hypernet.state_dict().keys()
    loaded = load_hyperstyle(path)
    assert loaded.n_iters == 3 and loaded.hypernet.layers_to_tune == TUNE and loaded.hypernet.shared_layers == SHARED
    with torch.no_grad():
        x6 = torch.cat([images, images.flip(0)], 1)
        for a, b in zip(model.hypernet(x6), loaded.hypernet(x6)):
            assert (a is None and b is None) or torch.equal(a, b)
        w_a, y_a = model.invert(images)
        w_b, y_b = loaded.invert(images)
    assert torch.equal(w_a, w_b) and torch.equal(y_a, y_b)
    # strictness: a missing hypernet tensor is named
    state = dict(raw["state_dict"])
    state.pop("hypernet.refinement_blocks.5.output.1.bias")
    torch.save({**raw, "state_dict": state}, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="refinement_blocks.5.output.1.bias"):
        load_hyperstyle(tmp_path / "broken.pt")


def test_hypernetwork_loads_without_its_w_encoder_and_only_inversion_needs_it(model, parts, tmp_path):
    """The W-encoder file named in opts is absent: the hypernetwork still loads (same outputs), saves and
    converts; inverting images is one CheckpointError naming the file and its role; attaching an encoder later
    gives the same inversion as the original model. An explicitly passed missing file is refused at load."""
    images = parts[2]
    missing = tmp_path / "faces_w_encoder.pt"
    path = save_hyperstyle(tmp_path / "hyperstyle.pt", model, opts={"w_encoder_checkpoint_path": str(missing)})
    alone = load_hyperstyle(path)
    assert alone.w_encoder is None and torch.equal(alone.latent_avg, model.w_encoder.latent_avg)
    with torch.no_grad():
        x6 = torch.cat([images, images.flip(0)], 1)
        for a, b in zip(model.hypernet(x6), alone.hypernet(x6)):
            assert (a is None and b is None) or torch.equal(a, b)
        w_plus = model.invert(images)[0]
        # refinement from given codes needs no encoder
        assert torch.equal(alone.run(images, w_plus=w_plus).reconstruction,
                           model.run(images, w_plus=w_plus).reconstruction)
    with pytest.raises(CheckpointError, match="faces_w_encoder.pt") as info:
        alone.invert(images)
    message = str(info.value)
    assert "\n" not in message and "W-encoder" in message and "initial W code" in message
    # converting / re-saving the hypernetwork alone keeps every tensor
    again = load_hyperstyle(save_hyperstyle(tmp_path / "converted.pt", alone))
    assert all(torch.equal(a, b) for a, b in zip(alone.hypernet.state_dict().values(),
                                                 again.hypernet.state_dict().values()))
    # no path in opts at all: loads too, and says so when asked to invert
    raw = torch.load(path, weights_only=True)
    raw["opts"].pop("w_encoder_checkpoint_path")
    torch.save(raw, tmp_path / "no_path.pt")
    with pytest.raises(CheckpointError, match="names no W-encoder"):
        load_hyperstyle(tmp_path / "no_path.pt").invert(images)
    # pairing with a W-encoder file later: the inversion of the original model
    from stylegan_lightning.hyperstyle import attach_w_encoder

    save_hyperstyle(tmp_path / "with.pt", model, w_encoder_path=tmp_path / "w_encoder.pt")
    attach_w_encoder(alone, tmp_path / "w_encoder.pt")
    with torch.no_grad():
        w_a, y_a = alone.invert(images)
        w_b, y_b = model.invert(images)
    assert torch.equal(w_a, w_b) and torch.equal(y_a, y_b)
    with pytest.raises(CheckpointError, match="other.pt"):
        load_hyperstyle(path, w_encoder=tmp_path / "other.pt")


def test_invalid_configuration(parts):
    generator = parts[0]
    with pytest.raises(ValueError, match="out of range"):
        HyperNetwork(generator.weight_slot_shapes(), layers_to_tune=[0, 11], input_size=32)
    with pytest.raises(ValueError, match="input_size"):
        HyperNetwork(generator.weight_slot_shapes(), input_size=48)


@pytest.mark.parametrize("key, value", [("input_nc", 10**7), ("input_nc", 5)])
def test_stored_options_asking_for_other_networks_are_refused_before_building(model, tmp_path, monkeypatch, key,
                                                                              value):
    """A file whose opts ask for a huge (or other) hypernetwork is compared with its tensors on the meta device:
    one CheckpointError naming the file, and no CPU storage is allocated for the asked-for network."""
    path = save_hyperstyle(tmp_path / "hyperstyle.pt", model, w_encoder_path=tmp_path / "w_encoder.pt")
    raw = torch.load(path, weights_only=True)
    raw["opts"][key] = value
    torch.save(raw, tmp_path / "forged.pt")
    allocated = []
    monkeypatch.setattr(torch.nn.Module, "to_empty", lambda self, **kw: allocated.append(self) or self)
    with pytest.raises(CheckpointError, match="forged.pt"):
        load_hyperstyle(tmp_path / "forged.pt")
    assert not [m for m in allocated if isinstance(m, HyperNetwork)]


def test_resnet34_initialisation_fills_the_body_as_the_official_model(parts, tmp_path):
    """A torchvision ResNet-34 state dict file (random values stand in for the ImageNet file, same names and
    shapes): every body tensor is copied, the 6-channel stem stays new (official) unless ``stem=True``; another
    network's file is refused."""
    from torchvision.models import resnet18, resnet34

    from stylegan_lightning.hyperstyle import init_from_resnet34

    torch.manual_seed(11)
    source = resnet34(weights=None)  # its own random draw: differs from the hypernetwork's everywhere
    with torch.no_grad():
        source.bn1.weight.uniform_(0.5, 1.5)
        source.bn1.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "resnet34.pth"
    torch.save(source.state_dict(), path)
    state = source.state_dict()
    hypernet = make_model(parts).hypernet
    before = {k: v.clone() for k, v in hypernet.state_dict().items()}
    init_from_resnet34(hypernet, path)
    after = hypernet.state_dict()
    blocks = [f"layer{stage}.{j}." for stage, count in enumerate((3, 4, 6, 3), start=1) for j in range(count)]
    copied = 0
    for index, prefix in enumerate(blocks):
        for key, value in state.items():
            if key.startswith(prefix):
                assert torch.equal(after[f"body.{index}.{key[len(prefix):]}"], value), key
                copied += 1
    assert copied == len([k for k in after if k.startswith("body.")])
    assert torch.equal(after["conv1.weight"], before["conv1.weight"]) and torch.equal(after["bn1.weight"],
                                                                                      before["bn1.weight"])
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith("refinement_blocks."))
    with_stem = init_from_resnet34(hypernet, path, stem=True).state_dict()
    assert torch.equal(with_stem["conv1.weight"][:, :3], state["conv1.weight"])
    assert torch.equal(with_stem["conv1.weight"][:, 3:], before["conv1.weight"][:, 3:])
    assert torch.equal(with_stem["bn1.running_var"], state["bn1.running_var"])
    torch.save(resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(CheckpointError, match="not a torchvision ResNet-34"):
        init_from_resnet34(hypernet, tmp_path / "resnet18.pth")
