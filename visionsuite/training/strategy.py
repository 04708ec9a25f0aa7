"""Distribution strategy: picked from the hardware (or forced) at the start of a run.

``auto``: TPUStrategy when a TPU is present, MultiWorkerMirroredStrategy when ``TF_CONFIG``
names a cluster, MirroredStrategy for more than one GPU, the default strategy otherwise.
MultiWorkerMirroredStrategy must be created before TensorFlow initialises its devices, so
:func:`make_strategy` is the first thing a run does.
"""

from __future__ import annotations

import dataclasses
import json
import os

from visionsuite.errors import UsageError

KINDS = ("default", "mirrored", "multi_worker", "tpu")


@dataclasses.dataclass(frozen=True)
class StrategyInfo:
    """A created strategy and what it runs on."""

    strategy: object  # tf.distribute.Strategy
    kind: str  # one of KINDS
    device: str  # "cpu" | "gpu" | "tpu": what the precision policy is chosen for
    replicas: int
    is_chief: bool  # the worker that writes the run directory


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        cfg = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"TF_CONFIG is not valid JSON ({exc}). Received: TF_CONFIG={raw[:80]!r}") from exc
    if not isinstance(cfg, dict):
        raise UsageError(f"TF_CONFIG must be a JSON object. Received: TF_CONFIG={raw[:80]!r}")
    return cfg


def _has_tpu() -> bool:
    import tensorflow as tf

    return bool(os.environ.get("TPU_NAME")) or bool(tf.config.list_physical_devices("TPU"))


def auto_kind() -> str:
    """The strategy ``auto`` resolves to on this machine."""
    import tensorflow as tf

    if _has_tpu():
        return "tpu"
    if _tf_config().get("cluster"):
        return "multi_worker"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def _multi_worker_strategy_class():
    import tensorflow as tf

    class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """MultiWorkerMirroredStrategy whose ``reduce`` also takes what Keras 3 ``fit``
        passes it (keras-team/keras#20585): a nested ``(x, y)`` batch when building the
        model, and per-replica scalars (loss, metrics) with ``axis=0``. Nested values are
        reduced leaf by leaf; a scalar has no axis to reduce over, so it is averaged over
        the replicas. Everything else is MultiWorkerMirroredStrategy's own behaviour."""

        def reduce(self, reduce_op, value, axis):
            def leaf(v):
                rank = getattr(self.experimental_local_results(v)[0].shape, "rank", None)
                return super(KerasMultiWorkerMirroredStrategy, self).reduce(
                    reduce_op, v, axis=None if rank == 0 else axis)

            return tf.nest.map_structure(leaf, value)

    return KerasMultiWorkerMirroredStrategy


def make_strategy(kind: str = "auto") -> StrategyInfo:
    """Create the strategy ``kind`` (``"auto"`` or one of :data:`KINDS`)."""
    import tensorflow as tf

    if kind == "auto":
        kind = auto_kind()
    if kind not in KINDS:
        raise UsageError(f"strategy must be auto or one of {', '.join(KINDS)}. "
                         f"Received: strategy={kind!r}")
    is_chief = True
    if kind == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
                tpu=os.environ.get("TPU_NAME", "local"))
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"strategy=tpu but no TPU could be initialised ({first}). "
                             f"Received: strategy={kind!r}") from exc
        strategy = tf.distribute.TPUStrategy(resolver)
        device = "tpu"
    elif kind == "multi_worker":
        cfg = _tf_config()
        if not cfg.get("cluster"):
            raise UsageError("strategy=multi_worker needs TF_CONFIG with a cluster and a task. "
                             "Received: TF_CONFIG unset")
        try:
            strategy = _multi_worker_strategy_class()()
        except RuntimeError as exc:
            raise UsageError(f"MultiWorkerMirroredStrategy must be created before TensorFlow "
                             f"initialises its devices (start a fresh process): {exc}") from exc
        task = cfg.get("task", {})
        is_chief = task.get("type") == "chief" or (
            task.get("type") == "worker" and int(task.get("index", 0)) == 0
            and "chief" not in cfg.get("cluster", {}))
        device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    elif kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        device = "gpu" if gpus else "cpu"
    else:
        strategy = tf.distribute.get_strategy()
        device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    return StrategyInfo(strategy, kind, device, int(strategy.num_replicas_in_sync), is_chief)
