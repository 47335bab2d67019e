"""LPIPS and DISTS networks: equal to the lpips package / torchmetrics given the same weights, frozen,
differentiable, and clear errors for missing or mismatched weight files."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch

from stylegan_lightning.nets.feature_backbones import random_torchvision_features
from stylegan_lightning.nets.perceptual import DISTSNetwork, LPIPSNetwork
from stylegan_lightning.serialization import CheckpointError
from stylegan_lightning.weights import ENV_VAR, MissingWeightError

ARCH = {"alex": "alexnet", "vgg": "vgg16"}


def image_pairs(seed: int = 0, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Four image pairs in [-1, 1]: two independent, two slightly perturbed."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 3, size, size, generator=generator) * 2 - 1
    y = torch.rand(4, 3, size, size, generator=generator) * 2 - 1
    y[2:] = (x[2:] + 0.1 * torch.randn(2, 3, size, size, generator=generator)).clamp(-1, 1)
    return x, y


@pytest.fixture
def backbone_file(tmp_path):
    """Factory: a random torchvision-layout backbone state dict saved under torchvision's file name."""
    def make(arch: str, seed: int = 0):
        path = tmp_path / {"alexnet": "alexnet-owt-7be5be79.pth", "vgg16": "vgg16-397923af.pth"}[arch]
        state = random_torchvision_features(arch, seed)
        torch.save(state, path)
        return path, state

    return make


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_lpips_package(net, backbone_file, monkeypatch):
    import lpips

    path, state = backbone_file(ARCH[net], seed=3)
    ours = LPIPSNetwork(net, backbone_path=path)
    if net == "vgg":  # skip building torchvision's 120M-parameter classifier, which lpips discards
        from torchvision.models.vgg import cfgs, make_layers

        monkeypatch.setattr(lpips.pretrained_networks.tv, "vgg16",
                            lambda **kwargs: SimpleNamespace(features=make_layers(cfgs["D"])))
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=`
        warnings.simplefilter("ignore")
        reference = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    # lpips keeps torchvision's layer indices inside its slices: net.slice<k>.<index>.weight
    copied = {k: state["features." + k.split(".", 2)[2]] for k in reference.state_dict() if k.startswith("net.slice")}
    reference.load_state_dict(copied, strict=False)
    x, y = image_pairs(1)
    with torch.no_grad():
        expected = reference(x, y).flatten()
        got = ours(x, y)
    assert got.shape == (4,)
    assert expected.min() > 1e-3
    assert (got - expected).abs().max() < 1e-5
    per_layer = ours.layer_distances(x, y)
    assert len(per_layer) == 5 and torch.allclose(torch.stack(per_layer).sum(0), got)


def test_lpips_identity_symmetry_gradient_and_frozen(backbone_file):
    path, _ = backbone_file("alexnet")
    network = LPIPSNetwork("alex", backbone_path=path)
    network.train()
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    x, y = image_pairs(2)
    assert network(x, x).abs().max() < 1e-7
    assert torch.allclose(network(x, y), network(y, x), atol=1e-6)
    x = x.requires_grad_(True)
    network(x, y).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in network.parameters())
    with pytest.raises(ValueError):
        network(x, y[:, :, :32])


def test_dists_equals_torchmetrics(monkeypatch, backbone_file):
    import torchmetrics.functional.image.dists as tm_dists
    from torchvision.models.vgg import cfgs, make_layers

    path, state = backbone_file("vgg16", seed=5)
    # torchmetrics builds torchvision's vgg16(weights=DEFAULT) (a download); give it the same random features.
    features = make_layers(cfgs["D"])
    features.load_state_dict({k[len("features."):]: v for k, v in state.items()})
    monkeypatch.setattr(tm_dists, "vgg16", lambda weights=None: SimpleNamespace(features=features))
    x, y = image_pairs(3)
    expected = tm_dists.deep_image_structure_and_texture_similarity((x + 1) / 2, (y + 1) / 2, reduction="none")
    network = DISTSNetwork(backbone_path=path)
    with torch.no_grad():
        got = network(x, y)
    assert got.shape == (4,)
    assert expected.min() > 1e-4
    assert (got - expected.detach()).abs().max() < 1e-5


def test_dists_identity_symmetry_gradient_and_frozen(backbone_file):
    path, _ = backbone_file("vgg16")
    network = DISTSNetwork(backbone_path=path)
    network.train()
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    assert network.alpha.shape == network.beta.shape == (1, 1475, 1, 1)
    assert (network.alpha.sum() + network.beta.sum()).item() == pytest.approx(1.0, abs=1e-4)
    x, y = image_pairs(4, size=32)
    assert network(x, x).abs().max() < 1e-6
    assert torch.allclose(network(x, y), network(y, x), atol=1e-6)
    y = y.requires_grad_(True)
    network(x, y).sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


@pytest.mark.parametrize("build, filename", [
    (lambda: LPIPSNetwork("alex"), "alexnet-owt-7be5be79.pth"),
    (lambda: LPIPSNetwork("vgg"), "vgg16-397923af.pth"),
    (lambda: DISTSNetwork(), "vgg16-397923af.pth"),
])
def test_missing_backbone_names_the_file(tmp_path, monkeypatch, build, filename):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingWeightError, match=filename):
        build()


def test_backbone_found_in_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    state = random_torchvision_features("alexnet")
    state["classifier.1.weight"] = torch.zeros(4, 9216)  # torchvision's ImageNet head is ignored
    torch.save(state, cache / "alexnet-owt-7be5be79.pth")
    network = LPIPSNetwork("alex")
    assert torch.equal(network.features[0].weight, state["features.0.weight"])


def test_mismatched_weight_files_are_named(tmp_path, backbone_file):
    _, state = backbone_file("alexnet")
    state["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    del state["features.10.bias"]
    bad = tmp_path / "bad_alexnet.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError) as error:
        LPIPSNetwork("alex", backbone_path=bad)
    assert "3.weight (file (192, 64, 3, 3), model (192, 64, 5, 5))" in str(error.value)
    assert "10.bias" in str(error.value)
    torch.save({"fc.weight": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match="fc.weight"):
        LPIPSNetwork("alex", backbone_path=bad)
    path, _ = backbone_file("alexnet")
    linear = tmp_path / "alex_linear.pth"
    torch.save({f"lin{k}.model.1.weight": torch.ones(1, c, 1, 1) for k, c in enumerate((64, 192, 384, 256))}, linear)
    with pytest.raises(CheckpointError, match="4.weight"):
        LPIPSNetwork("alex", backbone_path=path, linear_path=linear)
    dists_weights = tmp_path / "weights.pt"
    torch.save({"alpha": torch.ones(1, 1475, 1, 1)}, dists_weights)
    vgg, _ = backbone_file("vgg16")
    with pytest.raises(CheckpointError, match="beta"):
        DISTSNetwork(backbone_path=vgg, weights_path=dists_weights)
