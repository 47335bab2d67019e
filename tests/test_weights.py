"""The pretrained-file registry and the `weights` command."""

from __future__ import annotations

import pytest

from stylegan_lightning.cli import main
from stylegan_lightning.weights import MissingWeightError, find_weight, resolve_weight, weight_table


@pytest.fixture
def empty_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN_LIGHTNING_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def test_lookup_order_explicit_folder_hub(empty_weights):
    assert find_weight("vgg16_imagenet") is None
    hub = empty_weights / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "vgg16-397923af.pth").write_bytes(b"x")
    assert find_weight("vgg16_imagenet") == hub / "vgg16-397923af.pth"
    folder = empty_weights / "weights"
    folder.mkdir()
    (folder / "vgg16-397923af.pth").write_bytes(b"y")
    assert find_weight("vgg16_imagenet") == folder / "vgg16-397923af.pth"  # the weights folder comes first
    explicit = empty_weights / "elsewhere.pth"
    explicit.write_bytes(b"z")
    assert resolve_weight("vgg16_imagenet", explicit) == explicit


def test_missing_file_error_says_what_and_where(empty_weights):
    with pytest.raises(MissingWeightError) as error:
        resolve_weight("bisenet_parsing")
    message = str(error.value)
    assert "79999_iter.pth" in message and "face pars" in message and "face-parsing.PyTorch" in message
    assert str(empty_weights / "weights" / "79999_iter.pth") in message
    with pytest.raises(MissingWeightError, match="nope.pth"):
        resolve_weight("bisenet_parsing", empty_weights / "nope.pth")
    with pytest.raises(KeyError, match="unknown pretrained file"):
        resolve_weight("not_a_key")


def test_packaged_weights_are_found(empty_weights):
    present = {row[0] for row in weight_table() if row[2] != "missing"}
    assert {"lpips_linear_alex", "lpips_linear_vgg", "dists_alpha_beta", "dlib_landmarks"} <= present


def test_weights_command_lists_presence(empty_weights, capsys):
    folder = empty_weights / "weights"
    folder.mkdir()
    (folder / "model_ir_se50.pth").write_bytes(b"x")
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("| arcface_ir_se50"))
    assert "| yes" in line
    assert any(line.startswith("| bisenet_parsing") and "MISSING" in line for line in out.splitlines())
    assert main(["weights", "--missing"]) == 0
    assert "| arcface_ir_se50" not in capsys.readouterr().out.split("\n\n")[1]


def test_files_in_sub_folders_of_the_weights_folder_are_found(empty_weights, capsys):
    nested = empty_weights / "weights" / "faces" / "arcface"
    nested.mkdir(parents=True)
    (nested / "model_ir_se50.pth").write_bytes(b"x")
    assert find_weight("arcface_ir_se50") == nested / "model_ir_se50.pth"
    assert main(["weights"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("| arcface_ir_se50") and "| yes" in line for line in lines)
    assert max(len(line) for line in lines if line.startswith("|")) <= 120  # the tables wrap to 120 columns
