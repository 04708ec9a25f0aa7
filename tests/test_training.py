"""The training engine with the out-of-tree toy task: run directory, transfer learning,
early stopping and the plateau schedule, precision policies, optimizers, atomic checkpoints."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from visionsuite.config import TrainConfig, build_config, load_yaml
from visionsuite.errors import ModelError, UsageError


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _probe(**hooks):
    import keras

    class Probe(keras.callbacks.Callback):
        pass

    for name, fn in hooks.items():
        setattr(Probe, name, fn)
    return Probe()


def test_train_writes_run_directory_and_evaluates(toy_installed, tiny_config, toy_data, tmp_path):
    from visionsuite.models import read_keras_metadata
    from visionsuite.training import evaluate_model, train

    task = toy_installed.ToyTask()
    config = tiny_config(epochs=2, label_smoothing=0.1)
    result = train(task, config)

    run_dir = result.run_dir
    assert run_dir == tmp_path / "runs" / "toy" / "run"
    for name in ("config.yaml", "run.yaml", "metrics.csv", "curves.png", "best.keras",
                 "last.keras", "checkpoint.npz", "metrics.json"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "logs").rglob("events.out.tfevents.*"))
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [r["epoch"] for r in _rows(run_dir)] == ["0", "1"]
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no temp files left

    # The resolved config reloads as a TrainConfig holding the task's full config.
    saved = build_config(TrainConfig, load_yaml(run_dir / "config.yaml"))
    assert (saved.epochs, saved.label_smoothing, saved.backbone_args) == (2, 0.1, {"widths": [4, 8]})
    assert saved.task == {"image_size": 32, "label_smoothing": 0.1, "dropout": 0.0}
    assert build_config(type(task).Config, saved.task) == type(task).Config(label_smoothing=0.1)

    meta = read_keras_metadata(run_dir / "best.keras")
    assert (meta.task, meta.classes, meta.input_size, meta.backbone) == (
        "toy", ("square", "disc"), 32, "simple_cnn")
    assert meta.task_config["label_smoothing"] == 0.1

    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    assert result.metrics["samples"] == 5  # 10 % of 48 held out
    report = json.loads((run_dir / "metrics.json").read_text())
    assert report["samples"] == 5 and report["best_epoch"] == result.metrics["best_epoch"]
    task_report = json.loads((run_dir / "evaluation.json").read_text())  # the task's own
    assert set(task_report["per_class"]) == {"square", "disc"}
    assert result.precision == "float32" and result.strategy == "default"

    out = tmp_path / "eval"
    metrics = evaluate_model("toy", run_dir / "best.keras", toy_data, batch_size=16, out_dir=out)
    assert metrics["samples"] == 48
    report = json.loads((out / "metrics.json").read_text())
    assert {k: report[k] for k in metrics} == metrics
    assert set(json.loads((out / "evaluation.json").read_text())["per_class"]) == {"square", "disc"}
    with pytest.raises(ModelError, match="is a 'toy' model"):
        evaluate_model("classification", run_dir / "best.keras", toy_data)

    # Never overwrite a finished run by accident.
    with pytest.raises(UsageError, match="already exists"):
        train(task, config)


@pytest.mark.parametrize("finetune_batchnorm", [False, True])
def test_freeze_then_finetune(toy_installed, tiny_config, finetune_batchnorm):
    import keras

    from visionsuite.training import train

    seen = []

    def on_epoch_begin(self, epoch, logs=None):
        backbone = self.model.get_layer("simple_cnn")
        bn = backbone.get_layer("stage1_bn1")
        seen.append(dict(epoch=epoch, backbone_trainable=backbone.trainable,
                         bn_trainable=bn.trainable,
                         trainable=len(self.model.trainable_weights),
                         lr=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                         kernel=backbone.get_layer("stage1_conv1").kernel.numpy().copy(),
                         moving_mean=bn.moving_mean.numpy().copy(),
                         head=self.model.get_layer("logits").kernel.numpy().copy()))

    config = tiny_config(epochs=3, freeze_epochs=1, schedule="constant", learning_rate=0.01,
                         finetune_lr_factor=0.1, finetune_batchnorm=finetune_batchnorm)
    result = train(toy_installed.ToyTask(), config, callbacks=[_probe(on_epoch_begin=on_epoch_begin)])

    frozen, finetune, finetune2 = seen
    assert not frozen["backbone_trainable"] and not frozen["bn_trainable"]
    assert frozen["trainable"] == 2  # only the head's kernel and bias
    assert finetune["backbone_trainable"] and finetune["trainable"] > 2
    assert frozen["lr"] == pytest.approx(0.01) and finetune["lr"] == pytest.approx(0.001)
    # The frozen epoch left the backbone (kernels and BatchNorm statistics) untouched...
    np.testing.assert_array_equal(frozen["kernel"], finetune["kernel"])
    np.testing.assert_array_equal(frozen["moving_mean"], finetune["moving_mean"])
    assert not np.array_equal(frozen["head"], finetune["head"])
    # ... and fine-tuning moves it; BatchNorm statistics only when asked to.
    assert not np.array_equal(finetune["kernel"], finetune2["kernel"])
    assert finetune["bn_trainable"] == finetune_batchnorm
    assert np.array_equal(finetune["moving_mean"], finetune2["moving_mean"]) != finetune_batchnorm
    assert result.state.phase == "finetune" and result.state.epoch == 3


def test_early_stopping_and_plateau_schedule(toy_installed, tiny_config):
    from visionsuite.training import train

    # A learning rate too small to change any prediction: val_accuracy never improves after
    # epoch 1, so the plateau schedule halves the rate each epoch and patience 2 stops at 3.
    config = tiny_config(epochs=8, schedule="plateau", plateau_patience=1, lr_decay=0.5,
                         learning_rate=1e-12, optimizer="sgd", early_stopping=2,
                         monitor="val_accuracy", backbone_args={"widths": (4, 8), "batch_norm": False})
    result = train(toy_installed.ToyTask(), config)

    rows = _rows(result.run_dir)
    assert result.state.stopped_early and len(result.history) == 3 and len(rows) == 3
    lrs = [float(r["learning_rate"]) for r in rows]
    assert lrs == pytest.approx([1e-12, 0.5e-12, 0.25e-12])
    assert result.metrics["best_epoch"] == 1


def test_mixed_bfloat16_trains_with_float32_variables_and_outputs(toy_installed, tiny_config):
    import keras

    from visionsuite.models import load_keras_model
    from visionsuite.training import train

    seen = {}

    def on_train_end(self, logs=None):
        conv = self.model.get_layer("simple_cnn").get_layer("stage1_conv1")
        seen.update(policy=self.model.get_layer("simple_cnn").dtype_policy.name,
                    compute=conv.compute_dtype, kernel=conv.kernel.dtype,
                    out=self.model(np.zeros((1, 32, 32, 3), np.float32)).dtype)

    assert keras.config.dtype_policy().name == "float32"
    result = train(toy_installed.ToyTask(), tiny_config(precision="mixed_bfloat16"),
                   callbacks=[_probe(on_train_end=on_train_end)])
    assert result.precision == "mixed_bfloat16"
    assert seen["policy"] == "mixed_bfloat16" and seen["compute"] == "bfloat16"
    assert seen["kernel"] == "float32" and "float32" in str(seen["out"])
    assert np.isfinite(result.history[0]["loss"])
    assert keras.config.dtype_policy().name == "float32"  # the run's policy did not leak
    best = load_keras_model(result.run_dir / "best.keras")
    assert "float32" in str(best(np.zeros((1, 32, 32, 3), np.float32)).dtype)


def test_mixed_float16_compile_adds_loss_scaling():
    import keras

    from visionsuite.training.optim import make_optimizer
    from visionsuite.training.precision import precision_scope, resolve_precision

    assert resolve_precision("auto", "cpu") == "float32"
    assert resolve_precision("auto", "gpu") == "mixed_float16"
    assert resolve_precision("auto", "tpu") == "mixed_bfloat16"
    assert resolve_precision("mixed_bfloat16", "cpu") == "mixed_bfloat16"
    with pytest.raises(UsageError, match="precision"):
        resolve_precision("float64", "cpu")

    with precision_scope("mixed_float16"):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2),
                                  keras.layers.Activation("softmax", dtype="float32")])
        model.compile(optimizer=make_optimizer(TrainConfig(), 1e-3, 10, 1), loss="mse")
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.config.dtype_policy().name == "float32"


def test_optimizers_and_schedules():
    import keras

    from visionsuite.training.optim import make_optimizer, make_schedule

    sgd = make_optimizer(TrainConfig(optimizer="sgd", momentum=0.8, nesterov=True), 0.1, 10, 2)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == 0.8
    assert sgd.weight_decay == pytest.approx(1e-4)
    adamw = make_optimizer(TrainConfig(optimizer="adamw", weight_decay=0.05), 0.1, 10, 2)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == pytest.approx(0.05)
    assert type(make_optimizer(TrainConfig(optimizer="adam"), 0.1, 10, 2)) is keras.optimizers.Adam

    cosine = make_schedule(TrainConfig(schedule="cosine", warmup_epochs=1), 0.1, 10, 5)
    lr = [float(cosine(s)) for s in (0, 5, 10, 30, 50)]
    assert lr[0] < lr[1] < lr[2] == pytest.approx(0.1) and lr[2] > lr[3] > lr[4]
    assert lr[4] == pytest.approx(0.0, abs=1e-6)
    step = make_schedule(TrainConfig(schedule="step", step_epochs=2, lr_decay=0.5), 0.1, 10, 6)
    assert [float(step(s)) for s in (0, 19, 21, 41)] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert make_schedule(TrainConfig(schedule="constant"), 0.1, 10, 6) == 0.1
    with pytest.raises(UsageError, match="learning_rate"):
        make_optimizer(TrainConfig(), 0.0, 10, 1)


def test_holdout_split_is_deterministic_and_options_reach_the_task(toy_installed, toy_data):
    from visionsuite.task import Task
    from visionsuite.training.trainer import split_holdout, with_shared_options

    task = toy_installed.ToyTask()
    data = task.load_dataset(toy_data)
    a_train, a_val = split_holdout(data, 0.25, seed=1)
    b_train, b_val = split_holdout(data, 0.25, seed=1)
    _, c_val = split_holdout(data, 0.25, seed=2)
    assert len(a_val) == 12 and len(a_train) == 36
    assert [s.source for s in a_val.samples] == [s.source for s in b_val.samples]
    assert [s.source for s in a_val.samples] != [s.source for s in c_val.samples]
    assert not {s.source for s in a_val.samples} & {s.source for s in a_train.samples}

    task2 = with_shared_options(task, TrainConfig(label_smoothing=0.2, dropout=0.3))
    assert (task2.config.label_smoothing, task2.config.dropout) == (0.2, 0.3)
    assert with_shared_options(task, TrainConfig()).config == task.config

    class Bare(type(task)):
        Config = Task.Config

    with pytest.raises(UsageError, match="has no label_smoothing option"):
        with_shared_options(Bare(), TrainConfig(label_smoothing=0.1))


def test_bad_run_requests(toy_installed, tiny_config):
    from visionsuite.errors import DataError
    from visionsuite.training import train

    task = toy_installed.ToyTask()
    with pytest.raises(UsageError, match="--resume needs the --name"):
        train(task, tiny_config(resume=True, name=""))
    with pytest.raises(UsageError, match="freeze_epochs"):
        train(task, tiny_config(epochs=2, freeze_epochs=2))
    with pytest.raises(DataError, match="not found"):
        train(task, tiny_config(data="/nonexistent/toy.npz"))


def test_checkpoint_is_atomic_and_round_trips(tmp_path):
    import keras

    from visionsuite.training.checkpoint import (RunState, read_checkpoint, restore_model,
                                                 restore_optimizer, write_checkpoint)

    def make():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
        return model

    model = make()
    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    model.fit(x, y, epochs=3, verbose=0)
    path = tmp_path / "checkpoint.npz"
    write_checkpoint(path, model, model.optimizer, RunState(epoch=3, best=0.5))
    good = path.read_bytes()

    # A write that fails (here: the state cannot be encoded) leaves the old file and no temp file.
    with pytest.raises(TypeError):
        write_checkpoint(path, model, model.optimizer, RunState(epoch=4, best=object()))
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]

    ckpt = read_checkpoint(path)
    fresh = make()
    restore_model(ckpt, fresh, str(path))
    restore_optimizer(ckpt, fresh.optimizer, fresh.trainable_variables, str(path))
    assert ckpt.state.epoch == 3 and int(fresh.optimizer.iterations) == 3
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(fresh.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError, match="unreadable checkpoint") as err:
        read_checkpoint(truncated)
    assert "\n" not in str(err.value)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5)])
    with pytest.raises(ModelError, match="does not match"):
        restore_model(ckpt, other, str(path))
    os.remove(truncated)


WRITE_FOREVER = textwrap.dedent("""
    import sys
    import keras
    from visionsuite.training.checkpoint import RunState, write_checkpoint

    model = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(2048)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    epoch = 0
    while True:
        epoch += 1
        write_checkpoint(sys.argv[1], model, model.optimizer, RunState(epoch=epoch))
        print(epoch, flush=True)
""")


def test_checkpoint_survives_a_kill_during_writing(tmp_path):
    from visionsuite.training.checkpoint import read_checkpoint

    path = tmp_path / "checkpoint.npz"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-c", WRITE_FOREVER, str(path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for _ in range(5):  # let it write a few 24 MB checkpoints, then kill it mid-stream
            assert proc.stdout.readline().strip(), "the writer died"
        time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    ckpt = read_checkpoint(path)  # complete and readable, whatever moment the kill hit
    assert ckpt.state.epoch >= 5
    assert ckpt.model_weights[0].shape == (1024, 2048)


@pytest.mark.slow
def test_engine_learns_the_toy_task(toy_installed, tmp_path):
    from visionsuite.training import train

    data = toy_installed.write_toy_dataset(tmp_path / "toy400.npz", n=400)
    config = TrainConfig(data=str(data), epochs=15, batch_size=16, val_fraction=0.2,
                         backbone_args={"widths": (8, 16, 32)}, task={"image_size": 32},
                         learning_rate=1e-2, runs_dir=str(tmp_path / "runs"), name="learn",
                         progress=False)
    result = train(toy_installed.ToyTask(), config)
    assert result.metrics["samples"] == 80
    assert result.metrics["accuracy"] >= 0.95  # measured: 1.00 (26 s on 2 cores)
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 10
