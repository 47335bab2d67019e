"""`stylegan-lightning ship` / ship_file: the float16 distribution copy of a trained file.

Weights (floating tensors of 2+ dims) become float16, everything else keeps its type and value, shared tensors stay
shared, a Lightning checkpoint loses its run state, and the shipped codec still codes its own streams exactly."""

from __future__ import annotations

import torch

from stylegan_lightning.cli import main
from stylegan_lightning.codec import compress_images, decompress_stream, load_codec, save_codec
from stylegan_lightning.shipping import ship_file, slim_checkpoint
from model_helpers import tiny_codec  # noqa: E402  (test helper beside this file)


def test_shipped_codec_halves_weights_keeps_tables_and_codes_exactly(tmp_path):
    codec = tiny_codec(0, perturb=True, quantization_step=0.01)
    codec.update(force=True)
    source = save_codec(tmp_path / "codec.pt", codec)
    report = ship_file(source, tmp_path / "shipped.pt")
    before = torch.load(source, weights_only=True)["state_dict"]
    saved = sum(2 * v.numel() for v in before.values() if v.is_floating_point() and v.dim() >= 2)
    assert report["shipped bytes"] < report["source bytes"] - 0.95 * saved  # each weight at 2 bytes instead of 4
    after = torch.load(tmp_path / "shipped.pt", weights_only=True)["state_dict"]
    assert before.keys() == after.keys()
    for key, value in before.items():
        if value.is_floating_point() and value.dim() >= 2:
            assert after[key].dtype == torch.float16, key
            torch.testing.assert_close(after[key].float(), value, rtol=1e-3, atol=1e-4)
        else:  # CDF tables, quantiles, scale tables, biases: unchanged
            assert after[key].dtype == value.dtype and torch.equal(after[key], value), key
    shipped = load_codec(tmp_path / "shipped.pt")
    assert all(p.dtype == torch.float32 for p in shipped.parameters())
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for stream in compress_images(shipped, images):
        decoded = decompress_stream(shipped, stream)
        again = decompress_stream(shipped, type(stream).from_bytes(stream.to_bytes()))
        assert torch.equal(decoded, again)
    original = [decompress_stream(codec, s) for s in compress_images(codec, images)]
    halved = [decompress_stream(shipped, s) for s in compress_images(shipped, images)]
    for a, b in zip(original, halved):
        assert (a - b).abs().mean() < 0.02  # float16 weights: the same pictures to within rounding


def test_shared_tensors_stay_shared_and_lightning_run_state_is_dropped(tmp_path):
    shared = torch.randn(64, 64)
    checkpoint = {"pytorch-lightning_version": "2.5.0", "epoch": 3, "hyper_parameters": {"lr": 0.1},
                  "model_spec": {"width": 64}, "optimizer_states": [{"state": {0: torch.randn(64, 64)}}],
                  "loops": {"fit_loop": {}}, "callbacks": {"x": 1},
                  "state_dict": {"model.a.weight": shared, "model.b.weight": shared, "model.bias": torch.randn(64),
                                 "discriminator.weight": torch.randn(256, 256)}}
    torch.save(checkpoint, tmp_path / "run.ckpt")
    report = ship_file(tmp_path / "run.ckpt", tmp_path / "slim.ckpt")
    slim = torch.load(tmp_path / "slim.ckpt", weights_only=True)
    assert sorted(slim) == ["epoch", "hyper_parameters", "model_spec", "pytorch-lightning_version", "state_dict"]
    assert sorted(slim["state_dict"]) == ["model.a.weight", "model.b.weight", "model.bias"]
    assert slim["state_dict"]["model.a.weight"].data_ptr() == slim["state_dict"]["model.b.weight"].data_ptr()
    assert slim["state_dict"]["model.bias"].dtype == torch.float32
    assert report["state entries kept"] == "3 of 4"
    assert report["shipped bytes"] < 64 * 64 * 2 + 64 * 4 + 4096  # the shared weight stored once, as float16
    assert sorted(slim_checkpoint(checkpoint, ())["state_dict"]) == sorted(checkpoint["state_dict"])


def test_ship_cli_reports_and_refuses_bad_paths(tmp_path, capsys):
    torch.save({"w": torch.randn(8, 8)}, tmp_path / "a.pt")
    assert main(["ship", str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]) == 0
    assert "float16 tensors" in capsys.readouterr().out
    assert main(["ship", str(tmp_path / "a.pt"), str(tmp_path / "a.pt")]) == 2
    assert "would be overwritten" in capsys.readouterr().err
    assert main(["ship", str(tmp_path / "missing.pt"), str(tmp_path / "c.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert main(["ship", str(tmp_path / "a.pt"), str(tmp_path / "c.png")]) == 2
