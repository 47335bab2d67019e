"""The command line against hostile and mistaken input: a checkpoint never runs code (local, URL, or with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` set), never makes the command import a foreign module, and every user error is
one line on stderr with exit status 2."""

from __future__ import annotations

import http.server
import sys
import threading
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml

from stylegan_lightning.cli import main

pytestmark = pytest.mark.usefixtures("single_thread")
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


class _Payload:
    """Unpickling this calls ``Path.touch(marker)``: the stand-in for any code execution."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _lightning_like(path: Path, **extra) -> Path:
    """A file shaped like a Lightning checkpoint (the ``pytorch-lightning_version`` key included)."""
    torch.save({"pytorch-lightning_version": "2.6.0", "epoch": 0, "global_step": 1, "state_dict": {},
                "hyper_parameters": {}, **extra}, path)
    return path


def _validate_config(root: Path) -> Path:
    model = {"class_path": "stylegan_lightning.stylegan2.StyleGAN2Module",
             "init_args": {"size": 16, "style_dim": 16, "n_mlp": 1, "channel_max": 8, "fid_features": None,
                           "n_mean_latent": 32, "image_log_every": 0, "n_sample_images": 4}}
    data = {"class_path": "stylegan_lightning.data.FaceDataModule",
            "init_args": {"root": str(SAMPLES), "resolution": 16, "batch_size": 4, "split_fractions": [0.5, 0.5, 0]}}
    trainer = {"accelerator": "cpu", "logger": False, "enable_progress_bar": False, "default_root_dir": str(root)}
    config = root / "validate.yaml"
    config.write_text(yaml.safe_dump({"model": model, "data": data, "trainer": trainer}))
    return config


@pytest.fixture
def served(tmp_path):
    """``(url_of, root)``: a local HTTP server on 127.0.0.1 serving ``root``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield (lambda name: f"http://127.0.0.1:{server.server_address[1]}/{name}"), root
    server.shutdown()
    server.server_close()


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"stylegan-lightning {command}: error: "), err
    return err


@pytest.mark.parametrize("force_unsafe", [False, True])
@pytest.mark.parametrize("where", ["url", "local"])
def test_ckpt_path_payload_never_runs(tmp_path, served, capsys, monkeypatch, where, force_unsafe):
    """``validate --ckpt_path`` with a payload checkpoint: from a URL (refused: remote checkpoints are not loaded)
    or a local file (refused by the plain-data reader), also with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``."""
    url_of, root = served
    marker = tmp_path / "executed"
    evil = _lightning_like(root / "evil.ckpt", callbacks=_Payload(marker))
    if force_unsafe:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    ckpt = url_of("evil.ckpt") if where == "url" else str(evil)
    assert main(["validate", "--config", str(_validate_config(tmp_path)), "--ckpt_path", ckpt]) == 2
    assert not marker.exists()
    err = _one_line_error(capsys, "validate")
    assert ("not a local file" in err) if where == "url" else ("evil.ckpt" in err and "not plain data" in err)


@pytest.mark.parametrize("command", ["invert", "edit"])
def test_inversion_checkpoint_payload_never_runs_whatever_the_environment(tmp_path, capsys, monkeypatch, command):
    """``invert`` / ``edit --checkpoint X.ckpt`` read Lightning checkpoints with the toolkit's plain-data reader,
    so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` changes nothing."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "executed"
    evil = _lightning_like(tmp_path / "evil.ckpt", hyper_parameters={"encoder_type": "e4e", "x": _Payload(marker)})
    extra = ["--direction", str(tmp_path / "d.pt")] if command == "edit" else []
    assert main([command, "--checkpoint", str(evil), "--images", str(SAMPLES), "--out", str(tmp_path / "o"),
                 *extra]) == 2
    assert not marker.exists()
    assert "evil.ckpt" in _one_line_error(capsys, command)


@pytest.mark.parametrize("field", ["_class_path", "nested"])
def test_checkpoint_cannot_make_the_command_import_a_module(tmp_path, capsys, field):
    """A plain-data checkpoint whose hyperparameters name ``this.Foo`` (the module prints when imported) is
    refused before anything is imported."""
    sys.modules.pop("this", None)
    hparams = ({"_class_path": "this.Foo"} if field == "_class_path" else
               {"_class_path": "stylegan_lightning.stylegan2.StyleGAN2Module",
                "size": {"class_path": "this.Foo", "init_args": {}}})
    ckpt = _lightning_like(tmp_path / "foreign.ckpt", hyper_parameters=hparams)
    assert main(["validate", "--config", str(_validate_config(tmp_path)), "--ckpt_path", str(ckpt)]) == 2
    assert "this" not in sys.modules
    assert "'this.Foo'" in _one_line_error(capsys, "validate")


@pytest.mark.parametrize("ckpt, expected", [("missing.ckpt", "does not exist"), (".", "is a directory"),
                                            ("list", "top level is a list"), ("string-hparams", "not a mapping")])
def test_bad_ckpt_path_is_one_line(tmp_path, capsys, ckpt, expected):
    if ckpt == "list":
        torch.save([1, 2], tmp_path / "list.ckpt")
    elif ckpt == "string-hparams":
        _lightning_like(tmp_path / "string-hparams.ckpt", hyper_parameters="size: 16")
    path = str(tmp_path / (ckpt if ckpt in ("missing.ckpt", ".") else f"{ckpt}.ckpt"))
    assert main(["validate", "--config", str(_validate_config(tmp_path)), "--ckpt_path", path]) == 2
    assert expected in _one_line_error(capsys, "validate")


def test_fit_refuses_weights_only_false(tmp_path, capsys):
    """The trainer reads ``--ckpt_path`` with ``weights_only=True`` always; asking otherwise is refused."""
    assert main(["validate", "--config", str(_validate_config(tmp_path)), "--weights_only", "false",
                 "--trainer.limit_val_batches", "1"]) == 2
    assert "weights_only" in _one_line_error(capsys, "validate")
