"""Pieces of the detector's training recipe that plug into the engine's ``model.fit``.

* :class:`ModelEMA` -- exponential moving average of *all* the model's float weights
  (trainable ones and BatchNorm statistics) with YOLO's ramp ``d = decay * (1 -
  exp(-updates / tau))``; the averaged weights are swapped in for validation and for
  whatever saves the model at the end of the epoch, and stay in the model when training ends.
* :class:`WarmupLinearDecay` -- the YOLO learning-rate curve: linear warm-up from 0, then
  linear decay to ``final_factor * learning_rate``; a serialisable Keras schedule. The
  engine's ``schedule="cosine"`` with ``warmup_epochs`` is the other choice (already in
  :func:`visionsuite.training.optim.make_schedule`); :func:`warmup_steps` gives YOLO's
  warm-up length, ``max(warmup_epochs * steps_per_epoch, 100)``.
* :class:`CloseMosaic` -- turns mosaic augmentation off for the last epochs by assigning 0 to
  a ``tf.Variable`` probability that the ``tf.data`` pipeline reads (a variable captured by a
  ``Dataset.map`` function is read at every call, so the change reaches the running pipeline
  within the few batches already prefetched).

YOLO's separate warm-up of the biases (their learning rate starting at 0.1 and falling to the
base rate) is not reproduced: a Keras optimizer has one learning rate for every variable. The
classification biases start at the prior ``log(5 / C / cells)`` and the box biases at 1 (see
:func:`~visionsuite_tasks.detection.models.build_detector`), which is what the bias warm-up
mostly protects.

Public API::

    ModelEMA(decay=0.9999, tau=2000.0)                    # keras.callbacks.Callback
    WarmupLinearDecay(learning_rate, total_steps, warmup_steps=0, final_factor=0.01)
    warmup_steps(steps_per_epoch, warmup_epochs=3.0, minimum=100) -> int
    CloseMosaic(probability, epochs, close_epochs=10)      # keras.callbacks.Callback
"""

from __future__ import annotations

import math

import keras

from visionsuite.errors import UsageError
from visionsuite_tasks.detection.models import PACKAGE


class ModelEMA(keras.callbacks.Callback):
    """Exponential moving average of the model's weights, swapped in for validation/saving.

    After every training batch, each float weight ``w`` of the model (trainable weights and
    BatchNorm moving statistics) updates its average ``e <- d * e + (1 - d) * w`` with ``d =
    decay * (1 - exp(-updates / tau))``, so the average follows the weights closely at the
    start and smooths them more and more.

    Swapping: after the epoch's last batch (when ``fit`` knows the number of steps), or else
    when validation starts, the averaged weights are put into the model; they stay there
    for the validation and for the callbacks' ``on_epoch_end`` (the engine's best-model and
    checkpoint writer, which must come *before* this callback in the list) and are swapped
    out again by this callback's own ``on_epoch_end``.
    When training ends the averaged weights stay in the model, so ``last.keras`` is the
    average. A second ``fit`` (e.g. the fine-tuning phase) continues the same average.

    Args:
        decay: the final averaging factor (YOLO: 0.9999).
        tau: ramp length in updates (YOLO: 2000); ``d`` reaches 63 % of ``decay`` after
            ``tau`` updates.

    Example:
        >>> ema = ModelEMA()
        >>> model.fit(train_ds, validation_data=val_ds, epochs=10, callbacks=[ema])
        >>> ema.updates
    """

    def __init__(self, decay: float = 0.9999, tau: float = 2000.0):
        super().__init__()
        if not 0.0 < float(decay) < 1.0:
            raise UsageError(f"decay must be in (0, 1). Received: decay={decay!r}")
        if float(tau) <= 0:
            raise UsageError(f"tau must be > 0. Received: tau={tau!r}")
        self.decay = float(decay)
        self.tau = float(tau)
        self.updates = 0
        self.swapped = False
        self._weights = None
        self._average = None
        self._backup = None
        self._update_fn = None

    def current_decay(self) -> float:
        """``d`` for the next update."""
        return self.decay * (1.0 - math.exp(-(self.updates + 1) / self.tau))

    def _float_weights(self):
        return [w for w in self.model.weights if "float" in str(w.dtype)]

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        if self.swapped:  # averaged weights left in by the previous fit
            self.swap_out()
        weights = self._float_weights()
        if self._weights is None or [w.path for w in weights] != [w.path for w in self._weights]:
            self._weights = weights
            self._average = [tf.Variable(w.value, trainable=False) for w in weights]
            self._backup = [tf.Variable(w.value, trainable=False) for w in weights]
            self.updates = 0

            @tf.function
            def update(d):
                for avg, w in zip(self._average, self._weights):
                    avg.assign(d * avg + (1.0 - d) * tf.cast(w.value, avg.dtype))

            self._update_fn = update

    def on_train_batch_end(self, batch, logs=None):
        import tensorflow as tf

        if self.swapped:
            return
        self._update_fn(tf.constant(self.current_decay(), tf.float32))
        self.updates += 1
        steps = (self.params or {}).get("steps")
        if steps and batch + 1 >= steps:  # the epoch's last batch
            self.swap_in()

    def on_test_begin(self, logs=None):
        if self._average is not None and not self.swapped:
            self.swap_in()

    def on_epoch_end(self, epoch, logs=None):
        if self.swapped:
            self.swap_out()

    def on_train_end(self, logs=None):
        if self._average is not None and not self.swapped:
            self.swap_in()

    def swap_in(self) -> None:
        """Put the averaged weights into the model (the training weights are kept)."""
        for backup, avg, w in zip(self._backup, self._average, self._weights):
            backup.assign(w.value)
            w.assign(avg)
        self.swapped = True

    def swap_out(self) -> None:
        """Put the training weights back."""
        for backup, w in zip(self._backup, self._weights):
            w.assign(backup)
        self.swapped = False

    def averaged_weights(self) -> list:
        """The averaged weights as numpy arrays, in the order of the model's float weights."""
        return [keras.ops.convert_to_numpy(v) for v in self._average or []]


def warmup_steps(steps_per_epoch: int, warmup_epochs: float = 3.0, minimum: int = 100) -> int:
    """YOLO's warm-up length: ``max(round(warmup_epochs * steps_per_epoch), minimum)``
    (0 when ``warmup_epochs`` is 0)."""
    if warmup_epochs <= 0:
        return 0
    return max(int(round(warmup_epochs * max(1, int(steps_per_epoch)))), int(minimum))


@keras.saving.register_keras_serializable(package=PACKAGE)
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``learning_rate`` over ``warmup_steps``, then linear decay
    to ``final_factor * learning_rate`` at ``total_steps`` (constant after).

    Args:
        learning_rate: the peak rate.
        total_steps: optimizer steps of the whole run.
        warmup_steps: steps of the warm-up (see :func:`warmup_steps`).
        final_factor: the last rate as a fraction of ``learning_rate`` (YOLO's ``lrf``).

    Example:
        >>> lr = WarmupLinearDecay(2e-3, total_steps=100 * 50, warmup_steps=warmup_steps(50))
        >>> model.compile(keras.optimizers.AdamW(lr))
    """

    def __init__(self, learning_rate, total_steps, warmup_steps=0, final_factor=0.01):
        if float(learning_rate) <= 0:
            raise UsageError(f"learning_rate must be > 0. Received: learning_rate={learning_rate!r}")
        if int(total_steps) < 1 or not 0 <= int(warmup_steps) <= int(total_steps):
            raise UsageError(f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps. "
                             f"Received: total_steps={total_steps!r}, warmup_steps={warmup_steps!r}")
        if not 0.0 <= float(final_factor) <= 1.0:
            raise UsageError(f"final_factor must be in [0, 1]. Received: final_factor={final_factor!r}")
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.final_factor = float(final_factor)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        lr = self.learning_rate
        warm = float(max(self.warmup_steps, 1))
        rising = lr * ops.minimum(step / warm, 1.0)
        span = float(max(self.total_steps - self.warmup_steps, 1))
        frac = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        falling = lr * (1.0 - frac * (1.0 - self.final_factor))
        if self.warmup_steps == 0:
            return falling
        return ops.where(step < self.warmup_steps, rising, falling)

    def get_config(self):
        return dict(learning_rate=self.learning_rate, total_steps=self.total_steps,
                    warmup_steps=self.warmup_steps, final_factor=self.final_factor)


class CloseMosaic(keras.callbacks.Callback):
    """Switch mosaic augmentation off for the last ``close_epochs`` epochs.

    The ``tf.data`` pipeline applies mosaic with a probability read from ``probability``
    (a scalar float ``tf.Variable`` it captured); at the start of epoch ``epochs -
    close_epochs`` (0-based) this callback assigns 0 to it, and it restores the original
    value when training starts again before that epoch (e.g. on resume).

    Args:
        probability: the ``tf.Variable`` the pipeline reads.
        epochs: total epochs of the run.
        close_epochs: final epochs without mosaic (YOLO: 10).

    Example:
        >>> mosaic_p = tf.Variable(1.0, trainable=False)
        >>> ds = ds.map(lambda x, y: mosaic_or_not(x, y, mosaic_p))
        >>> model.fit(ds, epochs=50, callbacks=[CloseMosaic(mosaic_p, epochs=50)])
    """

    def __init__(self, probability, epochs: int, close_epochs: int = 10):
        super().__init__()
        if not hasattr(probability, "assign"):
            raise UsageError(f"probability must be a tf.Variable the data pipeline reads. "
                             f"Received: {type(probability).__name__}")
        if int(close_epochs) < 0 or int(epochs) < 1:
            raise UsageError(f"need epochs >= 1 and close_epochs >= 0. Received: "
                             f"epochs={epochs!r}, close_epochs={close_epochs!r}")
        self.probability = probability
        self.epochs = int(epochs)
        self.close_epochs = int(close_epochs)
        self.initial = float(keras.ops.convert_to_numpy(probability))

    @property
    def close_at(self) -> int:
        """The first 0-based epoch without mosaic."""
        return max(0, self.epochs - self.close_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        value = 0.0 if self.close_epochs and epoch >= self.close_at else self.initial
        self.probability.assign(value)
