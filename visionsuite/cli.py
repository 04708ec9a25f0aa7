"""The `visionsuite` command line: a thin layer over the Python API.

Errors are one line on stderr: exit 2 for usage errors, 1 for runtime failures;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from visionsuite.errors import UsageError, VisionsuiteError

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check at import
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# OpenCV / FFmpeg warnings would repeat our one-line errors (and could show stream URLs);
# OpenCV reads these when cv2 is first imported.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def _say(text: str) -> None:
    """One message on stderr, URL credentials masked (whatever library wrote the text)."""
    from visionsuite.streams.sources import mask_url

    click.echo(mask_url(text), err=True)


def _traceback(exc: BaseException) -> None:
    """--debug: the full traceback, URL credentials masked."""
    import traceback

    _say("".join(traceback.format_exception(exc)).rstrip())


class _Group(click.Group):
    """Turns library errors into one line and an exit code (traceback with --debug)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # bad flags of a command: one line, not click's three
            where = f" (see `{exc.ctx.command_path} -h`)" if exc.ctx else ""
            _say(f"error: {exc.format_message()}{where}")
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except VisionsuiteError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                _traceback(exc)
            else:
                _say(f"error: {exc}")
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            _say("interrupted")
            ctx.exit(130)
        except Exception as exc:  # unexpected: still one line unless --debug
            if ctx.obj and ctx.obj.get("debug"):
                _traceback(exc)
                ctx.exit(1)
            from visionsuite.data.pipeline import sample_error

            known = sample_error(exc)  # an unreadable sample under --strict, inside tf.data
            if known is not None:
                _say(f"error: {known}")
                ctx.exit(known.exit_code)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _say(f"error: {type(exc).__name__}: {first[:300]} (run with --debug for the "
                 f"traceback)")
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="visionsuite")
@click.pass_context
def main(ctx, debug):
    """visionsuite: train, evaluate, export and run CNNs on images, volumes and video.

    \b
    Examples:
      visionsuite tasks
      visionsuite backbones
      visionsuite train classification --data datasets/samples/fashion-mnist --epochs 2
      visionsuite predict classification --model imagenet:efficientnet_lite0 cat.jpg
      visionsuite run segmentation --source video.mp4 --save out.mp4
    """
    ctx.obj = {"debug": debug}


def _tensorflow():
    """Import TensorFlow now, without its C++ start-up notices on the terminal."""
    from visionsuite.tflog import import_tensorflow_quietly

    import_tensorflow_quietly()


def _task(name: str):
    from visionsuite.plugins import get_task_class

    return get_task_class(name)


# Commands that take the task's own options (Task.options) after the core ones.
TASK_OPTIONS = {"ignore_unknown_options": True, "allow_extra_args": True}
TASK_OPTIONS_HELP = ("Task options (e.g. --top-k 3, --alpha 0.6, --conf 0.4) follow the core "
                     "options; `visionsuite tasks --options` lists each task's.")


# === tasks / backbones ===
@main.command("tasks")
@click.option("--options", "show_options", is_flag=True,
              help="Also list each task's own options of run / predict / evaluate.")
def tasks_cmd(show_options):
    """List installed task plugins; a broken plugin is reported in one line.

    \b
    Example:
      visionsuite tasks --options
    """
    _tensorflow()
    from visionsuite.plugins import discover, load_all_tasks

    plugins, _ = discover()
    loaded, errors = load_all_tasks()
    for name, cls in sorted(loaded.items()):
        formats = ", ".join(cls.dataset_formats) or "-"
        click.echo(f"{name:<16} {plugins[name].dist:<28} formats: {formats}")
        if show_options:
            for opt in cls.options:
                click.echo(f"    {opt.cli_flag:<16} {opt.help}")
    for name, err in sorted(errors.items()):
        click.echo(f"{name:<16} BROKEN: {err}")
    if not loaded and not errors:
        click.echo("no tasks installed")


@main.command("backbones")
@click.option("--params/--no-params", default=True,
              help="Build each backbone once to count its parameters (a few seconds each).")
def backbones_cmd(params):
    """List backbones: parameters, feature levels (stride/channels) and weights.

    \b
    Example:
      visionsuite backbones --no-params
    """
    _tensorflow()
    from visionsuite.backbones.registry import backbone_problems, count_params, list_backbones

    for entry in list_backbones():
        levels = " ".join(f"{lv.name}/{lv.stride}:{lv.channels}" for lv in entry.levels(**entry.arch_defaults))
        n = f"{count_params(entry) / 1e6:7.2f}M" if params else "      -"
        if entry.pretrained and entry.weights_source:
            where, present = entry.weights_source(entry.pretrained[0])
            weights = f"{entry.pretrained[0]}: {where} [{'present' if present else 'missing'}]"
        else:
            weights = "none (random init)"
        click.echo(f"{entry.name:<20} {n}  {levels:<36} {weights}")
    for problem in backbone_problems():
        click.echo(f"BROKEN: {problem}")


# === train / evaluate ===
@main.command("train")
@click.argument("task")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--data", help="Training data (folder, CSV manifest, IDX folder...).")
@click.option("--val-data", help="Validation data (default: hold out val_fraction).")
@click.option("--backbone", help="Backbone name (see `visionsuite backbones`).")
@click.option("--weights", help="Backbone weights: imagenet or a file.")
@click.option("--image-size", type=int, help="Square input size in pixels.")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--lr", "learning_rate", type=float, help="Peak learning rate.")
@click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]))
@click.option("--precision", type=click.Choice(["auto", "float32", "mixed_float16", "mixed_bfloat16"]))
@click.option("--strategy", type=click.Choice(["auto", "default", "mirrored", "multi_worker", "tpu"]))
@click.option("--freeze-epochs", type=int, help="Epochs with a frozen backbone before fine-tuning.")
@click.option("--early-stopping", type=int, help="Patience in epochs (0 = off).")
@click.option("--name", help="Run name (default: a timestamp).")
@click.option("--runs-dir", help="Parent folder of runs (default: runs).")
@click.option("--resume", is_flag=True, default=None, help="Continue run NAME from its last checkpoint.")
@click.option("--strict", is_flag=True, default=None, help="Fail on unreadable samples.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any config key, e.g. --set schedule=step --set task.image_size=32.")
def train_cmd(task, config_file, overrides, image_size, **flags):
    """Train TASK; writes runs/<task>/<name>/ (config, metrics, curves, best/last .keras).

    \b
    Example:
      visionsuite train classification --data datasets/samples/fashion-mnist \\
          --backbone simple_cnn --image-size 28 --epochs 2 --name demo
    """
    from visionsuite.config import TrainConfig, build_config, load_yaml, parse_overrides

    task_cls = _task(task)
    file_layer = load_yaml(config_file) if config_file else {}
    flat = parse_overrides(overrides)
    task_overrides = {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("task.")}
    flat = {k: v for k, v in flat.items() if not k.startswith("task.")}
    if image_size is not None:
        task_overrides["image_size"] = image_size
    source = config_file or "flags"
    config = build_config(TrainConfig, file_layer, flags, flat, source=source)
    task_layer = dict(config.task, **task_overrides)
    task_config = build_config(task_cls.Config, task_layer, source=f"{source}: task")
    config = build_config(TrainConfig, file_layer, flags, flat, {"task": task_layer}, source=source)
    from visionsuite.training import train

    _tensorflow()
    result = train(task_cls(task_config), config)
    click.echo(f"run directory: {result.run_dir}")
    for key, value in sorted(result.metrics.items()):
        click.echo(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")


@main.command("evaluate", context_settings=TASK_OPTIONS, epilog=TASK_OPTIONS_HELP)
@click.argument("task")
@click.option("--model", required=True, type=click.Path(dir_okay=False), help="A trained .keras model.")
@click.option("--data", required=True, help="Evaluation data.")
@click.option("--format", "fmt", help="Dataset format (default: detected).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Folder for plots and metrics.json.")
@click.option("--strict", is_flag=True, help="Fail on unreadable samples.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Task option, e.g. --set class_map=classes.yaml.")
@click.pass_context
def evaluate_cmd(ctx, task, model, data, fmt, batch_size, out, strict, overrides):
    """Score a trained model on a whole dataset (metrics, confusion matrix, samples).

    \b
    Example:
      visionsuite evaluate classification --model runs/classification/demo/best.keras \\
          --data datasets/samples/fashion-mnist
    """
    from visionsuite.predict import task_overrides

    options = task_overrides(task, overrides, ctx.args)
    _tensorflow()
    from visionsuite.training import evaluate_model

    metrics = evaluate_model(task, model, data, format=fmt, batch_size=batch_size,
                             out_dir=Path(out) if out else None, strict=strict,
                             overrides=options)
    for key, value in sorted(metrics.items()):
        click.echo(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


# === run / predict / export ===
@main.command("run", context_settings=TASK_OPTIONS, epilog=TASK_OPTIONS_HELP)
@click.argument("task")
@click.option("--source", "sources", multiple=True, required=True,
              help="Camera index, video file, URL (rtsp/http(s)/udp...), image folder or glob; "
                   "repeat for several sources.")
@click.option("--model", help="A .keras/.tflite/.onnx file, a SavedModel folder or "
                              "imagenet:<backbone> (default: the task's default model).")
@click.option("--runtime", type=click.Choice(["auto", "keras", "savedmodel", "tflite", "onnx"]),
              default="auto", show_default=True,
              help="auto: fp32 TFLite on CPU, a compiled tf.function on GPU.")
@click.option("--threads", type=int, help="TFLite interpreter threads (default: chosen by the "
              "engine from the measured stage costs and the core count).")
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--vid-stride", type=int, default=1, show_default=True,
              help="Decode every Nth video frame (the others are only grabbed).")
@click.option("--policy", type=click.Choice(["newest", "queue"]), default="newest",
              show_default=True, help="Live sources: keep the newest frame, or a bounded queue.")
@click.option("--queue-size", type=int, default=8, show_default=True)
@click.option("--timeout", type=float, default=10.0, show_default=True,
              help="Seconds to open a URL / wait for a frame.")
@click.option("--reconnect", type=int, default=12, show_default=True,
              help="Reconnection attempts per URL outage (waits doubling from 0.5 s up to "
                   "--reconnect-delay-max and --timeout).")
@click.option("--reconnect-delay-max", type=float, default=1.5, show_default=True,
              help="Longest wait between reconnection attempts, in seconds.")
@click.option("--show", is_flag=True, help="Show annotated frames in a window (GUI builds).")
@click.option("--save", type=click.Path(dir_okay=False), help="Annotated video (.mp4, .avi).")
@click.option("--results", type=click.Path(dir_okay=False), help="JSON lines, one per frame.")
@click.option("--save-frames", type=click.Path(file_okay=False), help="Folder of annotated JPEGs.")
@click.option("--stats", "stats_path", type=click.Path(dir_okay=False),
              help="Timings JSON (default: <results or save>.stats.json, else "
                   "runs/stream/<task>-<time>.stats.json).")
@click.option("--max-frames", type=int, help="Stop after this many frames.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Task option, e.g. --set top_k=3.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars for files (default: when stderr is a terminal).")
@click.option("--drift", "drift_ref", type=click.Path(dir_okay=False),
              help="Drift reference JSON (a training run's drift_reference.json, or "
                   "`visionsuite drift-reference`): alarms in the stats and <stats>.drift.jsonl.")
@click.option("--drift-window", type=int, default=30, show_default=True,
              help="Frames per source in the drift window.")
@click.option("--drift-threshold", type=float, default=1.0, show_default=True,
              help="PSI above which a statistic raises a drift alarm.")
@click.pass_context
def run_cmd(ctx, task, sources, model, runtime, threads, batch_size, vid_stride, policy,
            queue_size, timeout, reconnect, reconnect_delay_max, show, save, results,
            save_frames, stats_path, max_frames, overrides, progress, drift_ref=None,
            drift_window=30, drift_threshold=1.0):
    """Run TASK on cameras, video files, network streams or image folders.

    Ctrl-C or SIGTERM stop cleanly: the video plays and every JSON line is complete.

    \b
    Exit codes: 0 end of input (or --max-frames); 1 error; 2 bad arguments;
    3 a live source was lost for good (its reconnection attempts ran out; the stats
    say stopped_by "source lost"); 128+N stopped by signal N (130 Ctrl-C, 143 SIGTERM).

    \b
    Examples:
      visionsuite run classification --source 0 --model imagenet:efficientnet_lite0 --show
      visionsuite run classification --source clip.mp4 --model best.tflite \\
          --save out.mp4 --results out.jsonl
      visionsuite run classification --source rtsp://user:pw@cam/stream --source 0 \\
          --model best.keras --results live.jsonl
      visionsuite run segmentation --source video.mp4 --alpha 0.6 --smooth 0.5 \\
          --save out.mp4 --results out.jsonl
    """
    from visionsuite.predict import task_overrides

    options = task_overrides(task, overrides, ctx.args)
    _tensorflow()
    import signal
    import time

    from visionsuite.streams.pipeline import (EXIT_SOURCE_LOST, SOURCE_LOST, format_stats, run,
                                              save_stats)

    first_output = results or save
    path = Path(stats_path) if stats_path else (
        Path(str(first_output) + ".stats.json") if first_output else
        Path("runs") / "stream" / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}.stats.json")
    drift = _drift_sink(drift_ref, drift_window, drift_threshold, path)
    stream = run(task, list(sources), model=model, runtime=runtime, threads=threads,
                 batch_size=batch_size, vid_stride=vid_stride, policy=policy,
                 queue_size=queue_size, timeout=timeout, reconnect=reconnect,
                 reconnect_delay_max=reconnect_delay_max, show=show, save=save, results=results,
                 save_frames=save_frames, progress=progress, max_frames=max_frames,
                 task_options=options, sinks=[drift] if drift else ())
    received = []

    def on_signal(signum, _frame):
        name = signal.Signals(signum).name
        if received:  # a second signal: stop waiting
            raise KeyboardInterrupt
        received.append(signum)
        stream.stop(name)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _ in stream:
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if stream.stats:
            if drift:
                stream.stats["drift"] = drift.summary()
            save_stats(stream.stats, path)
            click.echo(format_stats(stream.stats), err=True)
            if drift:
                _report_drift(drift)
            click.echo(f"stats: {path}", err=True)
    if received:
        sys.exit(128 + received[0])
    if stream.stopped_by == SOURCE_LOST:
        sys.exit(EXIT_SOURCE_LOST)


def _drift_sink(reference, window, threshold, stats_path):
    """The drift monitor of `run --drift` (None without a reference)."""
    if not reference:
        return None
    from visionsuite.drift import DriftReference, DriftSink

    return DriftSink(DriftReference.load(reference), window=window, threshold=threshold,
                     log=Path(str(stats_path).removesuffix(".stats.json") + ".drift.jsonl"))


def _report_drift(drift) -> None:
    summary = drift.summary()
    peaks = ", ".join(f"{k} {v:.2f}" for k, v in summary["max_psi"].items()) or "-"
    click.echo(f"drift: {len(summary['alarms'])} alarm(s) (PSI > {summary['threshold']}); "
               f"largest PSI: {peaks}; alarms: {drift.log_path}", err=True)
    for alarm in summary["alarms"][:5]:
        click.echo(f"  drift alarm {alarm['source']} frames {alarm['first_frame']}-"
                   f"{alarm['last_frame']}: {alarm['statistic']} PSI {alarm['psi']:.2f}", err=True)


@main.command("predict", context_settings=TASK_OPTIONS, epilog=TASK_OPTIONS_HELP)
@click.argument("task")
@click.argument("images", nargs=-1, required=True)
@click.option("--model", help="A .keras/.tflite/.onnx file, a SavedModel folder or imagenet:<backbone>.")
@click.option("--runtime", type=click.Choice(["auto", "keras", "savedmodel", "tflite", "onnx"]),
              default="auto", show_default=True)
@click.option("--threads", type=int, help="TFLite interpreter threads (default 1).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Task option.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder for annotated images and predictions.jsonl.")
@click.pass_context
def predict_cmd(ctx, task, images, model, runtime, threads, overrides, out):
    """Predict on image files, folders or glob patterns; one summary line per image.

    \b
    Example:
      visionsuite predict classification --model imagenet:efficientnet_lite0 cat.jpg photos/
    """
    from visionsuite.predict import predict, task_overrides

    # task options arrive mixed with the images (values follow their flag)
    words, images = list(images) + list(ctx.args), []
    options = task_overrides(task, overrides, words, positionals=images)
    if not images:
        raise UsageError("predict needs image files, folders or globs. Received: none")
    _tensorflow()
    if model is None:
        model = _task(task)().default_model()  # Task contract: a model reference or None
        if model is None:
            raise UsageError(f"--model is required for task {task!r}")
    n = 0
    for item in predict(task, model, list(images), runtime=runtime, threads=threads,
                        overrides=options, out_dir=out):
        click.echo(f"{item.path}: {item.summary}")
        n += 1
    if out:
        click.echo(f"{n} predictions written to {out}", err=True)


@main.command("export")
@click.option("--model", required=True, help="A .keras model (or imagenet:<backbone>).")
@click.option("--format", "fmt", required=True, type=click.Choice(["savedmodel", "tflite", "onnx"]),
              help="onnx needs the extra: pip install 'visionsuite[onnx]'.")
@click.option("--quantize", type=click.Choice(["fp16", "int8"]), help="TFLite quantisation.")
@click.option("--calibration-data", type=click.Path(file_okay=False),
              help="Representative images (needed for int8; also the parity inputs).")
@click.option("--out", type=click.Path(), help="Output file or folder (default: beside the model).")
@click.option("--samples", type=int, default=16, show_default=True,
              help="Inputs for the parity check.")
def export_cmd(model, fmt, quantize, calibration_data, out, samples):
    """Export a .keras model to SavedModel, TFLite or ONNX and check parity against Keras.

    \b
    Examples:
      visionsuite export --model best.keras --format tflite
      visionsuite export --model best.keras --format onnx
      visionsuite export --model best.keras --format tflite --quantize int8 \\
          --calibration-data data/val
    """
    _tensorflow()
    from visionsuite.export import export_model, format_report

    report = export_model(model, fmt, quantize=quantize, calibration_data=calibration_data,
                          out=out, samples=samples)
    click.echo(format_report(report))


# === explain ===
@main.command("explain")
@click.argument("task")
@click.argument("images", nargs=-1, required=True)
@click.option("--model", required=True, type=click.Path(dir_okay=False),
              help="A trained .keras model (gradients need Keras).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the overlays and explanations.jsonl.")
@click.option("--method", "methods", multiple=True, type=click.Choice(["gradcam", "gradcam++"]),
              help="Repeat for both (default: both).")
@click.option("--top-k", type=int, default=1, show_default=True,
              help="Explain the k most likely classes (segmentation: the k largest regions).")
@click.option("--class", "class_name", help="Explain this class instead of the top k.")
@click.option("--level", help="Backbone level, e.g. P4 (default: the deepest declared).")
def explain_cmd(task, images, model, out, methods, top_k, class_name, level):
    """Grad-CAM / Grad-CAM++ heat maps of TASK's model on IMAGES (files, folders, globs).

    The map comes from one of the backbone's declared feature levels (see `visionsuite
    backbones`); one overlay PNG per image, class and method, and explanations.jsonl with
    each map's peak.

    \b
    Example:
      visionsuite explain classification --model best.keras cat.jpg --out explain/ --top-k 2
      visionsuite explain segmentation --model seg.keras street.jpg --class person --out ex/
    """
    _tensorflow()
    from visionsuite.explain import METHODS, explain_images

    records = explain_images(task, model, list(images), out, top_k=top_k,
                             class_name=class_name, level=level,
                             methods=list(methods) or list(METHODS))
    for r in records:
        what = f"p={r['score']:.3f}" if "score" in r else f"area={r['area']:.3f}"
        peaks = " ".join(f"{m} peak {tuple(p)}" for m, p in r["peak"].items())
        click.echo(f"{r['image']}: {r['class']} ({what}) level {r['level']}: {peaks}")
    click.echo(f"{len(records)} explanations written to {out}", err=True)


# === drift-reference ===
@main.command("drift-reference")
@click.argument("source")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Reference JSON.")
@click.option("--max-frames", type=int, help="Use at most this many frames / images.")
@click.option("--vid-stride", type=int, default=1, show_default=True)
def drift_reference_cmd(source, out, max_frames, vid_stride):
    """Write a drift reference (image statistics) from a video file or an image folder.

    Training runs write one themselves (runs/<task>/<name>/drift_reference.json, with the
    label distribution); use this for data that was never trained on.

    \b
    Example:
      visionsuite drift-reference normal_day.mp4 --out ref.json
      visionsuite run classification --source cam.mp4 --model best.keras --drift ref.json
    """
    from visionsuite.drift import video_reference

    ref = video_reference(source, max_frames=max_frames, vid_stride=vid_stride)
    ref.save(out)
    click.echo(f"drift reference of {ref.images} frames written to {out}")


# === models ===
@main.command("models")
@click.argument("words", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of text.")
def models_cmd(words, as_json):
    """List models under DIR (default: runs), or `models show M` for one model's card.

    Each line: task, classes, backbone, headline metrics, size and creation time, read from
    the metadata every visionsuite model carries (.keras, .tflite, .onnx, SavedModel).

    \b
    Examples:
      visionsuite models
      visionsuite models runs/classification
      visionsuite models show runs/classification/demo/best.keras
    """
    import json

    from visionsuite.catalog import format_row, list_models, model_card

    if words and words[0] == "show":
        if len(words) != 2:
            raise UsageError(f"models show takes one model. Received: {list(words[1:])}")
        click.echo(model_card(words[1]))
        return
    if len(words) > 1:
        raise UsageError(f"models takes one folder (or `show MODEL`). Received: {list(words)}")
    rows = list_models(words[0] if words else "runs")
    for row in rows:
        click.echo(json.dumps(row) if as_json else format_row(row))
    if not rows:
        click.echo(f"no models under {words[0] if words else 'runs'}", err=True)


# === doctor ===
@main.command("doctor")
def doctor_cmd():
    """Check this machine: stack versions, duplicate TensorFlow/OpenCV installs, accelerators,
    LiteRT's XNNPACK, FFmpeg, the cache (samples, models) and write permissions.

    Exits 1 when something is wrong, with one line per problem at the end.

    \b
    Example:
      visionsuite doctor
      VISIONSUITE_CACHE=/data/cache visionsuite doctor
    """
    from visionsuite.doctor import diagnose

    findings = diagnose()
    section = None
    for f in findings:
        if f.section != section:
            section = f.section
            click.echo(f"[{section}]")
        click.echo(f"  {'ok  ' if f.problem is None else 'FAIL'}  {f.text}")
    problems = [f.problem for f in findings if f.problem]
    if problems:
        for p in problems:
            click.echo(f"problem: {p}", err=True)
        sys.exit(1)
    click.echo("all checks passed")


@main.command("convert")
@click.argument("task")
@click.argument("source")
@click.argument("destination")
@click.option("--to", "to", required=True, help="Target format (the task's dataset formats).")
@click.option("--from", "source_format", help="Source format (default: detected).")
@click.option("--link-images", is_flag=True, help="Hard/soft-link images instead of copying.")
@click.option("--strict", is_flag=True, help="Fail on the first bad item instead of skipping it.")
def convert_cmd(task, source, destination, to, source_format, link_images, strict):
    """Convert a TASK dataset between the task's formats (every split).

    \b
    Example:
      visionsuite convert detection datasets/voc runs/voc-yolo --to yolo
    """
    message = _task(task)().convert_dataset(source, destination, to,
                                            source_format=source_format,
                                            link_images=link_images, strict=strict)
    click.echo(message)


def run_cli():  # pragma: no cover - console entry used by tests through subprocess
    main(prog_name="visionsuite")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(prog_name="visionsuite"))
