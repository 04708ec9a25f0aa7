"""Predictions on image files: ``visionsuite predict TASK --model REF IMAGES...``.

The model runs through :func:`visionsuite.runtime.load_runtime` and the task's own
``preprocess`` / ``postprocess`` / ``render`` / ``to_record``, exactly as in a stream.

Example:
    >>> for item in predict("classification", "imagenet:efficientnet_lite0", ["cat.jpg"]):
    ...     print(item.path, summarize(item.record))
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError, UsageError
from visionsuite.models import ModelMetadata, check_task

log = logging.getLogger("visionsuite")


def make_task(task, metadata: ModelMetadata, source: str, overrides: dict | None = None):
    """The task instance that runs a model: ``task`` (a name or a Task) checked against the
    model's metadata, configured from the metadata's ``task_config`` plus ``overrides``."""
    from visionsuite.config import build_config
    from visionsuite.plugins import get_task_class
    from visionsuite.task import Task

    if isinstance(task, Task):
        check_task(metadata, task.name, source)
        if overrides:
            return type(task)(dataclasses.replace(task.config, **overrides))
        return task
    check_task(metadata, str(task), source)
    cls = get_task_class(str(task))
    known = {f.name for f in dataclasses.fields(cls.Config)}
    saved = {k: v for k, v in metadata.task_config.items() if k in known}
    # the model fixes the input size, whatever the overrides say
    config = build_config(cls.Config, saved, dict(overrides or {}),
                          {"image_size": metadata.input_size}, source=f"{source}: task")
    return cls(config)


def summarize(record: dict, limit: int = 200) -> str:
    """One line for a task record: ``label score, ...`` for top-k records, else JSON."""
    if isinstance(record.get("top_k"), list):
        return ", ".join(f"{r['label']} {r['score']:.3f}" for r in record["top_k"])
    text = json.dumps(record, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclasses.dataclass
class PredictResult:
    """The prediction for one image file."""

    path: str
    prediction: object
    record: dict


def expand_inputs(inputs: Sequence[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files from files, folders and glob patterns; unreadable ones as (path, reason)."""
    from visionsuite.streams.sources import ImageSource

    paths, skipped = [], []
    for spec in inputs:
        if not any(c in str(spec) for c in "*?[") and not Path(spec).exists():
            raise DataError(f"no such file or folder: {spec}")
        try:
            source = ImageSource(spec).open()
        except DataError as exc:
            if Path(spec).is_file():  # one unreadable file among others: skip it (reported
                skipped.append((str(spec), str(exc)))  # by predict, or its error if alone)
                continue
            raise
        paths.extend(source.paths)
        skipped.extend(source.skipped)
    return paths, skipped


def predict(task, model, inputs: Sequence[str | Path], *, runtime: str = "auto",
            threads: int | None = None, overrides: dict | None = None,
            out_dir: str | Path | None = None) -> Iterator[PredictResult]:
    """Yield a :class:`PredictResult` per readable image of ``inputs`` (files, folders, globs).

    Args:
        task: task name (or instance) the model must have been made for.
        model: model reference (see :func:`visionsuite.runtime.load_runtime`).
        overrides: task config values, e.g. ``{"top_k": 3}``.
        out_dir: where to write annotated images and ``predictions.jsonl``.
    """
    import cv2

    from visionsuite.data.images import read_image
    from visionsuite.runtime import load_runtime, resolve_model

    path, metadata = resolve_model(model)
    task_obj = make_task(task, metadata, str(model), overrides)
    paths, skipped = expand_inputs(inputs)  # images in folders are reported as they are found
    named = [(item, reason) for item, reason in skipped if Path(item).is_file()
             and str(item) in {str(i) for i in inputs}]
    if not paths:
        if len(named) == 1 and len(skipped) == 1:  # one unreadable file: its own error
            raise DataError(named[0][1])
        raise DataError(f"no readable images in {', '.join(map(str, inputs))}"
                        + (f" ({len(skipped)} unreadable)" if skipped else ""))
    for _, reason in named:
        log.warning("skipped %s", reason)
    net = load_runtime(model, runtime=runtime, threads=threads)
    out = Path(out_dir) if out_dir else None
    jsonl = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        jsonl = open(out / "predictions.jsonl", "w", encoding="utf-8")
    try:
        for p in paths:
            try:
                rgb = read_image(p)
            except DataError as exc:
                log.warning("skipped %s", exc)
                continue
            x, meta = task_obj.preprocess(rgb, net.input_size)
            raw = net(np.asarray(x, np.float32)[None])
            raw = [r[0] for r in raw] if isinstance(raw, list) else raw[0]
            prediction = task_obj.postprocess(raw, dict(meta, source=str(p)), metadata.classes)
            record = task_obj.to_record(prediction)
            if out is not None:
                bgr = task_obj.render(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), prediction)
                name = out / f"{p.stem}.jpg"
                tmp = name.with_name(f".{name.name}.tmp.jpg")
                cv2.imwrite(str(tmp), bgr)
                tmp.replace(name)
                jsonl.write(json.dumps({"path": str(p), "result": record}, default=str) + "\n")
                jsonl.flush()
            yield PredictResult(str(p), prediction, record)
    finally:
        if jsonl is not None:
            jsonl.close()


def parse_task_overrides(task, pairs: Sequence[str], **named) -> dict:
    """``KEY=VALUE`` strings and named options (``top_k=5``; ``None`` = not given) as task
    config overrides; a key the task does not have is a usage error."""
    from visionsuite.config import parse_overrides

    values = dict(parse_overrides(pairs)) if pairs else {}
    values = {k.split(".", 1)[1] if k.startswith("task.") else k: v for k, v in values.items()}
    for key, value in named.items():
        if value is not None:
            values[key] = value
    if not values:
        return {}
    from visionsuite.errors import did_you_mean
    from visionsuite.plugins import get_task_class

    cls = get_task_class(task) if isinstance(task, str) else type(task)
    known = {f.name for f in dataclasses.fields(cls.Config)}
    for key in values:
        if key not in known:
            raise UsageError(f"task {cls.name!r} has no option {key!r}.{did_you_mean(key, known)}"
                             f" Received: {key}={values[key]!r}")
    return values
