"""Every everyday mistake on the command line ends in one line on stderr naming the problem and exit status 2, with
nothing written. The cases are the table of ``docs/user-errors.md``; regenerate it with
``python tests/test_user_errors.py > docs/user-errors.md``."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

import pytest
import torch

# (what, arguments, words the one line must contain); {name} is a file or folder made by _files()
CASES = [
    ("sample --n 0", ["sample", "--n", "0"], "must be >= 1"),
    ("sample --n -1", ["sample", "--n", "-1"], "must be >= 1"),
    ("sample --batch-size 0", ["sample", "--batch-size", "0"], "must be >= 1"),
    ("sample --nrow -2", ["sample", "--nrow", "-2"], "must be >= 1"),
    ("sample --size 100", ["sample", "--size", "100"], "power of two"),
    ("sample --style-dim 0", ["sample", "--style-dim", "0"], "must be >= 1"),
    ("sample --truncation nan", ["sample", "--truncation", "nan"], "finite"),
    ("sample --truncation inf", ["sample", "--truncation", "inf"], "finite"),
    ("sample --truncation 1e30", ["sample", "--truncation", "1e30"], "[-4, 4]"),
    ("sample --out x (no image extension)", ["sample", "--out", "{root}/x"], "extensions"),
    ("sample --out an existing folder", ["sample", "--out", "{folder}"], "is a folder"),
    ("sample --out in an unwritable folder", ["sample", "--out", "{readonly}/s.png"], "not writable"),
    ("sample --out under a file", ["sample", "--out", "{text}/s.png"], "is a file"),
    ("sample --device cuda (no GPU)", ["sample", "--device", "cuda"], "CUDA is not available"),
    ("sample --device bogus", ["sample", "--device", "bogus"], "not a device"),
    ("sample --generator with a NaN weight", ["sample", "--generator", "{nan_generator}"], "NaN"),
    ("sample --config a folder", ["sample", "--config", "{folder}"], "is a directory"),
    ("sample --config a binary file", ["sample", "--config", "{binary}"], "not a text"),
    ("sample --config with n: 0", ["sample", "--config", "{bad_config}"], "n: must be >= 1"),
    ("sample --truncaton 0.5 (typo)", ["sample", "--truncaton", "0.5"], "unrecognized arguments"),
    ("init-generator --size 3", ["init-generator", "{root}/g.pt", "--size", "3"], "must be >= 4"),
    ("init-generator OUT without .pt", ["init-generator", "{root}/g.png"], "extensions"),
    ("init-generator --channels missing a resolution", ["init-generator", "{root}/g.pt", "--size", "16",
                                                         "--channels", "4:16,8:12"], "every resolution 4..16"),
    ("init-generator --channels 4:abc", ["init-generator", "{root}/g.pt", "--channels", "4:abc"], "integer"),
    ("label-latents --out without .pt", ["label-latents", "--generator", "{generator}", "--classifier",
                                         "{generator}", "--out", "{root}/pairs.txt"], "extensions"),
    ("label-latents --out an existing folder", ["label-latents", "--generator", "{generator}", "--classifier",
                                                "{generator}", "--out", "{folder}"], "is a folder"),
    ("compare-edits --csv = --styleae", ["compare-edits", "--styleae", "{codec_csv}", "--generator", "{generator}",
                                         "--classifier", "{generator}", "--csv", "{codec_csv}"],
     "would be overwritten"),
    ("compare-edits --csv without .csv", ["compare-edits", "--styleae", "{generator}", "--generator",
                                          "{generator}", "--classifier", "{generator}", "--csv", "{root}/t.txt"],
     "extensions"),
    ("inspect a folder", ["inspect", "{folder}"], "is a directory"),
    ("inspect a generator with a NaN weight", ["inspect", "{nan_generator}"], "NaN"),
    ("inspect a text file", ["inspect", "{text}"], "was not loaded"),
    ("convert DESTINATION = SOURCE", ["convert", "{generator}", "{generator}"], "would be overwritten"),
    ("invert --batch-size 0", ["invert", "--checkpoint", "{generator}", "--images", "{folder}", "--batch-size",
                               "0"], "must be >= 1"),
    ("invert --resolution 0", ["invert", "--checkpoint", "{generator}", "--images", "{folder}", "--resolution",
                               "0"], "must be >= 1"),
    ("invert --out an existing file", ["invert", "--checkpoint", "{generator}", "--images", "{folder}", "--out",
                                       "{text}"], "is a file"),
    ("invert --checkpoint missing", ["invert", "--checkpoint", "{root}/missing.pt", "--images", "{folder}",
                                     "--out", "{root}/o"], "does not exist"),
    ("edit --strengths nan", ["edit", "--strengths", "nan"], "finite"),
    ("edit --layers abc", ["edit", "--latents", "{latents}", "--generator", "{generator}", "--direction",
                           "{direction}", "--layers", "abc", "--out", "{root}/e"], "cannot read layer selection"),
    ("edit --layers 99", ["edit", "--latents", "{latents}", "--generator", "{generator}", "--direction",
                          "{direction}", "--layers", "99", "--out", "{root}/e"], "outside the"),
    ("edit --layers 5-2", ["edit", "--latents", "{latents}", "--generator", "{generator}", "--direction",
                           "{direction}", "--layers", "5-2", "--out", "{root}/e"], "cannot read layer selection"),
    ("edit --component 999", ["edit", "--latents", "{latents}", "--generator", "{generator}", "--ganspace",
                              "{pca}", "--component", "999", "--out", "{root}/e"], "components 0.."),
    ("edit --component -1", ["edit", "--component", "-1"], "must be >= 0"),
    ("edit --start 7 --end 2", ["edit", "--latents", "{latents}", "--generator", "{generator}", "--ganspace",
                                "{pca}", "--start", "7", "--end", "2", "--out", "{root}/e"], "need start < end"),
    ("compress --resolution 70000", ["compress", "{folder}", "--codec", "{codec}", "--resolution", "70000",
                                     "--out", "{root}/c"], "resolution"),
    ("compress --resolution -8", ["compress", "{folder}", "--codec", "{codec}", "--resolution", "-8"],
     "must be >= 1"),
    ("evaluate --csv = --codec", ["evaluate", "--codec", "{codec}", "--images", "{folder}", "--csv", "{codec}"],
     "extensions"),
    ("evaluate --csv = --codec (.csv)", ["evaluate", "--codec", "{codec_csv}", "--images", "{folder}", "--csv",
                                         "{codec_csv}"], "would be overwritten"),
    ("evaluate --grid x (no image extension)", ["evaluate", "--codec", "{codec}", "--images", "{folder}",
                                                "--grid", "{root}/x"], "extensions"),
    ("fit --config a folder", ["fit", "--config", "{folder}"], "is a directory"),
    ("fit -c a binary file", ["fit", "-c", "{binary}"], "not a text"),
    ("fit with the progress bar off and a progress-bar callback",
     ["fit", "--config", "{demo_stylegan2}", "--trainer.enable_progress_bar", "false",
      "--trainer.callbacks+=stylegan_lightning.callbacks.RunProgressBar", "--trainer.default_root_dir", "{root}/run"],
     "enable_progress_bar=False"),
    ("validate --ckpt_path missing", ["validate", "--ckpt_path", "{root}/missing.ckpt"], "does not exist"),
    ("validate --ckpt_path a folder", ["validate", "--ckpt_path", "{folder}"], "is a directory"),
    ("validate --ckpt_path a list checkpoint", ["validate", "--ckpt_path", "{list_ckpt}"], "top level is a list"),
    ("validate --ckpt_path with string hparams", ["validate", "--ckpt_path", "{string_hparams_ckpt}"],
     "not a mapping"),
    ("validate --ckpt_path http://...", ["validate", "--ckpt_path", "http://127.0.0.1:9/x.ckpt"],
     "not a local file"),
    ("serve --port 70000", ["serve", "--port", "70000"], "must be in 0..65535"),
    ("serve --host 0.0.0.0 (all interfaces)", ["serve", "--host", "0.0.0.0"], "not a loopback address"),
    ("serve --host a host name", ["serve", "--host", "example.org"], "not an IP address"),
    ("serve --max-upload-mb 0", ["serve", "--max-upload-mb", "0"], "must be >= 1"),
    ("serve --codec missing", ["serve", "--codec", "{root}/missing.pt"], "does not exist"),
    ("serve --directions missing", ["serve", "--directions", "{root}/missing"], "does not exist"),
    ("serve --hyperstyle missing", ["serve", "--hyperstyle", "{root}/missing.pt"], "does not exist"),
]


def _files(root: Path) -> dict[str, str]:
    """The files and folders the cases refer to, made under ``root``."""
    from model_helpers import tiny_codec
    from stylegan_lightning.codec import save_codec
    from stylegan_lightning.editing import Direction
    from stylegan_lightning.inversion import save_latents
    from stylegan_lightning.stylegan2 import Generator, save_generator

    torch.manual_seed(0)
    generator = Generator(16, style_dim=16, n_mlp=1, channel_max=8)
    files = {"root": root, "folder": root / "folder", "readonly": root / "readonly", "text": root / "notes.txt",
             "binary": root / "binary.yaml", "bad_config": root / "bad.yaml"}
    files["folder"].mkdir()
    files["readonly"].mkdir(mode=0o555)
    files["text"].write_text("not a checkpoint\n")
    files["binary"].write_bytes(bytes(range(256)) * 4)
    files["bad_config"].write_text("n: 0\n")
    files["generator"] = save_generator(root / "g16.pt", generator)
    with torch.no_grad():
        generator.conv1.conv.weight[0, 0, 0, 0, 0] = float("nan")
    files["nan_generator"] = save_generator(root / "nan.pt", generator)
    files["latents"] = save_latents(root / "latents.pt", ["a.png"], torch.zeros(1, 6, 16), "encoder", "x",
                                    {"size": 16})
    files["direction"] = Direction(torch.ones(16)).save(root / "d.pt")
    torch.save({"comp": torch.eye(16)[:4, None], "std": torch.ones(4), "mean": torch.zeros(1, 16)}, root / "pca.pt")
    files["pca"] = root / "pca.pt"
    files["codec"] = save_codec(root / "codec.pt", tiny_codec())  # updated (CDF tables built) when saved
    files["codec_csv"] = root / "codec.csv"
    files["codec_csv"].write_text("a,b\n")
    torch.save([1, 2], root / "list.ckpt")
    files["list_ckpt"] = root / "list.ckpt"
    torch.save({"pytorch-lightning_version": "2.6.0", "state_dict": {}, "hyper_parameters": "size: 16"},
               root / "string.ckpt")
    files["string_hparams_ckpt"] = root / "string.ckpt"
    files["demo_stylegan2"] = Path(__file__).resolve().parents[1] / "configs" / "demo" / "stylegan2.yaml"
    return {k: str(v) for k, v in files.items()}


def run_case(arguments: list[str], files: dict[str, str]) -> tuple[int, str]:
    """Exit status and stderr of ``stylegan-lightning ARGUMENTS`` run in this process."""
    from stylegan_lightning.cli import main

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = main([a.format(**files) for a in arguments])
    return status, stderr.getvalue().strip()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("user-errors")
    made = _files(root)
    yield made
    os.chmod(made["readonly"], 0o755)


@pytest.mark.parametrize("what, arguments, words", CASES, ids=[c[0] for c in CASES])
def test_user_error_is_one_line_with_exit_status_2(files, what, arguments, words):
    if what.endswith("unwritable folder") and os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    before = sorted(p.name for p in Path(files["root"]).iterdir())
    status, err = run_case(arguments, files)
    assert status == 2, err
    lines = [line for line in err.splitlines() if not line.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1 and lines[0].startswith("stylegan-lightning ") and words in lines[0], err
    assert sorted(p.name for p in Path(files["root"]).iterdir()) == before  # nothing written


def test_broken_pipe_is_quiet(tmp_path):
    """``stylegan-lightning weights | head -1``: no traceback, exit status 0."""
    import subprocess

    command = f"{sys.executable} -m stylegan_lightning weights | head -1"
    result = subprocess.run(command, shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            executable="/bin/bash")
    assert result.stdout.startswith("weights folder:") and "Traceback" not in result.stderr, result.stderr


if __name__ == "__main__":  # the table of docs/user-errors.md
    import tempfile

    import stylegan_lightning  # noqa: F401

    with tempfile.TemporaryDirectory() as folder:
        made = _files(Path(folder))
        print("# User errors: one line, exit status 2\n")
        print("Generated by `python tests/test_user_errors.py > docs/user-errors.md` (the cases of "
              "`tests/test_user_errors.py`; `FILE` stands for a file the test makes).\n")
        print("| input | exit | the line printed |\n|---|---|---|")
        for what, arguments, words in CASES:
            if what.endswith("unwritable folder") and os.geteuid() == 0:
                print(f"| `{what}` | 2 | (generated as root, who may write anywhere; as a user: `... {words}`) |")
                continue
            status, err = run_case(arguments, made)
            line = err.splitlines()[-1].replace(folder, "FILE").replace("|", "\\|") if err else ""
            print(f"| `{what}` | {status} | {line} |")
        os.chmod(made["readonly"], 0o755)
