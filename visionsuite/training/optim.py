"""Optimizers and learning-rate schedules built from a :class:`~visionsuite.config.TrainConfig`.

Schedules count optimizer steps of one training phase (the frozen-backbone phase and the
fine-tuning phase each get a fresh optimizer), so a restored ``optimizer.iterations`` puts a
resumed run back on its curve.
"""

from __future__ import annotations

from visionsuite.errors import UsageError

# Weight decay applies to kernels only: biases and normalisation scales/offsets are excluded.
NO_DECAY = ["bias", "gamma", "beta"]


def make_schedule(config, learning_rate: float, steps_per_epoch: int, epochs: int):
    """A Keras schedule (or a float for ``constant`` / ``plateau``) for ``epochs`` epochs."""
    import keras

    steps_per_epoch = max(1, int(steps_per_epoch))
    total = max(1, steps_per_epoch * max(1, epochs))
    if config.schedule == "cosine":
        warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total - 1)
        if warmup > 0:
            return keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=learning_rate / max(warmup, 1), decay_steps=total - warmup,
                warmup_target=learning_rate, warmup_steps=warmup)
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=total)
    if config.schedule == "step":
        if config.step_epochs < 1:
            raise UsageError(f"step_epochs must be >= 1. Received: step_epochs={config.step_epochs}")
        drops = range(config.step_epochs, max(epochs, config.step_epochs + 1), config.step_epochs)
        boundaries = [d * steps_per_epoch for d in drops]
        values = [learning_rate * config.lr_decay ** k for k in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    return float(learning_rate)  # constant; plateau lowers the optimizer's variable


def make_optimizer(config, learning_rate: float, steps_per_epoch: int, epochs: int):
    """SGD (momentum, Nesterov), Adam or AdamW for one training phase."""
    import keras

    if learning_rate <= 0:
        raise UsageError(f"learning_rate must be > 0. Received: learning_rate={learning_rate}")
    lr = make_schedule(config, learning_rate, steps_per_epoch, epochs)
    decay = float(config.weight_decay) or None
    if config.optimizer == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=config.momentum, nesterov=config.nesterov,
                                   weight_decay=decay)
    elif config.optimizer == "adam":
        opt = keras.optimizers.Adam(lr)
        decay = None
    elif config.optimizer == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=decay or 0.0)
    else:
        raise UsageError(f"optimizer must be sgd, adam or adamw. Received: optimizer={config.optimizer!r}")
    if decay:
        opt.exclude_from_weight_decay(var_names=NO_DECAY)
    return opt
