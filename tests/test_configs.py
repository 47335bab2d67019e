"""Every shipped config parses with the parser that runs it, so a renamed argument cannot leave a config broken.

Lightning configs (``model`` / ``data`` / ``trainer`` sections) go through ``stylegan-lightning fit --config X
--print_config``: jsonargparse checks every key and value against the constructors' signatures without building
anything. Tool configs go through the tool's own parser (the same function the CLI runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from stylegan_lightning.cli import CONFIG_SECTIONS, UsageError, main, parse_tool_arguments

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "configs").rglob("*.yaml"))
TOOL_CONFIGS = {"configs/demo/sample.yaml": "sample", "configs/demo/serve.yaml": "serve"}  # tool configs: the tool that reads each
OVERLAYS = {"configs/cluster/multi-gpu.yaml": "configs/encoder.yaml"}  # trainer overlays: a task config under each


def _is_lightning_config(path: str) -> bool:
    values = yaml.safe_load((ROOT / path).read_text()) or {}
    return any(section in values for section in CONFIG_SECTIONS)


def _print_config(capsys, monkeypatch, *paths: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``stylegan-lightning fit --config P... --print_config`` (in process)."""
    monkeypatch.setattr(sys, "argv", ["stylegan-lightning"])  # pytest's own arguments are not the CLI's
    argv = ["fit"]
    for path in paths:
        argv += ["--config", str(path)]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--print_config"])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_every_config_is_covered():
    assert len(CONFIGS) >= 18, CONFIGS  # the glob found the shipped configs
    for path in CONFIGS:
        assert _is_lightning_config(path) or path in TOOL_CONFIGS, f"{path}: add the tool that reads it"


@pytest.mark.parametrize("path", [p for p in CONFIGS if p not in TOOL_CONFIGS])
def test_lightning_config_parses(path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # configs name files relative to the checkout
    code, out, err = _print_config(capsys, monkeypatch, path)
    assert code == 0, err
    printed = yaml.safe_load(out)
    given = yaml.safe_load((ROOT / path).read_text())
    for section in ("model", "data"):
        if isinstance(given.get(section), dict) and "class_path" in given[section]:
            assert printed[section]["class_path"].endswith(given[section]["class_path"].rsplit(".", 1)[-1])
    if path in OVERLAYS:  # and layered over the task config its comment names
        code, out, err = _print_config(capsys, monkeypatch, OVERLAYS[path], path)
        assert code == 0, err
        assert yaml.safe_load(out)["trainer"]["strategy"] == given["trainer"]["strategy"]


@pytest.mark.parametrize("path", sorted(TOOL_CONFIGS))
def test_tool_config_parses(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = parse_tool_arguments([TOOL_CONFIGS[path], "--config", path])
    given = yaml.safe_load((ROOT / path).read_text())
    for key, value in given.items():
        assert getattr(args, key.replace("-", "_")) == value, key


def test_a_renamed_argument_breaks_the_parse(tmp_path, capsys, monkeypatch):
    """The checks above can fail: a config with a misspelt constructor argument or tool option is refused."""
    monkeypatch.chdir(ROOT)
    config = yaml.safe_load((ROOT / "configs/demo/codec.yaml").read_text())
    init_args = config["model"]["init_args"]
    init_args["hyper_channel"] = init_args.pop("hyper_channels")
    broken = tmp_path / "codec.yaml"
    broken.write_text(yaml.safe_dump(config))
    code, _, err = _print_config(capsys, monkeypatch, broken)
    assert code == 2 and "hyper_channel" in err
    tool_config = yaml.safe_load((ROOT / "configs/demo/sample.yaml").read_text())
    tool_config["truncation_sweeps"] = tool_config.pop("truncation_sweep")
    broken = tmp_path / "sample.yaml"
    broken.write_text(yaml.safe_dump(tool_config))
    with pytest.raises(UsageError, match="truncation_sweeps"):
        parse_tool_arguments(["sample", "--config", str(broken)])
