"""Direction files (InterFaceGAN .npy, e4e / HyperStyle .pt, our .pt), layer selections and edit application."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylegan_lightning.editing import (Direction, apply_direction, apply_strengths, load_direction, load_pca,
                                        normalize_layers, project_out, resolve_layers)
from stylegan_lightning.serialization import CheckpointError

D, N_LATENT = 8, 6


def _vector(seed: int = 0, dim: int = D) -> torch.Tensor:
    return torch.randn(dim, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------- layer selections
def test_layer_specs_resolve():
    assert resolve_layers(None, 18) is None and resolve_layers("all", 18) is None
    assert resolve_layers("0-7", 18) == list(range(8))
    assert resolve_layers("8-", 18) == list(range(8, 18))
    assert resolve_layers("0:4,10", 18) == [0, 1, 2, 3, 10]
    assert resolve_layers(":3", 18) == [0, 1, 2]
    assert resolve_layers(slice(4, 8), 18) == [4, 5, 6, 7]
    assert resolve_layers(range(2, 4), 18) == [2, 3]
    assert resolve_layers([3, 1, 3, -1], 18) == [1, 3, 17]
    assert resolve_layers(5, 18) == [5]
    assert normalize_layers(slice(None, 8)) == ":8" and normalize_layers(range(2)) == [0, 1]
    with pytest.raises(ValueError, match="outside"):
        resolve_layers("0-20", 18)
    with pytest.raises(ValueError, match="cannot read"):
        normalize_layers("a-b")
    with pytest.raises(ValueError, match="selects no layer"):
        resolve_layers("20:", 18)


# ---------------------------------------------------------------------- files
def test_interfacegan_npy_round_trip(tmp_path):
    vector = _vector()
    boundary = (vector / vector.norm()).numpy().reshape(1, D).astype(np.float32)  # InterFaceGAN's layout
    np.save(tmp_path / "smile_boundary.npy", boundary)
    direction = load_direction(tmp_path / "smile_boundary.npy")
    assert direction.name == "smile_boundary" and direction.layers is None and direction.intercept == 0
    assert direction.vector.shape == (D,)
    assert torch.equal(direction.vector, torch.from_numpy(boundary[0]))
    assert direction.metadata["source"] == "interfacegan"
    direction.save_interfacegan(tmp_path / "again.npy")
    again = np.load(tmp_path / "again.npy", allow_pickle=False)
    assert again.shape == (1, D) and again.dtype == np.float32 and np.array_equal(again, boundary)


def test_e4e_pt_keeps_its_norm(tmp_path):
    vector = 3.5 * _vector(1) / _vector(1).norm()
    torch.save(vector.reshape(1, D), tmp_path / "age.pt")  # e4e / HyperStyle: a bare [1, 512] tensor
    torch.save(vector, tmp_path / "flat.pt")  # [512] also occurs
    for name in ("age.pt", "flat.pt"):
        direction = load_direction(tmp_path / name)
        assert direction.norm == pytest.approx(3.5, rel=1e-6)
        assert torch.equal(direction.vector, vector) and direction.metadata["source"] == "e4e"
    # e4e applies `latent + factor * direction` to every W+ layer, unnormalised: we match it exactly
    w_plus = torch.randn(2, N_LATENT, D)
    edited = apply_direction(w_plus, load_direction(tmp_path / "age.pt"), -2.0)
    assert torch.allclose(edited, w_plus + -2.0 * vector.reshape(1, D), atol=1e-6)
    direction.save_e4e(tmp_path / "out.pt")
    written = torch.load(tmp_path / "out.pt", weights_only=True)
    assert written.shape == (1, D) and torch.equal(written[0], vector)
    assert direction.unit().norm == pytest.approx(1.0, abs=1e-6)


def test_native_format_round_trip(tmp_path):
    direction = Direction(_vector(2), name="smile", layers="0-3", intercept=0.25,
                          metadata={"val_accuracy": 0.93, "counts": [1, 2], "nested": {"a": None}})
    direction.save(tmp_path / "smile.pt")
    loaded = load_direction(tmp_path / "smile.pt")
    assert torch.equal(loaded.vector, direction.vector)
    assert (loaded.name, loaded.layers, loaded.intercept) == ("smile", "0-3", 0.25)
    assert loaded.metadata == direction.metadata
    override = load_direction(tmp_path / "smile.pt", name="other", layers=[1])
    assert (override.name, override.layers) == ("other", [1])
    with pytest.raises(TypeError, match="not plain data"):
        Direction(_vector(), metadata={"bad": object()}).save(tmp_path / "bad.pt")


def test_bad_direction_files(tmp_path):
    torch.save({"something": torch.zeros(3)}, tmp_path / "dict.pt")
    with pytest.raises(CheckpointError, match="not a direction file"):
        load_direction(tmp_path / "dict.pt")
    torch.save(torch.zeros(1, D), tmp_path / "zero.pt")
    with pytest.raises(CheckpointError, match="zero"):
        load_direction(tmp_path / "zero.pt")
    torch.save(torch.zeros(2, D), tmp_path / "matrix.pt")
    with pytest.raises(CheckpointError, match=r"\[D\]"):
        load_direction(tmp_path / "matrix.pt")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError):
        load_direction(tmp_path / "obj.npy")  # never unpickled
    with pytest.raises(CheckpointError, match="does not exist"):
        load_direction(tmp_path / "missing.npy")
    torch.save({"comp": torch.eye(2), "mean": torch.zeros(2), "std": torch.ones(2)}, tmp_path / "pca.pt")
    with pytest.raises(CheckpointError, match="load_pca"):
        load_direction(tmp_path / "pca.pt")
    with pytest.raises(CheckpointError, match="not a PCA file"):
        load_pca(tmp_path / "dict.pt")


# ---------------------------------------------------------------------- applying
def test_apply_w_and_w_plus_all_layers():
    direction = Direction(_vector(3))
    w = torch.randn(4, D)
    assert torch.equal(apply_direction(w, direction, 0.0), w)
    edited = apply_direction(w, direction, 1.5)
    assert edited.shape == (4, D)
    assert torch.allclose(edited - w, (1.5 * direction.vector).expand(4, D), atol=1e-6)
    w_plus = torch.randn(4, N_LATENT, D)
    edited_plus = apply_direction(w_plus, direction, -2.0)
    assert edited_plus.shape == w_plus.shape
    assert torch.allclose(edited_plus - w_plus, (-2.0 * direction.vector).expand(4, N_LATENT, D), atol=1e-6)
    # one strength per code
    per_code = apply_direction(w, direction, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert torch.allclose(per_code[3] - w[3], 3 * direction.vector, atol=1e-6) and torch.equal(per_code[0], w[0])


def test_apply_layer_subsets():
    direction = Direction(_vector(4), layers="0-2")
    w = torch.randn(3, D)
    with pytest.raises(ValueError, match="n_latent"):
        apply_direction(w, direction, 1.0)
    edited = apply_direction(w, direction, 2.0, n_latent=N_LATENT)  # W edited on layers 0..2 becomes W+
    assert edited.shape == (3, N_LATENT, D)
    assert torch.allclose(edited[:, :3], (w + 2.0 * direction.vector).unsqueeze(1).expand(-1, 3, -1), atol=1e-6)
    assert torch.equal(edited[:, 3:], w.unsqueeze(1).expand(-1, N_LATENT - 3, -1))
    identity = apply_direction(w, direction, 0.0, n_latent=N_LATENT)
    assert torch.equal(identity, w.unsqueeze(1).expand(-1, N_LATENT, -1))
    w_plus = torch.randn(3, N_LATENT, D)
    changed = (apply_direction(w_plus, direction, 1.0, layers=[1, 4]) - w_plus).norm(dim=2) > 0  # override
    assert changed.tolist() == [[False, True, False, False, True, False]] * 3
    all_layers = apply_direction(w_plus, direction, 1.0, layers="all")
    assert torch.allclose(all_layers - w_plus, direction.vector.expand_as(w_plus), atol=1e-6)
    with pytest.raises(ValueError, match="n_latent=4"):
        apply_direction(w_plus, direction, 1.0, n_latent=4)


def test_apply_absolute_sets_signed_distance():
    direction = Direction(2 * _vector(5), intercept=0.7)
    w = torch.randn(5, D)
    for target in (-2.0, 0.0, 3.0):
        edited = apply_direction(w, direction, target, mode="absolute")
        assert torch.allclose(direction.distance(edited), torch.full((5,), target), atol=1e-5)
        # only the component along the normal moves
        moved = edited - w
        unit = direction.vector / direction.vector.norm()
        assert torch.allclose(moved - (moved @ unit).unsqueeze(1) * unit, torch.zeros_like(moved), atol=1e-5)


def test_apply_strengths_grid_and_gradients():
    direction = Direction(_vector(6), layers=[0, 1])
    w = torch.randn(2, D, requires_grad=True)
    grid = apply_strengths(w, direction, [-1.0, 0.0, 2.0], n_latent=N_LATENT)
    assert grid.shape == (3, 2, N_LATENT, D)
    for index, strength in enumerate([-1.0, 0.0, 2.0]):
        assert torch.equal(grid[index], apply_direction(w, direction, strength, n_latent=N_LATENT))
    grid.sum().backward()
    assert torch.allclose(w.grad, torch.full_like(w, 3 * N_LATENT))


def test_project_out_matches_interfacegan():
    primal, cond1, cond2 = (Direction(_vector(s) / _vector(s).norm(), name=n) for s, n in
                            ((7, "smile"), (8, "age"), (9, "gender")))
    one = project_out(primal, cond1)
    expected = primal.vector - (primal.vector @ cond1.vector) * cond1.vector  # project_boundary, 1 condition
    assert torch.allclose(one.vector, expected / expected.norm(), atol=1e-6)
    assert one.metadata["conditioned_on"] == ["age"] and one.name == "smile"
    two = project_out(primal, cond1, cond2)
    assert abs(float(two.vector @ cond1.vector)) < 1e-6 and abs(float(two.vector @ cond2.vector)) < 1e-6
    assert two.norm == pytest.approx(1.0, abs=1e-6)
    # InterFaceGAN's closed form for two conditions
    p, c1, c2 = (d.vector.double() for d in (primal, cond1, cond2))
    d12 = c1 @ c2
    alpha = (p @ c1 - (p @ c2) * d12) / (1 - d12 ** 2)
    beta = (p @ c2 - (p @ c1) * d12) / (1 - d12 ** 2)
    closed = p - alpha * c1 - beta * c2
    assert torch.allclose(two.vector.double(), closed / closed.norm(), atol=1e-6)
    with pytest.raises(ValueError, match="span"):
        project_out(primal, primal)
