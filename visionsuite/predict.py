"""Predictions on image files: ``visionsuite predict TASK --model REF IMAGES...``.

One inference loop: ``predict`` is the stream engine (:mod:`visionsuite.streams.pipeline`)
over an image source, with a JSON-lines sink and an annotated-image sink.

Example:
    >>> for item in predict("classification", "imagenet:efficientnet_lite0", ["cat.jpg"]):
    ...     print(item.path, item.summary)
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path


from visionsuite.errors import DataError, UsageError

log = logging.getLogger("visionsuite")


@dataclasses.dataclass
class PredictResult:
    """The prediction for one image file."""

    path: str
    prediction: object
    record: dict
    # (str) the task's one-line summary of the record
    summary: str = ""


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
    """Yield a :class:`PredictResult` per readable image of ``inputs`` (files, folders, globs):
    the stream engine over one image source, with the task's sinks. Inputs the task reads
    itself (:meth:`~visionsuite.task.Task.open_source`, e.g. volumes) are sources of their own
    before the images.

    Args:
        task: task name (or instance) the model must have been made for.
        model: model reference (see :func:`visionsuite.runtime.load_runtime`).
        overrides: task config values, e.g. ``{"top_k": 3}``.
        out_dir: where to write annotated images (``<stem>.jpg``) and ``predictions.jsonl``.
    """
    from visionsuite.plugins import task_for_model
    from visionsuite.runtime import resolve_model
    from visionsuite.streams import sinks
    from visionsuite.streams.pipeline import run
    from visionsuite.streams.sources import ImageSource

    _, metadata = resolve_model(model)  # a wrong model fails before any image is read
    task = task_for_model(metadata, task, overrides, source=str(model))
    own, rest = [], []  # inputs the task reads itself (Task.open_source), and images
    for spec in inputs:
        source = task.open_source(spec, len(own))
        (own.append(source) if source is not None else rest.append(spec))
    paths, skipped = expand_inputs(rest) if rest else ([], [])  # folders report as found
    named = [(item, reason) for item, reason in skipped if Path(item).is_file()
             and str(item) in {str(i) for i in rest}]
    if not paths and not own:
        if len(named) == 1 and len(skipped) == 1:  # one unreadable file: its own error
            raise DataError(named[0][1])
        raise DataError(f"no readable images in {', '.join(map(str, inputs))}"
                        + (f" ({len(skipped)} unreadable)" if skipped else ""))
    for _, reason in named:
        log.warning("skipped %s", reason)
    extra = []
    if out_dir is not None:
        out = Path(out_dir)
        extra = [sinks.FramesSink(out, by_stem=True), sinks.JsonlSink(out / "predictions.jsonl")]
    if paths:
        own.append(ImageSource(", ".join(map(str, rest)), paths=paths))
    stream = run(task, None, model=model, runtime=runtime, threads=threads, policy="queue",
                 sinks=extra, sources=own, progress=False)
    for result in stream:
        yield PredictResult(result.path, result.prediction, result.record,
                            stream.task.summary(result.record))


def parse_task_args(cls, args: Sequence[str], positionals: list | None = None) -> dict:
    """The task's own command-line options (``Task.options``) in ``args``, e.g.
    ``["--conf", "0.4", "--classes=person,car"]`` -> ``{"conf": 0.4, "classes": ...}``.
    A boolean option takes no value (``--legend`` / ``--no-legend``); values are YAML.
    With a ``positionals`` list, words that are not options (``predict``'s images) are
    appended to it instead of being rejected."""
    import yaml

    from visionsuite.errors import did_you_mean

    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    flags = {o.cli_flag: o.key for o in cls.options}
    for flag, key in flags.items():
        if key not in fields:
            raise UsageError(f"task {cls.name!r} declares option {flag} for a config key it "
                             f"lacks. Received: key={key!r}")
    booleans = {k for k, f in fields.items() if f.type in (bool, "bool")}
    values: dict = {}
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        if positionals is not None and not arg.startswith("--"):
            positionals.append(arg)
            i += 1
            continue
        flag, sep, raw = arg.partition("=")
        negated = flag.startswith("--no-") and "--" + flag[5:] in flags
        key = flags.get("--" + flag[5:] if negated else flag)
        if key is None:
            hint = did_you_mean(flag, flags) if flags else " It has no options of its own."
            raise UsageError(f"task {cls.name!r} has no option {flag}.{hint} Received: {arg}")
        if key in booleans and not sep:
            values[key] = not negated
            i += 1
            continue
        if not sep:
            if i + 1 >= len(args):
                raise UsageError(f"{flag} needs a value. Received: {flag} at the end")
            raw, i = args[i + 1], i + 1
        try:
            values[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            values[key] = raw
        i += 1
    return values


def task_overrides(task, pairs: Sequence[str] = (), args: Sequence[str] = (),
                   positionals: list | None = None) -> dict:
    """Task config overrides from ``--set KEY=VALUE`` strings and the task's own options
    (``args``); a key the task does not have is a usage error. ``positionals``: see
    :func:`parse_task_args`."""
    from visionsuite.config import parse_overrides
    from visionsuite.errors import did_you_mean
    from visionsuite.plugins import get_task_class

    cls = get_task_class(task) if isinstance(task, str) else type(task)
    values = dict(parse_overrides(pairs)) if pairs else {}
    values = {k.split(".", 1)[1] if k.startswith("task.") else k: v for k, v in values.items()}
    values.update(parse_task_args(cls, args, positionals))
    known = {f.name for f in dataclasses.fields(cls.Config)}
    for key in values:
        if key not in known:
            raise UsageError(f"task {cls.name!r} has no option {key!r}.{did_you_mean(key, known)}"
                             f" Received: {key}={values[key]!r}")
    return values
