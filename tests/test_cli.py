"""The stylegan-lightning command: sample / inspect, config files, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_lightning.cli import main
from stylegan_lightning.stylegan2 import save_generator
from stylegan_lightning.utils import format_table, image_grid, tensor_to_pil

SMALL = ["--size", "16", "--style-dim", "16", "--n-mlp", "1", "--channel-max", "8", "--device", "cpu"]


def test_sample_random_generator_writes_grid_and_timings(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["sample", *SMALL, "--n", "6", "--nrow", "3", "--batch-size", "4", "--out", str(out)]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (2 + 2 * 18, 2 + 3 * 18, 3)  # 2 rows x 3 columns of 16 px with 2 px padding
    printed = capsys.readouterr().out
    assert "steady images/s" in printed and "random init (seed 0)" in printed


def test_sample_is_reproducible_and_loads_a_generator_file(tmp_path, tiny_generator):
    path = save_generator(tmp_path / "g.pt", tiny_generator(size=16))
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["sample", "--generator", str(path), "--n", "4", "--seed", "3", "--out", str(a)]) == 0
    assert main(["sample", "--generator", str(path), "--n", "4", "--seed", "3", "--out", str(b)]) == 0
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_config_file_and_command_line_override(tmp_path):
    config = tmp_path / "sample.yaml"
    config.write_text("size: 16\nstyle-dim: 16\nn_mlp: 1\nchannel_max: 8\nn: 2\nout: %s\n" % (tmp_path / "cfg.png"))
    assert main(["sample", "--config", str(config)]) == 0
    assert Image.open(tmp_path / "cfg.png").size == (2 + 2 * 18, 2 + 18)
    assert main(["sample", "--config", str(config), "--n", "1", "--out", str(tmp_path / "one.png")]) == 0
    assert Image.open(tmp_path / "one.png").size == (16, 16)


def test_bad_input_gives_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sizee: 16\n")
    assert main(["sample", "--config", str(bad)]) == 2
    assert "unknown option(s) ['sizee']" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "missing.pt")]) == 2
    err = capsys.readouterr().err
    assert "missing.pt" in err and "does not exist" in err and "Traceback" not in err
    assert main([]) == 2


def test_inspect_reports_architecture(tmp_path, tiny_generator, capsys):
    path = save_generator(tmp_path / "g.pt", tiny_generator(size=32))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| generator.size" in out and "| 32" in out and "latent_avg" in out


def test_image_helpers():
    images = torch.stack([torch.full((3, 4, 4), v) for v in (-1.0, 0.0, 1.0)])
    grid = image_grid(images, nrow=2, padding=1, pad_value=0.5)
    assert grid.shape == (3, 1 + 2 * 5, 1 + 2 * 5)
    assert torch.equal(grid[:, 1:5, 6:10], images[1]) and grid[0, 0, 0] == 0.5
    pixels = np.asarray(tensor_to_pil(images[2]))
    assert pixels.shape == (4, 4, 3) and (pixels == 255).all()
    assert (np.asarray(tensor_to_pil(images[0])) == 0).all()
    with pytest.raises(ValueError):
        tensor_to_pil(torch.zeros(2, 4, 4))


def test_format_table():
    table = format_table([["a", 1.23456], ["bb", 123456.0]], ["name", "value"]).splitlines()
    assert table[0] == "| name | value  |" and table[2] == "| a    | 1.235  |" and table[3] == "| bb   | 123456 |"


def test_ckpt_path_hyperparameters_are_defaults_that_the_command_line_overrides(tmp_path):
    """``validate --ckpt_path``: the module is rebuilt from the checkpoint's hyperparameters (the architecture
    need not be repeated), and an option given on the command line or in the config file wins over the saved one."""
    import warnings
    from pathlib import Path

    import yaml

    samples = Path(__file__).resolve().parents[1] / "data" / "samples"
    model = {"class_path": "stylegan_lightning.stylegan2.StyleGAN2Module",
             "init_args": {"size": 16, "style_dim": 16, "n_mlp": 1, "channel_max": 8, "fid_features": None,
                           "n_mean_latent": 32, "image_log_every": 0, "n_sample_images": 4}}
    data = {"class_path": "stylegan_lightning.data.FaceDataModule",
            "init_args": {"root": str(samples), "resolution": 16, "batch_size": 4, "split_fractions": [0.5, 0.5, 0]}}
    trainer = {"accelerator": "cpu", "max_steps": 1, "limit_val_batches": 1, "num_sanity_val_steps": 0,
               "enable_progress_bar": False, "enable_model_summary": False, "default_root_dir": str(tmp_path)}
    config = tmp_path / "fit.yaml"
    config.write_text(yaml.safe_dump({"model": model, "data": data, "trainer": trainer}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["fit", "--config", str(config), "--trainer.logger", "false"]) == 0
        checkpoint = str(next(tmp_path.rglob("*.ckpt")))
        short = tmp_path / "validate.yaml"  # no architecture: it comes from the checkpoint
        short.write_text(yaml.safe_dump({"model": {"class_path": model["class_path"],
                                                   "init_args": {"image_log_every": 5}},
                                         "data": data, "trainer": trainer}))
        for name, extra, expected in [("saved", [], 4), ("given", ["--model.n_sample_images", "3"], 3)]:
            logger = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                      "--trainer.logger.save_dir", str(tmp_path / name)]
            assert main(["validate", "--config", str(short), "--ckpt_path", checkpoint, *logger, *extra]) == 0
            logged = yaml.safe_load(next((tmp_path / name).rglob("hparams.yaml")).read_text())
            assert logged["size"] == 16 and logged["style_dim"] == 16  # from the checkpoint
            assert logged["n_sample_images"] == expected
            assert logged["image_log_every"] == 5  # the config file wins over the checkpoint's 0


def test_sample_truncation_sweep(tmp_path, tiny_generator, capsys):
    """Rows are the first samples of the grid, columns truncation values: ψ = 1 is the sample itself, ψ = 0 the
    average face (the same in every row), and the images in between are w_avg + ψ (w - w_avg)."""
    from stylegan_lightning.stylegan2 import FrozenGenerator
    from stylegan_lightning.stylegan2.sampling import sample_images, truncation_sweep

    frozen = FrozenGenerator(tiny_generator(size=16))
    sweep = truncation_sweep(frozen, 3, [1.0, 0.5, 0.0], seed=2)
    assert sweep.shape == (9, 3, 16, 16)
    samples = sample_images(frozen, 5, 1.0, seed=2)
    torch.testing.assert_close(sweep[0::3], samples.images[:3], atol=1e-4, rtol=0)
    torch.testing.assert_close(sweep[2::3], frozen(frozen.latent_avg[None].expand(3, -1)), atol=1e-4, rtol=0)
    half = frozen(frozen.latent_avg + 0.5 * (samples.w[:3] - frozen.latent_avg))
    torch.testing.assert_close(sweep[1::3], half, atol=1e-4, rtol=0)  # batches of 9 vs 3
    assert float((sweep[1] - sweep[4]).abs().mean()) > 1e-3  # rows differ away from ψ = 0

    path = save_generator(tmp_path / "g.pt", tiny_generator(size=16))
    out = tmp_path / "grid.png"
    assert main(["sample", "--generator", str(path), "--n", "4", "--out", str(out), "--truncation-sweep", "1", "0.5",
                 "0", "--sweep-n", "2"]) == 0
    assert Image.open(tmp_path / "grid_truncation.png").size == (2 + 3 * 18, 2 + 2 * 18)
    assert "truncation sweep" in capsys.readouterr().out
    assert main(["sample", "--generator", str(path), "--n", "2", "--truncation-sweep", "1", "--sweep-n", "3"]) == 2
