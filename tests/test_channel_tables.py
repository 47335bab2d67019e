"""Explicit channel tables: generators and discriminators with any per-resolution widths build, save, load (from
every format, the layout read back from the tensor shapes) and render bit-identically; hostile tables are refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from stylegan_lightning.cli import main
from stylegan_lightning.serialization import CheckpointError
from stylegan_lightning.stylegan2 import (Discriminator, Generator, channel_layout, infer_generator_config,
                                          load_discriminator, load_generator, save_generator)
from stylegan_lightning.stylegan2.checkpoints import infer_discriminator_channels
from stylegan_lightning.hyperstyle import generator_slot_shapes

sys.path.insert(0, str(Path(__file__).parent))
import nvlabs_pickle as nv  # noqa: E402  (test helper beside this file)

# widths falling with resolution like stylegan3's --cbase/--cmax (no rosinality multiplier/cap gives it)
TABLE = {4: 32, 8: 24, 16: 16, 32: 8}
D_TABLE = {4: 16, 8: 8, 16: 12, 32: 4}


def table_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(32, style_dim=16, n_mlp=2, channels=TABLE).eval()


def render(generator: Generator) -> torch.Tensor:
    w = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return generator([w], input_is_latent=True, randomize_noise=False)[0]


def test_the_table_sets_every_layer_width():
    generator = table_generator()
    assert generator.channels == TABLE and generator.config["channels"] == TABLE
    assert generator.conv1.conv.weight.shape[1:3] == (32, 32)
    assert [generator.convs[2 * j].conv.weight.shape[1] for j in range(3)] == [24, 16, 8]
    assert generator.weight_slot_shapes() == generator_slot_shapes(32, channels=TABLE)
    discriminator = Discriminator(32, channels=D_TABLE)
    assert discriminator.convs[0][0].weight.shape[0] == 4 and discriminator.final_conv[0].weight.shape[0] == 16
    assert discriminator(torch.zeros(4, 3, 32, 32)).shape == (4, 1)


def test_string_keys_from_json_are_accepted_and_bad_tables_refused():
    assert channel_layout(16, channels={"4": 8, "8": 8, "16": 4}) == {4: 8, 8: 8, 16: 4}
    for bad in ({4: 8, 8: 8}, {4: 8, 8: 8, 16: 0}, {4: 8, 8: 8, 16: 4, 32: 4}, {4: 8, 8: 8, "x": 4}, [8, 8, 4]):
        with pytest.raises(ValueError, match="channels"):
            channel_layout(16, channels=bad)


def test_rosinality_files_with_a_table_round_trip_bit_identically(tmp_path):
    generator = table_generator()
    discriminator = Discriminator(32, channels=D_TABLE)
    path = save_generator(tmp_path / "g.pt", generator, latent_avg=torch.zeros(16), discriminator=discriminator,
                          dtype=torch.float16)
    loaded = load_generator(path)
    assert loaded.channels == TABLE
    assert torch.equal(render(load_generator(save_generator(tmp_path / "g32.pt", generator))), render(generator))
    assert torch.equal(render(loaded), render(table_generator().half().float()))  # float16 weights, cast back
    assert load_discriminator(path).config["channels"] == D_TABLE


def test_the_layout_is_read_back_from_the_tensor_shapes():
    config = infer_generator_config(table_generator().state_dict())
    assert config["channels"] == TABLE and config["size"] == 32 and config["style_dim"] == 16
    rosinality = infer_generator_config(Generator(32, style_dim=16, n_mlp=2, channel_max=16).state_dict())
    assert rosinality["channel_max"] == 16 and "channels" not in rosinality
    assert infer_discriminator_channels(Discriminator(32, channels=D_TABLE).state_dict(), 32) == D_TABLE


def test_an_nvlabs_pickle_with_a_cbase_cmax_layout_loads(tmp_path):
    """stylegan3's ``--cbase/--cmax`` give layouts such as {4: 512, 8: 256, 16: 128, 32: 64}: read as a table."""
    generator = table_generator(seed=4)
    generator.latent_avg = torch.zeros(16)
    path = nv.write_nvlabs_pickle(tmp_path / "network-snapshot-000000.pkl", generator,
                                  Discriminator(32, channels=D_TABLE))
    loaded = load_generator(path)
    assert loaded.channels == TABLE and torch.equal(render(loaded), render(generator))
    assert load_discriminator(path).config["channels"] == D_TABLE


def test_a_stored_table_asking_for_more_than_the_file_holds_is_refused(tmp_path):
    generator = table_generator()
    path = save_generator(tmp_path / "g.pt", generator)
    payload = torch.load(path, weights_only=True)
    for table in ({4: 10**9, 8: 24, 16: 16, 32: 8}, {4: 32, 8: 24}, "wide", {4: -1, 8: 24, 16: 16, 32: 8}):
        payload["generator_config"]["channels"] = table
        torch.save(payload, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match="bad.pt"):
            load_generator(tmp_path / "bad.pt")


def test_init_generator_takes_a_channel_table(tmp_path, capsys):
    out = tmp_path / "g.pt"
    assert main(["init-generator", str(out), "--size", "16", "--style-dim", "8", "--n-mlp", "1",
                 "--channels", "4:16,8:12,16:4", "--mean-samples", "10"]) == 0
    assert load_generator(out).channels == {4: 16, 8: 12, 16: 4}
    assert main(["init-generator", str(tmp_path / "h.pt"), "--size", "16", "--channels", "4:16,8:12"]) == 2
    assert "--channels must give every resolution 4..16" in capsys.readouterr().err
    assert main(["init-generator", str(tmp_path / "h.pt"), "--size", "16", "--channels", "4:16,8,16:4"]) == 2
    assert "RESOLUTION:CHANNELS" in capsys.readouterr().err
    assert not (tmp_path / "h.pt").exists()
