"""Config resolution: defaults <- YAML <- flags, unknown keys, types, malformed YAML."""

import dataclasses
import typing

import pytest

from visionsuite.config import TrainConfig, build_config, load_yaml, parse_overrides, to_dict
from visionsuite.errors import UsageError


def test_layers_apply_left_to_right_and_none_is_ignored():
    config = build_config(TrainConfig, {"epochs": 5, "batch_size": 8}, {"epochs": 7, "batch_size": None})
    assert config.epochs == 7
    assert config.batch_size == 8
    assert config.learning_rate == TrainConfig().learning_rate


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 3\noptimizer: sgd\ntask:\n  image_size: 32\n")
    config = build_config(TrainConfig, load_yaml(path), {"optimizer": "adam"})
    assert (config.epochs, config.optimizer, config.task) == (3, "adam", {"image_size": 32})


def test_unknown_key_suggests_the_close_name():
    with pytest.raises(UsageError, match=r"unknown key 'epoch'.*Did you mean: epochs"):
        build_config(TrainConfig, {"epoch": 3})


@pytest.mark.parametrize("key,value,pattern", [
    ("epochs", "three", "epochs must be an integer. Received: epochs='three'"),
    ("optimizer", "rmsprop", "optimizer must be one of 'sgd', 'adam', 'adamw'"),
    ("resume", "maybe", "resume must be true or false"),
    ("learning_rate", [1], "learning_rate must be a number"),
])
def test_wrong_types_are_rejected_with_what_was_received(key, value, pattern):
    with pytest.raises(UsageError, match=pattern.replace("(", r"\(").replace(")", r"\)")):
        build_config(TrainConfig, {key: value})


def test_strings_are_coerced_like_cli_values():
    config = build_config(TrainConfig, {"epochs": "4", "resume": "yes", "weight_decay": "0.5",
                                        "steps_per_epoch": "2"})
    assert (config.epochs, config.resume, config.weight_decay, config.steps_per_epoch) == (4, True, 0.5, 2)


def test_tuples_are_coerced():
    @dataclasses.dataclass(frozen=True)
    class C:
        widths: tuple[int, ...] = (1,)
        pair: tuple[int, float] = (0, 0.0)
        mode: typing.Literal["a", "b"] = "a"

    c = build_config(C, {"widths": "8,16", "pair": [1, "2.5"]})
    assert c.widths == (8, 16) and c.pair == (1, 2.5)
    with pytest.raises(UsageError, match="pair needs 2 values"):
        build_config(C, {"pair": [1]})


def test_malformed_yaml_is_one_line_with_position(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("epochs: 3\n  batch_size: [1, 2\n")
    with pytest.raises(UsageError) as info:
        load_yaml(path)
    message = str(info.value)
    assert "\n" not in message
    assert "malformed YAML at line" in message and str(path) in message


def test_yaml_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(UsageError, match="must be a mapping.*Received: list"):
        load_yaml(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="config file not found"):
        load_yaml(tmp_path / "nope.yaml")


def test_overrides_parse_yaml_values():
    assert parse_overrides(["epochs=3", "backbone_args={widths: [8, 16]}", "name=run1"]) == {
        "epochs": 3, "backbone_args": {"widths": [8, 16]}, "name": "run1"}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_overrides(["epochs"])


def test_to_dict_round_trips_through_build_config():
    config = build_config(TrainConfig, {"epochs": 2, "task": {"image_size": 32}})
    assert build_config(TrainConfig, to_dict(config)) == config
