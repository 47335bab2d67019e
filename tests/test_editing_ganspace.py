"""GANSpace PCA: fitting, e4e / GANSpace file formats, and e4e's edit semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylegan_lightning.editing import (PCA, apply_direction, apply_ganspace, apply_ganspace_edits, fit_ganspace,
                                        fit_pca, ganspace_delta, load_pca, sample_latents)
from stylegan_lightning.stylegan2 import FrozenGenerator

K = 6


@pytest.fixture(scope="module")
def frozen():
    from stylegan_lightning.stylegan2 import Generator

    torch.manual_seed(0)
    return FrozenGenerator(Generator(32, style_dim=32, n_mlp=2, channel_max=16).eval(), n_mean_latent=256)


@pytest.fixture(scope="module")
def pca(frozen):
    return fit_pca(sample_latents(frozen, 3000, seed=0), n_components=K)


def test_sample_latents_deterministic(frozen):
    a, b, c = (sample_latents(frozen, 5, seed=s) for s in (3, 3, 4))
    assert a.shape == (5, 32) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, frozen.sample_w(5, generator=torch.Generator().manual_seed(3)))
    truncated = sample_latents(frozen, 5, seed=3, truncation=0.5)
    assert torch.allclose(truncated, frozen.latent_avg + 0.5 * (a - frozen.latent_avg), atol=1e-6)


def test_pca_components_orthonormal_and_std(frozen, pca):
    latents = sample_latents(frozen, 3000, seed=0)
    assert pca.comp.shape == (K, 32) and pca.mean.shape == (32,) and pca.std.shape == (K,)
    assert torch.allclose(pca.comp @ pca.comp.T, torch.eye(K), atol=1e-5)
    assert torch.allclose(pca.mean, latents.mean(0), atol=1e-5)
    projections = pca.project(latents)  # [N, K]
    assert torch.allclose(pca.std, projections.std(0), rtol=1e-4)  # sqrt(explained variance), ddof 1
    assert bool((pca.std[:-1] >= pca.std[1:]).all())  # sorted by variance
    assert torch.allclose(torch.corrcoef(projections.T), torch.eye(K), atol=1e-4)  # decorrelated
    assert 0 < float(pca.var_ratio.sum()) <= 1
    # the first component maximises the variance: no random unit direction beats it
    random = torch.nn.functional.normalize(torch.randn(200, 32, generator=torch.Generator().manual_seed(0)), dim=1)
    assert float(((latents - pca.mean) @ random.T).std(0).max()) <= float(pca.std[0]) + 1e-5
    low = fit_pca(latents, n_components=K, method="lowrank", niter=6)
    assert torch.allclose((low.comp * pca.comp).sum(1).abs(), torch.ones(K), atol=1e-3)
    assert torch.allclose(low.std, pca.std, rtol=1e-3)
    fitted = fit_ganspace(frozen, n_samples=3000, n_components=K, seed=0)
    assert torch.allclose(fitted.comp, pca.comp, atol=1e-5) and fitted.metadata["seed"] == 0


def test_e4e_pt_and_ganspace_npz_formats(tmp_path, pca):
    # e4e's editings/ganspace_pca/ffhq_pca.pt: {'comp': [K, 1, D], 'mean': [1, D], 'std': [K]}
    official = {"comp": pca.comp.unsqueeze(1).clone(), "mean": pca.mean.unsqueeze(0).clone(), "std": pca.std.clone()}
    torch.save(official, tmp_path / "ffhq_pca.pt")
    loaded = load_pca(tmp_path / "ffhq_pca.pt")
    assert torch.equal(loaded.comp, pca.comp) and torch.equal(loaded.mean, pca.mean)
    assert torch.equal(loaded.std, pca.std) and loaded.metadata["source"] == "e4e"
    # what we write is e4e's dict (extra keys are ignored by e4e)
    pca.save(tmp_path / "ours.pt")
    written = torch.load(tmp_path / "ours.pt", weights_only=True)
    for key in ("comp", "mean", "std"):
        assert written[key].shape == official[key].shape and torch.equal(written[key], official[key])
    assert torch.equal(load_pca(tmp_path / "ours.pt").var_ratio, pca.var_ratio)
    # GANSpace cache/components/*.npz: lat_comp [K, 1, D], lat_mean [1, D], lat_stdev [K]
    np.savez_compressed(tmp_path / "stylegan2-ffhq_style_ipca_c80_n1000000_w.npz",
                        lat_comp=official["comp"].numpy(), lat_mean=official["mean"].numpy(),
                        lat_stdev=official["std"].numpy(), act_comp=official["comp"].numpy())
    from_npz = load_pca(tmp_path / "stylegan2-ffhq_style_ipca_c80_n1000000_w.npz")
    assert torch.equal(from_npz.comp, pca.comp) and torch.equal(from_npz.std, pca.std)
    pca.save(tmp_path / "ours.npz")
    with np.load(tmp_path / "ours.npz", allow_pickle=False) as data:
        assert data["lat_comp"].shape == (K, 1, 32) and data["lat_mean"].shape == (1, 32)
        assert data["lat_stdev"].shape == (K,) and data["var_ratio"].shape == (K,)
    assert torch.equal(load_pca(tmp_path / "ours.npz").mean, pca.mean)


def _e4e_edit(latent: torch.Tensor, pca_dict: dict, index: int, start: int, end: int, strength: float):
    """Transcription of e4e's editings/ganspace.py (edit_latent + get_delta) for one W+ code [n, D]."""
    w_centered = latent - pca_dict["mean"]
    comp, std = pca_dict["comp"], pca_dict["std"]
    coordinate = torch.sum(w_centered[0].reshape(-1) * comp[index].reshape(-1)) / std[index]
    delta = (strength - coordinate) * comp[index] * std[index]
    padded = torch.zeros(latent.shape)
    padded[start:end] += delta.repeat(end - start, 1)
    return latent + padded


def test_e4e_coordinate_setting_semantics(pca):
    e4e_dict = pca.to_e4e_dict()
    w_plus = pca.mean + torch.randn(3, 8, 32, generator=torch.Generator().manual_seed(1))
    for index, start, end, strength in ((0, 2, 5, 3.0), (2, 0, 8, -1.5), (5, 7, 8, 0.0)):
        ours = apply_ganspace(w_plus, pca, index, start, end, strength)
        expected = torch.stack([_e4e_edit(code, e4e_dict, index, start, end, strength) for code in w_plus])
        assert torch.allclose(ours, expected, atol=1e-5)
        # on the edited layers the coordinate (measured on layer 0, in std units) becomes `strength`
        coordinate = pca.project(ours[:, start]) / pca.std
        reference = pca.project(w_plus[:, 0]) / pca.std
        if start == 0:
            assert torch.allclose(coordinate[:, index], torch.full((3,), strength), atol=1e-4)
        shift = (ours - w_plus)[:, start]
        assert torch.allclose(shift, ((strength - reference[:, index]) * pca.std[index]).unsqueeze(1)
                              * pca.comp[index], atol=1e-5)
        untouched = [layer for layer in range(8) if not start <= layer < end]
        assert torch.equal(ours[:, untouched], w_plus[:, untouched])
    # applying the same edit twice changes nothing more (it sets, it does not add)
    once = apply_ganspace(w_plus, pca, 1, 0, 8, 2.0)
    assert torch.allclose(apply_ganspace(once, pca, 1, 0, 8, 2.0), once, atol=1e-5)


def test_ganspace_shift_mode_w_input_and_batches(pca):
    w = torch.randn(4, 32, generator=torch.Generator().manual_seed(2))
    shifted = apply_ganspace(w, pca, 0, strength=2.0, mode="shift")  # every layer: W stays W
    assert shifted.shape == (4, 32)
    assert torch.allclose(shifted - w, (2.0 * pca.std[0] * pca.comp[0]).expand(4, -1), atol=1e-6)
    assert torch.allclose(shifted, apply_direction(w, pca.direction(0), 2.0 * float(pca.std[0])), atol=1e-5)
    assert torch.equal(apply_ganspace(w, pca, 0, strength=0.0, mode="shift"), w)
    set_w = apply_ganspace(w, pca, 3, strength=-1.0)
    assert torch.allclose(pca.project(set_w)[:, 3] / pca.std[3], torch.full((4,), -1.0), atol=1e-4)
    with pytest.raises(ValueError, match="n_latent"):
        apply_ganspace(w, pca, 0, 2, 4, 1.0)
    ranged = apply_ganspace(w, pca, 0, 2, 4, 1.0, n_latent=8)  # a layer range: W becomes W+
    assert ranged.shape == (4, 8, 32)
    assert torch.equal(ranged[:, 0], w) and torch.equal(ranged[:, 4:], w.unsqueeze(1).expand(-1, 4, -1))
    edits = apply_ganspace_edits(w, pca, [(0, 2, 4, 1.0), (1, 0, 8, -2.0)], n_latent=8)
    assert edits.shape == (2, 4, 8, 32) and torch.equal(edits[0], ranged)
    per_code = ganspace_delta(w, pca, 0, torch.tensor([0.0, 1.0, 2.0, 3.0]), mode="shift")
    assert torch.allclose(per_code[3], 3 * pca.std[0] * pca.comp[0], atol=1e-6) and not per_code[0].any()
    with pytest.raises(ValueError, match="mode"):
        apply_ganspace(w, pca, 0, strength=1.0, mode="add")
    with pytest.raises(IndexError):
        apply_ganspace(w, pca, K, strength=1.0)


def test_pca_validation():
    with pytest.raises(ValueError, match="inconsistent"):
        PCA(torch.eye(3), torch.zeros(4), torch.ones(3))
    with pytest.raises(ValueError, match="positive"):
        PCA(torch.eye(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="n_components"):
        fit_pca(torch.randn(10, 4), n_components=5)
