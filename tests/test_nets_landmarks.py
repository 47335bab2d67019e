"""FAN landmark network (layout, loading, soft-argmax, gradients) and dlib landmarks on real aligned faces."""

from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylegan_lightning.nets.fan import FAN, load_fan, load_fan_state_dict
from stylegan_lightning.nets.landmarks import (FFHQ_FAN_CROP, FLIP_PERMUTATION_68, DlibLandmarkDetector, LandmarkNet,
                                               build_landmark_net, fan_crop_from_box, hard_argmax, heatmap_targets,
                                               mirror_landmarks, soft_argmax)
from stylegan_lightning.serialization import CheckpointError, UnsafeCheckpointError
from stylegan_lightning.weights import ENV_VAR, MissingWeightError


def random_fan(num_modules: int = 1, seed: int = 0) -> FAN:
    """A FAN with random weights *and* random BatchNorm statistics, so every tensor of the state matters."""
    torch.manual_seed(seed)
    fan = FAN(num_modules)
    with torch.no_grad():
        for module in fan.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return fan.eval()


# --- FAN layout and loading ---------------------------------------------------------------------------------------

def test_fan4_keys_and_shapes_match_face_alignment():
    state = FAN(4).state_dict()
    expected = {  # written out from face_alignment/models.py
        "conv1.weight": (64, 3, 7, 7), "conv1.bias": (64,), "bn1.running_var": (64,),
        "conv2.bn1.weight": (64,), "conv2.conv1.weight": (64, 64, 3, 3), "conv2.conv2.weight": (32, 64, 3, 3),
        "conv2.conv3.weight": (32, 32, 3, 3), "conv2.downsample.0.running_mean": (64,),
        "conv2.downsample.2.weight": (128, 64, 1, 1), "conv4.downsample.2.weight": (256, 128, 1, 1),
        "m0.b1_4.conv1.weight": (128, 256, 3, 3), "m0.b2_4.bn3.weight": (64,), "m2.b3_2.conv2.weight": (64, 128, 3, 3),
        "m3.b2_plus_1.conv3.weight": (64, 64, 3, 3), "m3.b3_1.bn1.num_batches_tracked": (),
        "top_m_3.conv1.weight": (128, 256, 3, 3), "conv_last0.weight": (256, 256, 1, 1), "conv_last3.bias": (256,),
        "bn_end2.running_mean": (256,), "l0.weight": (68, 256, 1, 1), "l3.bias": (68,),
        "bl0.weight": (256, 256, 1, 1), "bl2.bias": (256,), "al1.weight": (256, 68, 1, 1), "al2.bias": (256,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    for absent in ("conv3.downsample.0.weight", "bl3.weight", "al3.weight", "m0.b2_plus_2.bn1.weight", "m4.b1_4"):
        assert not any(k.startswith(absent) for k in state), absent
    # stem 73 entries (conv1 2, bn1 5, ConvBlocks 24 + 18 + 24) + 4 stacks x 261 (hourglass 13 blocks x 18,
    # top_m 18, conv_last 2, bn_end 5, l 2) + 3 x (bl 2 + al 2)
    assert len(state) == 73 + 4 * 261 + 3 * 4 == 1129


@pytest.mark.parametrize("wrap", ["raw", "state_dict", "module_prefix", "no_bn_counters"])
def test_fan_strict_round_trip(tmp_path, wrap):
    fan = random_fan(num_modules=2, seed=1) if wrap == "raw" else random_fan(num_modules=1, seed=1)
    state = fan.state_dict()
    if wrap == "no_bn_counters":  # files written before PyTorch 0.4 have no num_batches_tracked
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    if wrap == "module_prefix":
        state = {"module." + k: v for k, v in state.items()}
    payload = state if wrap in ("raw", "no_bn_counters") else {"state_dict": state, "epoch": 40}
    path = tmp_path / "2DFAN-4.pth.tar"
    torch.save(payload, path, _use_new_zipfile_serialization=wrap != "module_prefix")  # legacy 2017-era format too
    loaded = load_fan(path)
    assert loaded.num_modules == fan.num_modules and not loaded.training
    loaded_state = loaded.state_dict()
    assert set(loaded_state) == set(fan.state_dict())
    for key, value in fan.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded_state[key], value), key
    if wrap == "raw":
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            assert torch.equal(loaded(x)[-1], fan(x)[-1])


def test_fan_mismatches_are_named(tmp_path):
    state = random_fan(num_modules=1).state_dict()
    state["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    state["extra.weight"] = torch.zeros(1)
    del state["m0.b3_2.conv1.weight"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        load_fan(path)
    message = str(error.value)
    assert "m0.b3_2.conv1.weight" in message and "extra.weight" in message
    assert "conv1.weight (file (64, 3, 5, 5), model (64, 3, 7, 7))" in message
    torch.save({"weights": [1, 2]}, path)
    with pytest.raises(CheckpointError, match="not a FAN state dict"):
        load_fan(path)


def test_torchscript_fan_is_refused_with_export_instructions(tmp_path):
    fan = random_fan(num_modules=1)
    example = torch.rand(1, 3, 64, 64)
    with warnings.catch_warnings():  # TorchScript is deprecated in recent PyTorch
        warnings.simplefilter("ignore")
        scripted = torch.jit.trace(fan, example, check_trace=False)
        zip_path = tmp_path / "2DFAN4-cd938726ad.zip"
        torch.jit.save(scripted, str(zip_path))
    with pytest.raises(UnsafeCheckpointError) as error:
        load_fan(zip_path)
    assert "TorchScript" in str(error.value) and "torch.jit.load" in str(error.value)
    assert ".state_dict()" in str(error.value)
    # Following the instructions (the user's own step, on a file they trust) gives a loadable state dict.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.jit.load(str(zip_path), map_location="cpu").state_dict()
    torch.save(exported, tmp_path / "2DFAN-4.pth.tar")
    loaded = load_fan(tmp_path / "2DFAN-4.pth.tar")
    with torch.no_grad():
        assert torch.allclose(loaded(example)[-1], fan(example)[-1], atol=1e-5)
    assert set(load_fan_state_dict(tmp_path / "2DFAN-4.pth.tar")) == set(fan.state_dict())


def test_missing_fan_weights(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(MissingWeightError, match="2DFAN-4.pth.tar"):
        build_landmark_net()
    with pytest.raises(MissingWeightError, match="nowhere.pth"):
        build_landmark_net(tmp_path / "nowhere.pth")


# --- heatmap decoding ---------------------------------------------------------------------------------------------

def test_soft_argmax_recovers_subpixel_gaussians():
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(3, 68, 2, generator=generator) * 56 + 4  # away from the border by more than the window
    maps = heatmap_targets(points, 64)  # sigma 1.75 px: FAN's training targets
    assert (soft_argmax(maps) - points).abs().max() < 0.05
    # the normalisation makes it independent of peak height and offset
    assert (soft_argmax(0.3 * maps - 2.0) - points).abs().max() < 0.05
    # whole-map softmax on a wider peak
    wide = heatmap_targets(points, 64, sigma=3.0)
    assert (soft_argmax(wide, temperature=0.05, window=None) - points).abs().max() < 0.05
    # rectangular maps, and peaks near the border still land inside
    rect = heatmap_targets(torch.tensor([[[30.25, 5.6], [0.0, 0.0]]]), (12, 40))
    out = soft_argmax(rect)
    assert (out[0, 0] - torch.tensor([30.25, 5.6])).abs().max() < 0.05
    assert out[0, 1].min() >= 0 and out[0, 1].max() < 0.6


def test_hard_argmax_quarter_pixel_rule():
    maps = torch.zeros(1, 3, 8, 8)
    maps[0, 0, 3, 5] = 1.0
    maps[0, 0, 3, 6] = 0.5   # right neighbour larger -> x + 0.25; vertical neighbours equal -> y unchanged
    maps[0, 1, 4, 2] = 1.0
    maps[0, 1, 3, 2] = 0.2   # upper neighbour larger -> y - 0.25
    maps[0, 2, 0, 7] = 1.0   # on the border: no refinement
    maps[0, 2, 1, 7] = 0.9
    expected = torch.tensor([[[5.25, 3.0], [2.0, 3.75], [7.0, 0.0]]])
    assert torch.equal(hard_argmax(maps), expected)
    assert torch.equal(hard_argmax(maps, refine=False), torch.tensor([[[5.0, 3.0], [2.0, 4.0], [7.0, 0.0]]]))


def test_heatmap_targets_peaks_and_values():
    points = torch.tensor([[[3.0, 5.0], [10.0, 0.0]]])
    maps = heatmap_targets(points, (8, 16), sigma=2.0)
    assert maps.shape == (1, 2, 8, 16)
    assert maps[0, 0, 5, 3] == 1.0 and maps[0, 1, 0, 10] == 1.0
    assert maps[0, 0].flatten().argmax() == 5 * 16 + 3
    assert maps[0, 0, 5, 4].item() == pytest.approx(math.exp(-1 / 8))
    assert maps[0, 0, 7, 5].item() == pytest.approx(math.exp(-8 / 8))
    movable = points.clone().requires_grad_(True)
    heatmap_targets(movable, 8)[0, 0, 5, 4].backward()  # the value right of the peak grows as x moves right
    assert movable.grad[0, 0, 0] > 0


def test_flip_permutation_matches_face_alignment():
    face_alignment_order = [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 26, 25, 24, 23, 22, 21, 20, 19,
                            18, 17, 27, 28, 29, 30, 35, 34, 33, 32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41,
                            40, 54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
    assert list(FLIP_PERMUTATION_68) == face_alignment_order
    points = torch.rand(2, 68, 2) * 100
    assert torch.allclose(mirror_landmarks(mirror_landmarks(points, 100), 100), points, atol=1e-4)
    one = torch.zeros(1, 68, 2)
    one[0, 36] = torch.tensor([30.0, 40.0])  # outer corner of the eye on the image's left
    mirrored = mirror_landmarks(one, 100)
    assert mirrored[0, 45].tolist() == [69.0, 40.0] and mirrored[0, 36].tolist() == [99.0, 0.0]


# --- LandmarkNet --------------------------------------------------------------------------------------------------

class BlobFAN(nn.Module):
    """Stand-in FAN whose heatmaps are the red channel averaged over 4x4 blocks (68 copies)."""

    def forward(self, x):
        return [F.avg_pool2d(x[:, :1], 4).expand(-1, 68, -1, -1)]


def blob_image(x: float, y: float, size: int, sigma: float = 7.0) -> torch.Tensor:
    """[1, 3, size, size] in [-1, 1]: a bright Gaussian spot at pixel coordinates (x, y)."""
    spot = heatmap_targets(torch.tensor([[[x, y]]]), size, sigma)[:, 0]
    return (spot * 2 - 1)[:, None].expand(-1, 3, -1, -1).contiguous()


def test_landmark_net_pixel_convention_end_to_end():
    whole = LandmarkNet(BlobFAN(), crop=None, input_size=64)
    located = whole(blob_image(23.3, 40.6, 64))
    assert located.shape == (1, 68, 2)
    assert (located[0] - torch.tensor([23.3, 40.6])).abs().max() < 0.1
    # FFHQ crop on a larger image: crop (partly outside, padded), resize, decode, map back
    cropped = LandmarkNet(BlobFAN(), input_size=64)
    assert cropped.crop_box(128, 128) == (-16, -11, 141, 146)
    located = cropped(blob_image(70.2, 55.7, 128, sigma=20.0))
    assert (located[0] - torch.tensor([70.2, 55.7])).abs().max() < 0.2
    hard = cropped(blob_image(70.2, 55.7, 128, sigma=20.0), mode="hard")
    assert (hard[0] - torch.tensor([70.2, 55.7])).abs().max() < 0.25 * 157 / 16 + 0.1
    points = torch.tensor([[[70.2, 55.7], [0.0, 127.0]]])
    assert torch.allclose(cropped.heatmap_to_image(cropped.image_to_heatmap(points, (128, 128)), (128, 128)), points,
                          atol=1e-5)
    target = cropped.target_heatmaps(points, (128, 128))
    assert target.shape == (1, 2, 16, 16)
    assert torch.allclose(cropped.heatmap_to_image(soft_argmax(target)[:, :1], (128, 128)), points[:, :1], atol=0.2)


def test_ffhq_crop_follows_face_alignment_formula():
    left, top, right, bottom = fan_crop_from_box((0.2, 0.3, 0.8, 0.9))
    assert right - left == pytest.approx(200 * 1.2 / 195) and bottom - top == pytest.approx(200 * 1.2 / 195)
    assert (left + right) / 2 == pytest.approx(0.5) and (top + bottom) / 2 == pytest.approx(0.6 - 0.12 * 0.6)
    assert FFHQ_FAN_CROP[0] < 0 < 1 < FFHQ_FAN_CROP[2]


def test_landmark_net_is_frozen_and_differentiable():
    net = LandmarkNet(random_fan(num_modules=1, seed=2), input_size=64)
    net.train()
    assert not net.training and not net.fan.training
    assert not any(p.requires_grad for p in net.parameters())
    images = (torch.rand(2, 3, 96, 96) * 2 - 1).requires_grad_(True)
    heatmaps = net.heatmaps(images)
    assert heatmaps.shape == (2, 68, 16, 16)
    points = net(images)
    assert points.shape == (2, 68, 2) and torch.isfinite(points).all()
    points.sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(ValueError):
        net(images, mode="median")


# --- dlib landmarks on real aligned faces -------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _real_faces(shared: Path) -> tuple[tuple[str, ...], np.ndarray]:
    from PIL import Image

    folder = shared / "data" / "faces-real"
    files = sorted(folder.glob("ffhq/*.jpg")) + sorted(folder.glob("celebahq/*.jpg"))
    return tuple(f.name for f in files), np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


@functools.lru_cache(maxsize=None)
def _dlib_run(shared: Path, assume_aligned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmarks of the real faces and of their mirror images, mapped back to the original frame."""
    _, images = _real_faces(shared)
    detector = DlibLandmarkDetector(assume_aligned=assume_aligned)
    landmarks = detector(images)
    mirrored = detector(np.ascontiguousarray(images[:, :, ::-1]))
    return landmarks, mirror_landmarks(mirrored, images.shape[2])


def test_dlib_finds_sane_landmarks_on_real_faces(shared_dir):
    names, images = _real_faces(shared_dir)
    assert len(names) >= 60
    landmarks, _ = _dlib_run(shared_dir, False)
    assert landmarks.shape == (len(names), 68, 2) and landmarks.dtype == torch.float32
    found = torch.isfinite(landmarks).all(-1).all(-1)
    assert found.float().mean() >= 0.9
    lm = landmarks[found]
    assert (lm[:, 36, 0] < lm[:, 45, 0]).all()                                   # left eye corner left of right
    assert ((lm[:, 30, 0] > lm[:, 36, 0]) & (lm[:, 30, 0] < lm[:, 45, 0])).all()  # nose tip between the eyes
    assert (lm[:, 48:68, 1].amin(1) > lm[:, 30, 1]).all()                        # mouth below the nose tip
    assert (lm[:, 8, 1] > lm[:, 57, 1]).all()                                    # chin below the lower lip
    eye_distance = (lm[:, 36] - lm[:, 45]).norm(dim=-1)
    assert (eye_distance > 0.25 * images.shape[2]).all()                          # aligned faces are large


@pytest.mark.parametrize("assume_aligned, tolerance", [(False, 2.5), (True, 2.0)])
def test_dlib_landmarks_are_consistent_under_flip(shared_dir, assume_aligned, tolerance):
    landmarks, from_mirror = _dlib_run(shared_dir, assume_aligned)
    both = torch.isfinite(landmarks).all(-1).all(-1) & torch.isfinite(from_mirror).all(-1).all(-1)
    assert both.float().mean() >= 0.9
    error = (landmarks[both] - from_mirror[both]).norm(dim=-1)
    assert error.mean() < tolerance                  # pixels at 256 (dlib's points are whole pixels)
    assert error.mean(1).median() < 1.5


def test_dlib_aligned_box_agrees_with_detection(shared_dir):
    detected, _ = _dlib_run(shared_dir, False)
    aligned, _ = _dlib_run(shared_dir, True)
    assert torch.isfinite(aligned).all()             # every aligned face gets landmarks
    assert (aligned - detected).norm(dim=-1).mean() < 2.0


def test_dlib_input_formats_and_no_face(shared_dir):
    _, images = _real_faces(shared_dir)
    detector = DlibLandmarkDetector()
    tensor = torch.from_numpy(images[:2]).permute(0, 3, 1, 2).float() / 127.5 - 1
    from_tensor, from_numpy = detector(tensor), detector(images[:2])
    assert torch.equal(from_tensor, from_numpy)
    assert torch.equal(detector(images[0])[0], from_numpy[0])
    blank = detector(torch.zeros(1, 3, 128, 128))
    assert blank.shape == (1, 68, 2) and torch.isnan(blank).all()
    box = detector.face_box(images[0])
    assert torch.equal(detector(images[:1], boxes=[box]), from_numpy[:1])
    with pytest.raises(ValueError):
        detector(np.zeros((2, 3, 64, 64), dtype=np.float32))
