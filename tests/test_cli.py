"""CLI basics: help, one-line errors with exit codes, --debug tracebacks."""

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from visionsuite.cli import main

VISIONSUITE = str(Path(sys.executable).with_name("visionsuite"))


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


@pytest.mark.parametrize("command", ["train", "evaluate", "tasks", "backbones"])
def test_every_command_has_help_with_an_example(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and f"visionsuite {command}" in result.output


def test_unknown_task_is_a_usage_error_with_a_suggestion(cli):
    result = cli("train", "clasification", "--data", "x")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: unknown task 'clasification'. Did you mean: classification?"


def test_malformed_yaml_is_one_line(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    result = cli("train", "classification", "--config", str(bad))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "malformed YAML" in lines[0]


def test_unknown_config_key_suggests(cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epoch: 2\n")
    result = cli("train", "classification", "--config", str(cfg))
    assert result.exit_code == 2
    assert "unknown key 'epoch'" in result.stderr and "Did you mean: epochs" in result.stderr


def test_unknown_task_key_is_rejected(cli):
    result = cli("train", "classification", "--set", "task.image_sise=32")
    assert result.exit_code == 2
    assert "unknown key 'image_sise'" in result.stderr and "image_size" in result.stderr


def test_backbones_lists_levels_without_building(cli):
    result = cli("backbones", "--no-params")
    assert result.exit_code == 0
    line = next(l for l in result.output.splitlines() if l.startswith("simple_cnn"))
    assert "P2/4:" in line and "P5/32:" in line


def test_console_script_exit_codes_and_debug_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not a mapping\n")
    plain = subprocess.run([VISIONSUITE, "train", "classification", "--config", str(bad)],
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 2
    assert "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines()[-1].startswith("error: ")
    debug = subprocess.run([VISIONSUITE, "--debug", "train", "classification", "--config", str(bad)],
                           capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
