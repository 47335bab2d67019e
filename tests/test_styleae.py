"""StyleAE: architecture, attribute units, edits, losses, files, the edit comparison, and training evidence."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from stylegan_lightning.serialization import CheckpointError
from stylegan_lightning.styleae import (REFERENCE_METRICS, DirectionEditor, StyleAE, StyleAEEditor, attribute_loss,
                                        comparison_rows, evaluate_attribute_edits, evaluate_reference_protocol,
                                        fit_interfacegan_directions, load_styleae, pearson, save_styleae,
                                        search_coordinate, styleae_losses, tolerance_loss)
from stylegan_lightning.styleae.model import fit_label_ranges

pytestmark = pytest.mark.usefixtures("single_thread")


class TanhGenerator(nn.Module):
    """A toy 'generator' with an exactly invertible map: image = tanh(A w) as [N, 3, 4, 4]."""

    def __init__(self, dim: int, seed: int = 0):
        super().__init__()
        self.A = torch.randn(48, dim, generator=torch.Generator().manual_seed(seed)) / dim ** 0.5

    def forward(self, w: torch.Tensor, noise: str = "const") -> torch.Tensor:
        return torch.tanh(w @ self.A.T).view(-1, 3, 4, 4)


class LinearProbe(nn.Module):
    """A classifier interface whose binary attribute i is sigmoid(2.5 · w_i) of the code behind the image, so the
    attributes are independent and each lives on one coordinate axis of W."""

    output_kinds = ["binary"] * 3
    attribute_names = ["a", "b", "c"]

    def __init__(self, generator: TanhGenerator):
        super().__init__()
        self.inverse = torch.linalg.pinv(generator.A)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        w = torch.atanh(images.flatten(1).clamp(-0.9999, 0.9999)) @ self.inverse.T
        return torch.sigmoid(2.5 * w[:, :3])


@pytest.fixture(scope="module")
def toy():
    generator = TanhGenerator(8)
    probe = LinearProbe(generator)
    w = torch.randn(1100, 8, generator=torch.Generator().manual_seed(1))
    return generator, probe, w, probe.predict(generator(w))


# ---------------------------------------------------------------------------------------------- architecture
def test_architecture_is_the_reference_autoencoder():
    model = StyleAE(8, ["smile", "age"], hidden_dim=6, n_layers=4)
    linears = [m for m in model.encoder if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(6, 8), (6, 6), (6, 6), (8, 6)]
    prelus = [m for m in model.encoder if isinstance(m, nn.PReLU)]
    assert len(prelus) == 3 and all(float(p.weight.detach()) == pytest.approx(0.9) for p in prelus)
    decoder = [m for m in model.decoder if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in decoder] == [(6, 8), (6, 6), (6, 6), (8, 6)]
    for layer, mirror in zip(decoder, reversed(linears)):  # initialised from the encoder's transposes
        assert torch.equal(layer.weight, mirror.weight.t()) and layer.weight is not mirror.weight
    assert all(float(p.weight.detach()) == pytest.approx(1 / 0.9) for p in model.decoder if isinstance(p, nn.PReLU))
    three = StyleAE(8, ["smile"], n_layers=3)  # the paper's "three fully connected layers" variant
    assert sum(isinstance(m, nn.Linear) for m in three.encoder) == 3
    with pytest.raises(ValueError, match="distinct"):
        StyleAE(8, ["a", "a"])
    with pytest.raises(ValueError, match="low < high"):
        StyleAE(8, ["age"], label_ranges=[[5, 5]])


def test_biases_start_as_the_reference_leaves_them():
    """The reference re-initialises only the weights (Xavier-normal): every bias is nn.Linear's own draw, uniform
    in ±1/sqrt(fan_in), encoder and decoder apart. ``bias_init="zeros"`` is the alternative."""
    torch.manual_seed(7)
    model = StyleAE(64, ["smile"], n_layers=4)
    torch.manual_seed(7)
    first = nn.Linear(64, 64)  # the same draw as the encoder's first layer
    linears = [m for part in (model.encoder, model.decoder) for m in part if isinstance(m, nn.Linear)]
    assert torch.equal(linears[0].bias, first.bias)
    biases = torch.cat([m.bias.detach() for m in linears])
    assert float(biases.abs().max()) <= 1 / 8 and len(biases) == 8 * 64
    assert float(biases.std()) == pytest.approx(1 / 8 / math.sqrt(3), rel=0.15)  # U(-1/8, 1/8)
    encoder_biases = {tuple(m.bias.tolist()) for m in linears[:4]}
    assert not encoder_biases & {tuple(m.bias.tolist()) for m in linears[4:]}  # the decoder's are its own draws
    zeros = StyleAE(64, ["smile"], n_layers=4, bias_init="zeros")
    assert all(torch.count_nonzero(m.bias) == 0 for part in (zeros.encoder, zeros.decoder) for m in part
               if isinstance(m, nn.Linear))
    with pytest.raises(ValueError, match="bias_init"):
        StyleAE(8, ["smile"], bias_init="normal")


def test_label_ranges_are_min_max_over_the_data():
    """Continuous labels (age, yaw) get the data's min and max (the reference's min-max scaling); labels inside
    [0, 1] keep (0, 1) under "auto" and get their observed span under "data"; missing values are left out."""
    nan = float("nan")
    labels = torch.tensor([[0.2, 23.0, -30.5], [0.9, 71.0, 12.0], [nan, 40.0, nan], [0.4, nan, 44.5]])
    names = ["smile", "age", "yaw"]
    assert fit_label_ranges(labels, "auto", names=names) == [[0.0, 1.0], [23.0, 71.0], [-30.5, 44.5]]
    data = fit_label_ranges(labels, "data", names=names)
    assert sum(data, []) == pytest.approx([0.2, 0.9, 23.0, 71.0, -30.5, 44.5])
    assert fit_label_ranges(labels, "ranges") == [[0.0, 1.0]] * 3
    given = [[0, 1], [0, 100], [-90, 90]]
    assert fit_label_ranges(labels, "auto", given) == given
    with pytest.raises(ValueError, match="'age'.*two distinct"):
        fit_label_ranges(torch.tensor([[0.5, 30.0], [0.1, 30.0]]), "data", names=["smile", "age"])
    with pytest.raises(ValueError, match="no label_ranges"):
        fit_label_ranges(labels, "data", given)
    model = StyleAE(6, names)
    model.set_label_ranges(fit_label_ranges(labels, "auto", names=names))
    coordinates = model.to_coordinates(torch.tensor([[0.5, 23.0, -30.5], [0.5, 71.0, 44.5], [0.5, 47.0, 7.0]]))
    assert torch.allclose(coordinates, torch.tensor([[0.0, -1.0, -1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]))
    # the ranges travel in the state dict, and a loaded state brings its config along
    other = StyleAE(6, names)
    other.load_state_dict(model.state_dict())
    assert other.config["label_ranges"] == [[0.0, 1.0], [23.0, 71.0], [-30.5, 44.5]]


def _orthogonal_styleae() -> StyleAE:
    """Square layers with orthogonal weights: the transposed decoder is then the exact inverse of the encoder."""
    torch.manual_seed(0)
    model = StyleAE(6, ["smile", "age"], n_layers=3, label_ranges=[[0, 1], [0, 100]])
    with torch.no_grad():
        for layer in model.encoder:
            if isinstance(layer, nn.Linear):
                nn.init.orthogonal_(layer.weight)
                layer.bias.normal_()
        encoder = [m for m in model.encoder if isinstance(m, nn.Linear)]
        decoder = [m for m in model.decoder if isinstance(m, nn.Linear)]
        for layer, mirror in zip(decoder, reversed(encoder)):  # Wᵀ(x − b) undoes W h + b
            layer.weight.copy_(mirror.weight.t())
            layer.bias.copy_(-(mirror.weight.t() @ mirror.bias))
    return model


def test_an_exact_inverse_decoder_makes_edits_exact():
    model = _orthogonal_styleae()
    w = torch.randn(5, 6)
    code, reconstruction = model(w)
    assert torch.allclose(reconstruction, w, atol=1e-4)  # PReLU(1/0.9) undoes PReLU(0.9), Wᵀ undoes W
    edited = model.edit(w, "age", coordinate=0.25)
    after = model.encode(edited)
    assert torch.allclose(after[:, 1], torch.full((5,), 0.25), atol=1e-4)
    keep = [0] + list(range(2, 6))
    assert torch.allclose(after[:, keep], code[:, keep], atol=1e-4)  # every other coordinate is unchanged
    shifted = model.encode(model.edit(w, 0, shift=torch.arange(5.0)))
    assert torch.allclose(shifted[:, 0], code[:, 0] + torch.arange(5.0), atol=1e-4)


def test_units_edits_with_residual_and_bad_input():
    model = StyleAE(6, ["smile", "age"], label_ranges=[[0, 1], [0, 100]])
    values = torch.tensor([[0.5, 25.0], [1.0, 100.0]])
    coordinates = model.to_coordinates(values)
    assert torch.allclose(coordinates, torch.tensor([[0.0, -0.5], [1.0, 1.0]]))
    assert torch.allclose(model.to_values(coordinates), values)
    assert float(model.coordinate_of("age", 75)) == pytest.approx(0.5)
    w = torch.randn(3, 6)
    with torch.no_grad():
        assert torch.allclose(model.edit(w, "smile", shift=0.0, keep_residual=True), w, atol=1e-6)
        assert torch.allclose(model.edit(w, "smile", shift=0.0), model(w)[1], atol=1e-6)
        w_plus = torch.randn(2, 4, 6)  # W+ codes are edited row by row
        rows = model.edit(w_plus, "age", coordinate=0.3)
        assert torch.allclose(rows[1, 2], model.edit(w_plus[1, 2:3], "age", coordinate=0.3)[0], atol=1e-6)
    with pytest.raises(ValueError, match="unknown attribute"):
        model.edit(w, "beard", shift=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        model.edit(w, "smile")
    with pytest.raises(ValueError, match="NaN"):
        model.encode(torch.full((1, 6), float("nan")))
    with pytest.raises(ValueError, match=r"\[\.\.\., 6\]"):
        model.encode(torch.randn(2, 5))


# ---------------------------------------------------------------------------------------------- losses
def test_losses_follow_their_formulas(toy):
    prediction, target = torch.tensor([0.0, 0.1, -0.5]), torch.tensor([0.02, 0.0, 0.0])
    assert float(tolerance_loss(prediction, target, 0.04)) == pytest.approx((0 + 0.06 + 0.46) / 3)
    coordinates, targets = torch.tensor([[0.5, 1.0]]), torch.tensor([[float("nan"), 0.0]])
    assert float(attribute_loss(coordinates, targets)) == pytest.approx(1.0)  # the missing label is left out
    assert float(attribute_loss(coordinates, torch.full((1, 2), float("nan")))) == 0.0
    x, y = torch.randn(50), torch.randn(50)
    assert pearson(x, y) == pytest.approx(float(torch.corrcoef(torch.stack([x, y]))[0, 1]), abs=1e-6)
    generator, _, w, labels = toy
    model = StyleAE(8, ["a", "b", "c"], n_layers=2)
    terms = styleae_losses(model, generator, w[:16], labels[:16], attribute_lambda=0.3, pixel_tolerance=0.04)
    with torch.no_grad():
        code, reconstruction = model(w[:16])
        image, target = generator(reconstruction), generator(w[:16])
    expected = (0.7 * torch.mean((image - target) ** 2) + 0.3 * torch.mean((code[:, :3] - (2 * labels[:16] - 1)) ** 2)
                + torch.relu((image - target).abs() - 0.04).mean())
    assert terms["loss"].item() == pytest.approx(float(expected), rel=1e-5)


# ---------------------------------------------------------------------------------------------- files
def test_files_round_trip_and_bad_files_are_refused(tmp_path):
    model = StyleAE(6, ["smile", "age"], n_layers=2, label_ranges=[[0, 1], [0, 100]]).eval()
    path = save_styleae(tmp_path / "styleae.pt", model)
    loaded = load_styleae(path)
    w = torch.randn(4, 6)
    assert loaded.attribute_names == ["smile", "age"] and loaded.config == model.config
    assert torch.equal(loaded.encode(w), model.encode(w)) and torch.equal(loaded.decode(w), model.decode(w))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError):
        load_styleae(truncated)
    data = torch.load(path, weights_only=True)
    data["state_dict"]["encoder.0.weight"] = torch.zeros(3, 3)
    torch.save(data, tmp_path / "mismatched.pt")
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_styleae(tmp_path / "mismatched.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="neither"):
        load_styleae(tmp_path / "other.pt")


# ---------------------------------------------------------------------------------------------- comparison
def _exact_editors(mixed_limit: float = 3.0) -> tuple[StyleAE, DirectionEditor, DirectionEditor]:
    """An identity StyleAE (each attribute is one coordinate of w), InterFaceGAN along the true axes, and a
    "mixed" direction editor whose normal for each attribute also moves another one."""
    from stylegan_lightning.editing import Direction

    model = StyleAE(8, ["a", "b", "c"], n_layers=1, bias_init="zeros")
    with torch.no_grad():
        model.encoder[0].weight.copy_(torch.eye(8))
        model.decoder[0].weight.copy_(torch.eye(8))
    axes = {name: torch.eye(8)[i] for i, name in enumerate("abc")}
    clean = DirectionEditor({n: Direction(v) for n, v in axes.items()}, limit=4.0)
    mixed = DirectionEditor({n: Direction(v + axes["c" if n != "c" else "a"]) for n, v in axes.items()},
                            limit=mixed_limit)
    mixed.name = "mixed"
    return model, clean, mixed


def test_edit_comparison_measures_disentanglement_exactly(toy):
    """An identity StyleAE moves exactly one attribute; a direction that mixes two attributes moves both."""
    generator, probe, w, _ = toy
    model, clean, mixed = _exact_editors()
    codes = w[:40]
    results = evaluate_attribute_edits(codes, generator, probe, [StyleAEEditor(model, limit=4.0), clean, mixed],
                                       margin=0.3, steps=16)
    for attribute in "abc":
        for editor in ("styleae", "interfacegan"):
            metrics = results[attribute][editor]
            assert metrics["success"] == 1.0 and metrics["other_change"] < 1e-3
            assert metrics["target_change"] > 0.3
        assert results[attribute]["mixed"]["other_change"] > 0.05
    rows = comparison_rows(results)
    assert rows[-1][:2] == ["mean", "mixed"] and len(rows) == 3 * 3 + 3
    # the search for the coordinate reaching a probability: p = sigmoid(2.5 c) = 0.9 at c = logit(0.9) / 2.5
    values, scores = search_coordinate(model, generator, probe, codes[:5], "b", 0.9,
                                       candidates=torch.linspace(-2, 2, 401))
    assert torch.allclose(values, torch.full((5,), math.log(9) / 2.5), atol=0.01)
    assert torch.allclose(scores, torch.full((5,), 0.9), atol=0.01)
    with pytest.raises(ValueError, match="margin"):
        evaluate_attribute_edits(codes, generator, probe, [clean], margin=0.6)


class ShiftedJudge(LinearProbe):
    """A second classifier, outputs in another order, that calls "b" present only above w_b = 1.2 (the labeller:
    above 0), so it disagrees with the labeller on edits that stop at the labeller's target."""

    attribute_names = ["c", "b", "a"]

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        p = super().predict(images)
        w_b = torch.logit(p[:, 1].clamp(1e-6, 1 - 1e-6)) / 2.5
        return torch.stack([p[:, 2], torch.sigmoid(2.5 * (w_b - 1.2)), p[:, 0]], 1)


def test_reference_protocol_searches_with_the_labeller_and_counts_with_the_judge(toy):
    """The search aims the labeller's score at 0.91 (w_b = logit(0.91) / 2.5 = 0.93 going up); the judge, which
    calls b present only above 1.2, then fails every upward edit and passes every downward one: success is the
    share of codes the labeller sees with b (exactly), and the other attributes are compared on those codes only."""
    generator, probe, w, _ = toy
    model, clean, mixed = _exact_editors(mixed_limit=6.0)
    editors = [StyleAEEditor(model, span=(0.0, 2.0)), clean, mixed]
    codes, judge = w[:40], ShiftedJudge(generator)
    results = evaluate_reference_protocol(codes, generator, probe, judge, editors, candidates=201)
    has_b = float((codes[:, 1] >= 0).float().mean())
    for name in ("styleae", "interfacegan", "mixed"):
        assert results["b"][name]["success"] == pytest.approx(has_b)
        assert results["b"][name]["common"] == round(has_b * 40)
        assert results["a"][name]["success"] == 1.0 and results["a"][name]["common"] == 40
        assert math.isfinite(results["a"][name]["psnr"]) and "identity" not in results["a"][name]
    for attribute in "abc":
        for name in ("styleae", "interfacegan"):
            assert results[attribute][name]["other_l2"] < 1e-3
        assert results[attribute]["mixed"]["other_l2"] > 0.5 and results[attribute]["mixed"]["other_change"] > 0.05
    # the other-attribute L2 is the norm over (common codes x other attributes) of the judge's changes
    assert results["a"]["mixed"]["other_l2"] >= results["a"]["mixed"]["other_change"] * math.sqrt(40 * 2) * 0.99
    up = evaluate_reference_protocol(codes, generator, probe, judge, editors, ["b"], direction="up", candidates=201)
    # going up for every code: the StyleAE span sets b to 0.93 and always fails; a direction path starts at the
    # code, so codes already above the judge's 1.2 stay there and pass. No code passes with all: nothing to compare
    assert up["b"]["styleae"]["success"] == 0.0
    assert up["b"]["interfacegan"]["success"] == pytest.approx(float((codes[:, 1] > 1.2).float().mean()))
    assert all(m["common"] == 0 and math.isnan(m["other_l2"]) for m in up["b"].values())
    assert comparison_rows(up, REFERENCE_METRICS)[0][2:] == [0.0, 0.0, "-", "-", "-", "-"]
    with pytest.raises(ValueError, match="other than the labeller"):
        evaluate_reference_protocol(codes, generator, probe, probe, editors)
    with pytest.raises(ValueError, match="target"):
        evaluate_reference_protocol(codes, generator, probe, judge, editors, target=0.3)


def test_training_disentangles_attributes_better_than_chance(toy):
    """Evidence on the toy: the paper's 3-layer StyleAE trained with the reference objective reconstructs w,
    its attribute coordinates follow the classifier, and moving one coordinate moves that attribute only."""
    generator, probe, w, labels = toy
    torch.manual_seed(0)
    model = StyleAE(8, ["a", "b", "c"], n_layers=3)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    held, held_labels = w[1000:], labels[1000:]
    with torch.no_grad():
        start = float(torch.mean((model(held)[1] - held) ** 2))
    order = torch.Generator().manual_seed(0)
    for _ in range(3000):
        index = torch.randint(0, 1000, (16,), generator=order)
        loss = styleae_losses(model, generator, w[index], labels[index])["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        code, reconstruction = model(held)
        error = float(torch.mean((reconstruction - held) ** 2))
        correlations = [pearson(code[:, i], held_labels[:, i]) for i in range(3)]
        before = probe.predict(generator(held))
        changes = []
        for i, name in enumerate("abc"):
            after = probe.predict(generator(model.edit(held, name, shift=0.5)))
            changes.append((after - before).mean(0))
    print("w MSE", start, "->", error, "correlations", correlations, "signed dp", [c.tolist() for c in changes])
    assert error < 0.01 * float(held.var(0).mean()) and error < 0.01 * start
    assert min(correlations) > 0.85
    for i, change in enumerate(changes):
        others = [j for j in range(3) if j != i]
        assert change[i] > 0.15  # +0.5 on the coordinate raises the attribute's probability
        assert change[others].abs().max() < 0.1 * change[i]  # and leaves the other attributes nearly unchanged
    directions = fit_interfacegan_directions(w[:1000], labels[:1000], ["a", "b", "c"])
    for i, name in enumerate("abc"):  # the SVM baseline on the same pairs finds the true axis
        assert abs(float(directions[name].unit().vector[i])) > 0.95
