"""Training recipe pieces: EMA of weights (against a numpy recursion, swapped in for
validation and saving), the warm-up + linear-decay schedule, closing mosaic."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from visionsuite.errors import UsageError
from visionsuite_tasks.detection.training import (CloseMosaic, ModelEMA, WarmupLinearDecay,
                                                  warmup_steps)


def _float_weights(model):
    return [np.array(w) for w in model.weights if "float" in str(w.dtype)]


class Recorder(keras.callbacks.Callback):
    """Stands for the engine's checkpoint writer: it runs before the EMA callback."""

    def __init__(self):
        super().__init__()
        self.after_batch, self.at_validation, self.at_epoch_end = [], [], []
        self.before_first_batch = []

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.before_first_batch.append(_float_weights(self.model))

    def on_train_batch_end(self, batch, logs=None):
        self.after_batch.append(_float_weights(self.model))

    def on_test_begin(self, logs=None):
        self.at_validation.append(_float_weights(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end.append(_float_weights(self.model))


def _tiny_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
                              keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), loss="mse")
    return model


def _expected_average(snapshots, decay, tau, start=0):
    avg = [w.copy() for w in snapshots[0]] if start == 0 else None
    for i, weights in enumerate(snapshots):
        d = decay * (1 - math.exp(-(start + i + 1) / tau))
        avg = [d * a + (1 - d) * w for a, w in zip(avg, weights)]
    return avg


def test_ema_follows_the_recursion_and_is_swapped_in_for_validation_and_saving():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)).astype(np.float32), rng.normal(size=(32, 1)).astype(np.float32)
    model = _tiny_model()
    initial = _float_weights(model)
    recorder, ema = Recorder(), ModelEMA(decay=0.9, tau=3.0)
    model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0,
              callbacks=[recorder, ema])
    assert ema.updates == 8
    # The numpy recursion from the initial weights over the weights after each batch.
    avg = [w.copy() for w in initial]
    per_epoch = []
    for i, weights in enumerate(recorder.after_batch):
        d = 0.9 * (1 - math.exp(-(i + 1) / 3.0))
        avg = [d * a + (1 - d) * w for a, w in zip(avg, weights)]
        if (i + 1) % 4 == 0:
            per_epoch.append([a.copy() for a in avg])
    for got, want in zip(ema.averaged_weights(), avg):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # BatchNorm moving statistics are averaged too (they are float weights of the model).
    assert len(ema.averaged_weights()) == len(initial) == 8  # 2 + 4 (BatchNorm) + 2
    for epoch in range(2):
        for got, want in zip(recorder.at_validation[epoch], per_epoch[epoch]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        for got, want in zip(recorder.at_epoch_end[epoch], per_epoch[epoch]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The second epoch starts from the raw weights of the first, not from the average.
    assert not np.allclose(recorder.after_batch[3][0], per_epoch[0][0])
    for got, want in zip(recorder.before_first_batch[1], recorder.after_batch[3]):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # After training the model holds the average.
    for got, want in zip(_float_weights(model), avg):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert ema.swapped


def test_ema_without_validation_swaps_after_the_last_batch_and_continues_across_fits():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 3)).astype(np.float32), rng.normal(size=(16, 1)).astype(np.float32)
    model = _tiny_model()
    recorder, ema = Recorder(), ModelEMA(decay=0.99, tau=2.0)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[recorder, ema])
    for got, want in zip(recorder.at_epoch_end[0], ema.averaged_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    raw_last = recorder.after_batch[-1]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[recorder, ema])
    assert ema.updates == 4  # the second fit continues the same average
    # ...and trained from the raw weights, not from the average left in by the first fit.
    assert not np.allclose(raw_last[0], ema.averaged_weights()[0])
    for got, want in zip(recorder.before_first_batch[1], raw_last):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_ema_rejects_bad_arguments():
    with pytest.raises(UsageError, match="Received: decay=1.5"):
        ModelEMA(decay=1.5)
    with pytest.raises(UsageError, match="Received: tau=0"):
        ModelEMA(tau=0)


def test_warmup_linear_decay_values_and_serialisation():
    lr = WarmupLinearDecay(0.01, total_steps=1000, warmup_steps=100, final_factor=0.01)
    values = {s: float(lr(s)) for s in (0, 50, 100, 550, 1000, 2000)}
    assert values[0] == 0.0
    assert values[50] == pytest.approx(0.005)
    assert values[100] == pytest.approx(0.01)
    assert values[550] == pytest.approx(0.01 * (1 - 0.5 * 0.99))
    assert values[1000] == pytest.approx(1e-4) and values[2000] == pytest.approx(1e-4)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lr))
    assert isinstance(again, WarmupLinearDecay) and again.get_config() == lr.get_config()
    assert float(WarmupLinearDecay(0.1, 10)(0)) == pytest.approx(0.1)  # no warm-up
    opt = keras.optimizers.AdamW(lr)  # usable as an optimizer's rate
    assert float(opt.learning_rate) == 0.0
    with pytest.raises(UsageError, match="Received: total_steps=10, warmup_steps=20"):
        WarmupLinearDecay(0.1, 10, warmup_steps=20)


def test_warmup_steps_follow_yolo():
    assert warmup_steps(10) == 100  # at least 100
    assert warmup_steps(500, 3.0) == 1500
    assert warmup_steps(500, 0) == 0


def test_close_mosaic_switches_the_pipeline_probability():
    probability = tf.Variable(0.5, trainable=False)
    ds = tf.data.Dataset.range(3).map(lambda i: tf.identity(probability.read_value()))
    cb = CloseMosaic(probability, epochs=5, close_epochs=2)
    assert cb.close_at == 3
    seen = []
    for epoch in range(5):
        cb.on_epoch_begin(epoch)
        seen.append(float(next(iter(ds))))
    assert seen == [0.5, 0.5, 0.5, 0.0, 0.0]
    cb.on_epoch_begin(1)  # resumed before the closing epoch: mosaic again
    assert float(next(iter(ds))) == 0.5
    with pytest.raises(UsageError, match="tf.Variable"):
        CloseMosaic(0.5, epochs=5)
