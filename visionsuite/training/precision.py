"""Mixed-precision policy: resolved per run and set only for the run's duration.

``auto`` picks ``float32`` on CPU (fp16/bf16 are 1.5-3x slower there), ``mixed_float16`` on
GPU and ``mixed_bfloat16`` on TPU. Under ``mixed_float16`` Keras' ``Model.compile`` wraps the
optimizer in a ``LossScaleOptimizer`` (dynamic loss scaling), so the engine adds nothing.
Variables stay float32 under both mixed policies; task heads end with a float32 layer.
"""

from __future__ import annotations

import contextlib

from visionsuite.errors import UsageError

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def resolve_precision(name: str, device: str) -> str:
    """The policy for ``name`` (``"auto"`` or one of :data:`POLICIES`) on ``device``
    (``"cpu"``, ``"gpu"`` or ``"tpu"``)."""
    if name == "auto":
        return {"gpu": "mixed_float16", "tpu": "mixed_bfloat16"}.get(device, "float32")
    if name not in POLICIES:
        raise UsageError(f"precision must be auto or one of {', '.join(POLICIES)}. "
                         f"Received: precision={name!r}")
    return name


@contextlib.contextmanager
def precision_scope(policy: str):
    """Set Keras' global dtype policy to ``policy`` inside the block and restore the previous
    one afterwards, so that no setting leaks from one run into the next."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield keras.config.dtype_policy()
    finally:
        keras.config.set_dtype_policy(previous)
