"""The training engine shared by every task: ``train(task, config)`` and ``evaluate_model``.

One run, in order:

1. create the distribution strategy (it must come before anything touches TF devices);
2. resolve the precision policy and set it for the duration of the run only;
3. read the data through the task (holding out ``val_fraction`` when there is no
   ``val_data``, deterministically from ``seed``);
4. build the backbone and the task's model under the strategy;
5. train in one phase, or two for transfer learning (backbone frozen for ``freeze_epochs``
   with its BatchNorm layers in inference mode, then unfrozen and recompiled at
   ``learning_rate * finetune_lr_factor``);
6. write ``last.keras``, ``curves.png`` and score ``best.keras`` with ``task.evaluate``.

Run directory ``<runs_dir>/<task>/<name>/``: ``config.yaml`` (the resolved TrainConfig with
the task's full config under ``task``; reusable with ``--config``), ``run.yaml`` (what the
run resolved to: strategy, replicas, precision, dataset sizes), ``metrics.csv``, ``logs/``
(TensorBoard), ``curves.png``, ``best.keras``, ``last.keras``, ``checkpoint.npz`` and
``metrics.json`` (+ whatever the task's ``evaluate`` writes).

``label_smoothing`` and ``dropout`` are task options: when set in the TrainConfig (not
``None``) they are copied into the task's config fields of the same name, and a task whose
Config lacks such a field rejects them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.config import save_yaml, to_dict
from visionsuite.errors import DataError, UsageError
from visionsuite.files import remove_stale_temps, write_json_atomic
from visionsuite.models import (ModelMetadata, check_task, load_keras_model, read_keras_metadata,
                                save_keras_model)
from visionsuite.task import Dataset, Task
from visionsuite.training.checkpoint import (RunState, read_checkpoint, restore_model,
                                             restore_optimizer)
from visionsuite.training.optim import make_optimizer
from visionsuite.training.precision import precision_scope, resolve_precision
from visionsuite.training.strategy import make_strategy

log = logging.getLogger("visionsuite")

SHARED_TASK_OPTIONS = ("label_smoothing", "dropout")
CHECKPOINT = "checkpoint.npz"


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Args:
        run_dir: the run directory.
        metrics: the task's evaluation of ``best.keras`` on the validation set, plus
            ``best_epoch`` and ``best_<monitor>``.
        history: one dict of epoch logs per epoch trained by this call.
        state: the final :class:`~visionsuite.training.checkpoint.RunState`.
        precision: the dtype policy the run used.
        strategy: the strategy kind the run used, and ``replicas`` its replica count.
    """

    run_dir: Path
    metrics: dict
    history: list
    state: RunState
    precision: str
    strategy: str
    replicas: int


def _check_config(config) -> None:
    if not config.data:
        raise UsageError("no training data given. Received: data=''")
    for key in ("epochs", "batch_size"):
        if getattr(config, key) < 1:
            raise UsageError(f"{key} must be >= 1. Received: {key}={getattr(config, key)}")
    if not 0.0 <= config.val_fraction < 1.0:
        raise UsageError(f"val_fraction must be in [0, 1). Received: val_fraction={config.val_fraction}")
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        raise UsageError(f"steps_per_epoch must be >= 1. Received: steps_per_epoch={config.steps_per_epoch}")
    if not 0 <= config.freeze_epochs < config.epochs or config.freeze_epochs and config.finetune_lr_factor <= 0:
        raise UsageError(f"freeze_epochs must be in [0, epochs) and finetune_lr_factor > 0. Received: "
                         f"freeze_epochs={config.freeze_epochs}, epochs={config.epochs}, "
                         f"finetune_lr_factor={config.finetune_lr_factor}")
    if config.resume and not config.name:
        raise UsageError("--resume needs the --name of the run to continue. Received: name=''")
    # === Arguments that need no data: checked before any data is read ===
    from visionsuite.backbones.registry import get_backbone_entry, resolve_arch

    entry = get_backbone_entry(config.backbone)
    resolve_arch(entry, dict(config.backbone_args))
    if config.weights == "imagenet" and "imagenet" not in entry.pretrained:
        raise UsageError(f"backbone {config.backbone!r} has no ImageNet weights; use "
                         f"weights=None. Received: weights='imagenet'")
    if config.weights not in (None, "", "imagenet"):
        from visionsuite.backbones.weights import check_weights_file

        check_weights_file(config.weights)


def with_shared_options(task: Task, config) -> Task:
    """A task whose config carries the TrainConfig's ``label_smoothing`` / ``dropout``."""
    fields = {f.name for f in dataclasses.fields(task.Config)}
    over = {}
    for key in SHARED_TASK_OPTIONS:
        value = getattr(config, key, None)
        if value is None:
            continue
        if key not in fields:
            raise UsageError(f"task {task.name!r} has no {key} option (its options: "
                             f"{', '.join(sorted(fields))}). Received: {key}={value}")
        over[key] = value
    return type(task)(dataclasses.replace(task.config, **over)) if over else task


def split_holdout(dataset: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split off ``fraction`` of ``dataset`` for validation (same split for the same seed)."""
    n = len(dataset)
    n_val = min(max(1, int(round(n * fraction))), n - 1) if fraction > 0 and n > 1 else 0
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = sorted(order[:n_val]), sorted(order[n_val:])
    train = Dataset(dataset.classes, [dataset.samples[i] for i in train_idx], dataset.skipped)
    val = Dataset(dataset.classes, [dataset.samples[i] for i in val_idx])
    return train, val


def _merge_metrics_json(path: Path, metrics: dict) -> None:
    """Add ``metrics`` to the ``metrics.json`` a task's ``evaluate`` may have written (its
    per-class scores stay), atomically."""
    data = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            data = {}
    data.update(metrics)
    write_json_atomic(path, data, sort_keys=True, default=float)


def _freeze_batchnorm(model) -> None:
    """Keep every BatchNormalization layer (nested models too) in inference mode with its
    pretrained statistics while the rest of ``model`` fine-tunes."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        elif isinstance(layer, keras.Model):
            _freeze_batchnorm(layer)


def _load(task: Task, path: str, split: str, config, classes=None) -> Dataset:
    # The task's reader reports skipped items itself (visionsuite.data.images.warn_skipped).
    data = task.load_dataset(path, split=split, format=config.format, strict=config.strict,
                             classes=classes)
    if not len(data):
        raise DataError(f"{path}: no usable samples for split {split!r}")
    return data


def _run_dir(config, task_name: str, check: bool = True) -> tuple[Path, bool]:
    """The run directory and whether there is a checkpoint to resume from.

    ``--resume`` of a run that died before its first checkpoint (or never started) starts it
    from scratch, saying so."""
    name = config.name or time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(config.runs_dir) / task_name / name
    if config.resume:
        if (run_dir / CHECKPOINT).is_file():
            return run_dir, True
        if check:
            log.warning("%s: no %s to resume from (the run %s before its first epoch ended); "
                        "starting it from scratch", run_dir, CHECKPOINT,
                        "stopped" if run_dir.exists() else "does not exist yet, or stopped")
    elif check and run_dir.exists() and any(p for p in run_dir.iterdir()
                                            if not p.name.startswith(".")):
        raise UsageError(f"run directory {run_dir} already exists; use --resume to continue it "
                         f"or another --name. Received: name={name!r}")
    return run_dir, False


def _remove_stale_temps(run_dir: Path) -> None:
    """Delete half-written temporary files a killed run left behind (the files they were
    meant to replace are intact: every write is a rename of a complete temporary file)."""
    for stale in remove_stale_temps(run_dir):
        log.info("removed a stale temporary file: %s", stale)


def _release_iterators() -> None:
    """Free the tf.data iterators an interrupted ``fit`` left behind (outside the ``except``
    block, once its traceback is gone): their worker threads must stop before the
    interpreter exits, or the process aborts."""
    import gc

    gc.collect()


def _distributable(ds, batch_size: int, replicas: int, repeat: bool):
    """Shard by data (works for any source); with several replicas, keep full global batches
    only, so that every replica (and worker) gets an equal, non-empty share of each batch.
    The in-fit validation then skips the last partial batch; the final evaluation does not."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    ds = ds.with_options(options)
    if replicas > 1:
        ds = ds.rebatch(batch_size, drop_remainder=True)
    return ds.repeat() if repeat else ds


def _global_batch(n_samples: int, batch_size: int, replicas: int) -> int:
    """The global batch size for ``replicas``: a multiple of it, and no larger than a dataset
    smaller than one batch (Keras builds a distributed model from the mean of the replicas'
    first batches, which must therefore have equal shapes)."""
    if replicas == 1:
        return batch_size
    if batch_size % replicas:
        raise UsageError(f"batch_size is the global batch and must be a multiple of the "
                         f"{replicas} replicas. Received: batch_size={batch_size}")
    if n_samples < batch_size:
        return max(replicas, n_samples // replicas * replicas)
    return batch_size


def _steps(ds, n_samples: int, batch_size: int, cap: int | None) -> int:
    """Steps per epoch: ``cap`` if given, else the batches of one pass over the data."""
    if cap:
        return int(cap)
    card = int(ds.cardinality())
    return card if card > 0 else max(1, math.ceil(n_samples / batch_size))


def _is_infinite(ds) -> bool:
    import tensorflow as tf

    return int(ds.cardinality()) == int(tf.data.INFINITE_CARDINALITY)


def _verbose(config, is_chief: bool) -> int:
    if not config.progress or not is_chief:
        return 0
    return 1 if sys.stdout.isatty() else 2


def train(task: Task, config, *, callbacks: Sequence = ()) -> TrainResult:
    """Train ``task`` as described by ``config`` (a :class:`~visionsuite.config.TrainConfig`).

    Args:
        task: a task plugin instance (its config holds the task options).
        config: the resolved TrainConfig.
        callbacks: extra Keras callbacks, run after the engine's own each epoch.

    Example:
        >>> result = train(ToyTask(), TrainConfig(data="toy.npz", epochs=2, name="demo"))
        >>> result.metrics["accuracy"]
    """
    import keras


    _check_config(config)
    info = make_strategy(config.strategy)  # first: MultiWorkerMirroredStrategy needs a fresh TF
    task = with_shared_options(task, config)
    keras.utils.set_random_seed(config.seed)

    run_dir, resuming = _run_dir(config, task.name, check=info.is_chief)
    if info.is_chief:
        from visionsuite.files import check_writable

        check_writable(run_dir, "folder")  # before any data is read
    ckpt_path = run_dir / CHECKPOINT
    checkpoint = read_checkpoint(ckpt_path) if resuming else None
    if info.is_chief:  # any start in an existing run folder
        _remove_stale_temps(run_dir)
    created = None  # the highest folder this call creates, if any
    if not run_dir.exists():
        created = run_dir
        while not created.parent.exists():
            created = created.parent
    try:
        return _train(task, config, info, callbacks, run_dir, checkpoint)
    except BaseException:
        # A run that failed before its first checkpoint (bad data, bad weights, Ctrl-C while
        # reading) leaves no empty run folder behind.
        if info.is_chief and created is not None and not (run_dir / CHECKPOINT).exists():
            shutil.rmtree(created, ignore_errors=True)
        raise


def _train(task, config, info, callbacks, run_dir: Path, checkpoint) -> TrainResult:
    import keras

    from visionsuite.backbones import build_backbone
    from visionsuite.data.pipeline import pipeline_scope, sample_error

    policy = resolve_precision(config.precision, info.device)
    ckpt_path = run_dir / CHECKPOINT

    # === Data ===
    with pipeline_scope(strict=config.strict):
        train_set = _load(task, config.data, "train", config)
    if config.val_data:
        with pipeline_scope(strict=config.strict):
            val_set = _load(task, config.val_data, "val", config, classes=train_set.classes)
        if list(val_set.classes) != list(train_set.classes):
            raise DataError(f"{config.val_data}: classes {val_set.classes} differ from the "
                            f"training data's {train_set.classes}")
    else:
        train_set, val_set = split_holdout(train_set, config.val_fraction, config.seed)
    classes = list(train_set.classes)
    monitor = config.monitor
    if not len(val_set) and monitor.startswith("val_"):
        monitor = monitor[len("val_"):]
        log.warning("no validation data (val_fraction=0): monitoring %r on the training set", monitor)

    spec = task.input_spec()
    state = checkpoint.state if checkpoint else RunState()
    # Only the chief writes the run directory; other workers write to a scratch folder.
    out_dir = run_dir if info.is_chief else Path(tempfile.mkdtemp(prefix="visionsuite-worker-"))
    history: list[dict] = []
    with precision_scope(policy):
        # === Model ===
        with info.strategy.scope():
            # the registry backbones are 2D: a volume (DHWC) task builds its own 3D network
            backbone = None if spec.layout == "DHWC" else build_backbone(
                config.backbone, backbone_input_shape(spec), weights=config.weights,
                **config.backbone_args)
            if backbone is None:
                log.info("%s: DHWC input; no registry backbone (the task builds a 3D network)",
                         task.name)
            model = task.build_model(backbone, classes)
        if checkpoint:
            restore_model(checkpoint, model, str(ckpt_path))
        metadata = ModelMetadata(
            task=task.name, classes=tuple(classes), input_spec=spec,
            outputs=tuple(task.output_specs()),
            backbone=config.backbone if backbone is not None else None,
            task_config=to_dict(task.config),
            extra={"preprocessing": to_dict(backbone.spec.preprocessing),
                   "backbone_args": to_dict(backbone.spec.arch), "precision": policy}
            if backbone is not None else {"precision": policy})

        train_bs = _global_batch(len(train_set), config.batch_size, info.replicas)
        val_bs = _global_batch(len(val_set), config.batch_size, info.replicas)

        def train_dataset(start_epoch: int, steps: int):
            # Data order and augmentation are pure functions of (seed, epoch, batch): a
            # resumed run starts the stream where the interrupted one stopped.
            with pipeline_scope(strict=config.strict, start_batch=start_epoch * steps):
                ds = task.make_tf_dataset(train_set, batch_size=train_bs, training=True,
                                          seed=config.seed)
            return _distributable(ds, train_bs, info.replicas,
                                  repeat=config.steps_per_epoch is not None)

        with pipeline_scope(strict=config.strict):
            val_ds = (_distributable(
                task.make_tf_dataset(val_set, batch_size=val_bs, training=False), val_bs,
                info.replicas, repeat=False) if len(val_set) else None)
        steps = _steps(train_dataset(0, 1), len(train_set), train_bs, config.steps_per_epoch)

        out_dir.mkdir(parents=True, exist_ok=True)
        if info.is_chief:
            resolved = dict(to_dict(config), task=to_dict(task.config))
            save_yaml(resolved, run_dir / "config.yaml")
            save_yaml({"task": task.name, "strategy": info.kind, "replicas": info.replicas,
                       "device": info.device, "precision": policy, "classes": classes,
                       "train_samples": len(train_set), "val_samples": len(val_set),
                       "steps_per_epoch": steps, "monitor": monitor,
                       "resumed_at_epoch": state.epoch if checkpoint else None},
                      run_dir / "run.yaml")

        from visionsuite.training.callbacks import RunCallback, truncate_csv, write_curves

        csv_path = out_dir / "metrics.csv"
        truncate_csv(csv_path, state.epoch)  # a restart from scratch keeps only the header
        run_cb = RunCallback(
            state, monitor=monitor, best_path=out_dir / "best.keras",
            checkpoint_path=out_dir / CHECKPOINT, metadata=metadata,
            early_stopping=config.early_stopping,
            plateau_patience=config.plateau_patience if config.schedule == "plateau" else 0,
            lr_decay=config.lr_decay)
        engine_callbacks = [
            run_cb,
            keras.callbacks.CSVLogger(str(csv_path), append=True),
            keras.callbacks.TensorBoard(str(out_dir / "logs"), write_graph=False),
        ]

        # === Phases ===
        if config.freeze_epochs:
            phases = [("frozen", 0, config.freeze_epochs, config.learning_rate),
                      ("finetune", config.freeze_epochs, config.epochs,
                       config.learning_rate * config.finetune_lr_factor)]
        else:
            phases = [("full", 0, config.epochs, config.learning_rate)]
        for phase, start, end, lr in phases:
            if state.epoch >= end or state.stopped_early:
                continue
            # A frozen BatchNormalization layer runs in inference mode in Keras 3.
            if backbone is not None:
                backbone.model.trainable = phase != "frozen"
            if backbone is not None and phase == "finetune" and not config.finetune_batchnorm:
                _freeze_batchnorm(backbone.model)
            with info.strategy.scope():
                optimizer = make_optimizer(config, lr, steps, end - start)
                model.compile(optimizer=optimizer, loss=task.loss(classes, train_set),
                              metrics=task.metrics(classes), jit_compile=config.jit_compile)
                if checkpoint and checkpoint.state.phase == phase and state.epoch > start:
                    restore_optimizer(checkpoint, model.optimizer, model.trainable_variables,
                                      str(ckpt_path))
            state.phase = phase
            train_ds = train_dataset(state.epoch, steps)
            error = None
            with info.strategy.scope():
                try:
                    fit = model.fit(
                        train_ds, validation_data=val_ds, epochs=end, initial_epoch=state.epoch,
                        steps_per_epoch=(steps if config.steps_per_epoch or _is_infinite(train_ds)
                                         else None),
                        shuffle=False,  # the task's dataset shuffles
                        callbacks=[*engine_callbacks, *callbacks],
                        verbose=_verbose(config, info.is_chief))
                except Exception as exc:  # --strict: an unreadable sample, named
                    error = sample_error(exc)
                    if error is None:
                        raise
            if error is not None:
                _release_iterators()
                raise error
            n = len(next(iter(fit.history.values()), []))
            history += [{k: float(v[i]) for k, v in fit.history.items()} for i in range(n)]

        save_keras_model(model, out_dir / "last.keras", metadata)
        write_curves(csv_path, out_dir / "curves.png")

    # === Evaluation of the best model (outside the strategy: every worker alone) ===
    best_path = out_dir / "best.keras"
    if not best_path.is_file():  # e.g. resumed after the last epoch, or a NaN monitor
        save_keras_model(model, best_path, metadata)
    best = load_keras_model(best_path)
    eval_set = val_set if len(val_set) else train_set
    error = None
    try:
        with pipeline_scope(strict=config.strict):
            metrics = dict(task.evaluate(best, eval_set, out_dir, batch_size=config.batch_size))
    except Exception as exc:
        error = sample_error(exc)
        if error is None:
            raise
    if error is not None:
        _release_iterators()
        raise error
    metrics["best_epoch"] = state.best_epoch
    if state.best is not None:
        metrics[f"best_{monitor}"] = float(state.best)
    if info.is_chief:
        _merge_metrics_json(run_dir / "metrics.json", metrics)
    else:
        shutil.rmtree(out_dir, ignore_errors=True)
    return TrainResult(run_dir, metrics, history, state, policy, info.kind, info.replicas)


def backbone_input_shape(spec) -> tuple[int, ...]:
    """The backbone's input for a task's input spec: the image itself (HWC), one frame of
    a clip (a 2D backbone runs per frame), or the whole volume (DHWC, 3D backbones)."""
    return (*spec.spatial, spec.channels) if spec.layout == "THWC" else tuple(spec.shape)


def evaluate_model(task_name: str, model_path: str | Path, data: str | Path, *,
                   format: str | None = None, batch_size: int = 32,
                   out_dir: str | Path | None = None, strict: bool = False,
                   overrides: dict | None = None) -> dict:
    """Score a trained ``.keras`` model on a whole dataset with its task's ``evaluate``.

    The task is rebuilt from the model (:func:`~visionsuite.plugins.task_for_model`: its
    saved config plus ``overrides``); the dataset is read against the model's classes.
    ``out_dir`` (if given) receives the task's report ``evaluation.json``, its plots and the
    flat scores in ``metrics.json``.
    """
    from visionsuite.plugins import task_for_model

    model_path = Path(model_path)
    metadata = read_keras_metadata(model_path)
    task = task_for_model(metadata, task_name, overrides, source=str(model_path))
    model = load_keras_model(model_path)
    from visionsuite.data.pipeline import pipeline_scope

    dataset = task.load_dataset(data, split="test", format=format, strict=strict,
                                classes=list(metadata.classes))
    if not len(dataset):
        raise DataError(f"{data}: no usable samples to evaluate")
    if dataset.classes and list(dataset.classes) != list(metadata.classes):
        log.warning("%s: classes %s differ from the model's %s", data, dataset.classes,
                    list(metadata.classes))
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    with pipeline_scope(strict=strict):  # --strict: an unreadable sample stops it, named
        metrics = dict(task.evaluate(model, dataset, out, batch_size=batch_size))
    if out is not None:
        _merge_metrics_json(out / "metrics.json", metrics)
    return metrics
