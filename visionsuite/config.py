"""Frozen config dataclasses, resolved as: defaults <- YAML file <- CLI flags (right wins).

Unknown keys are rejected with a "did you mean" hint; values are checked against the field
types; the resolved config is saved to the run directory as YAML.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from visionsuite.errors import UsageError, did_you_mean


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with a one-line error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}: malformed YAML{where}: {problem}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a config file must be a mapping of key: value. "
                         f"Received: {type(data).__name__}")
    return data


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise UsageError(f"{key} must be one of {', '.join(map(repr, args))}. "
                             f"Received: {key}={value!r}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise UsageError(f"{key} needs {len(args)} values. Received: {key}={value!r}")
            return tuple(_coerce(v, t, key) for v, t in zip(value, args))
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, key) for v in value)
    if origin in (dict, Mapping) or tp in (dict,):
        if not isinstance(value, dict):
            raise UsageError(f"{key} must be a mapping. Received: {key}={value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise UsageError(f"{key} must be true or false. Received: {key}={value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise UsageError(f"{key} must be an integer. Received: {key}={value!r}")
        try:
            return int(value)
        except ValueError:
            raise UsageError(f"{key} must be an integer. Received: {key}={value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise UsageError(f"{key} must be a number. Received: {key}={value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{key} must be a number. Received: {key}={value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise UsageError(f"{key} must be a string. Received: {key}={value!r}")
        return str(value)
    return value


def build_config(cls: type, *layers: Mapping[str, Any], source: str = "config"):
    """Create the frozen dataclass ``cls`` from mappings applied left to right.

    ``None`` values in a layer are ignored (a CLI flag that was not given).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key not in fields:
                raise UsageError(f"{source}: unknown key {key!r}.{did_you_mean(key, fields)}")
            if value is None:
                continue
            values[key] = _coerce(value, hints[key], key)
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise UsageError(f"{source}: {exc}") from exc


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``("epochs=3", "widths=[8,16]")`` -> ``{"epochs": 3, "widths": [8, 16]}`` (YAML values)."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set takes KEY=VALUE. Received: {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def to_dict(config) -> dict:
    """A YAML/JSON-friendly dict of a (nested) config dataclass."""
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {k: plain(x) for k, x in dataclasses.asdict(v).items()}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    return plain(config)


def save_yaml(data: Mapping, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dict(data), sort_keys=False))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Options of `visionsuite train` (one key per line, YAML or `--set key=value`)."""

    # (str) training data: a folder, CSV manifest or IDX folder (the task's formats)
    data: str = ""
    # (str) validation data; "" = hold out `val_fraction` of the training data
    val_data: str = ""
    # (float) fraction of the training data held out for validation when val_data is ""
    val_fraction: float = 0.1
    # (str | None) dataset format name; None = detected from the path
    format: str | None = None
    # (str) backbone registry name (`visionsuite backbones`)
    backbone: str = "simple_cnn"
    # (dict) architecture keywords for the backbone (unknown ones are rejected)
    backbone_args: dict = dataclasses.field(default_factory=dict)
    # (str | None) backbone weights: None, "imagenet" or a weights file
    weights: str | None = None
    # (dict) task options (the task's Config fields, e.g. image_size)
    task: dict = dataclasses.field(default_factory=dict)
    # (int) number of epochs
    epochs: int = 10
    # (int) global batch size (split across replicas)
    batch_size: int = 32
    # (str) sgd | adam | adamw
    optimizer: typing.Literal["sgd", "adam", "adamw"] = "adamw"
    # (float) peak learning rate
    learning_rate: float = 1e-3
    # (float) SGD momentum
    momentum: float = 0.9
    # (bool) SGD Nesterov momentum
    nesterov: bool = True
    # (float) decoupled weight decay (AdamW, SGD)
    weight_decay: float = 1e-4
    # (str) cosine (with warmup) | step | plateau | constant
    schedule: typing.Literal["cosine", "step", "plateau", "constant"] = "cosine"
    # (float) linear warmup length in epochs (cosine)
    warmup_epochs: float = 0.0
    # (int) epochs between learning-rate drops (step)
    step_epochs: int = 10
    # (float) factor of each drop (step, plateau)
    lr_decay: float = 0.1
    # (int) epochs without improvement of `monitor` before each drop (plateau)
    plateau_patience: int = 3
    # (float | None) label smoothing, copied into the task config's `label_smoothing`; None = the task's
    label_smoothing: float | None = None
    # (float | None) dropout before the head, copied into the task config's `dropout`; None = the task's
    dropout: float | None = None
    # (int) epochs with the backbone frozen before fine-tuning (transfer learning)
    freeze_epochs: int = 0
    # (float) learning-rate factor for the fine-tuning phase after freeze_epochs
    finetune_lr_factor: float = 0.1
    # (bool) update the backbone's BatchNorm statistics while fine-tuning; false keeps the
    # pretrained statistics (inference-mode BatchNorm), which is safer on small datasets
    finetune_batchnorm: bool = False
    # (int) stop after this many epochs without improvement of `monitor`; 0 = off
    early_stopping: int = 0
    # (str) metric watched for best checkpoint, early stopping and plateau
    monitor: str = "val_loss"
    # (str) auto | float32 | mixed_float16 | mixed_bfloat16 (auto: float32 on CPU)
    precision: typing.Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    # (str) auto | default | mirrored | multi_worker | tpu
    strategy: typing.Literal["auto", "default", "mirrored", "multi_worker", "tpu"] = "auto"
    # (str) parent folder of run directories: <runs_dir>/<task>/<name>/
    runs_dir: str = "runs"
    # (str) run name; "" = a timestamp
    name: str = ""
    # (bool) continue the run <name> from its last checkpoint
    resume: bool = False
    # (int) random seed (data order, augmentation, initialisation)
    seed: int = 0
    # (bool) fail on unreadable samples instead of skipping them
    strict: bool = False
    # (int | None) cap on steps per epoch (smoke tests)
    steps_per_epoch: int | None = None
    # (bool) XLA compilation (off: it doubles first-step time on CPU)
    jit_compile: bool = False
    # (bool) show progress bars
    progress: bool = True
