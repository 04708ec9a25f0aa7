"""Grad-CAM and Grad-CAM++ explanations of visionsuite models.

The feature map explained is one of the backbone's *declared* levels (``P2``..``P5`` from
:mod:`visionsuite.backbones.registry`, found from the model's metadata: backbone name and
architecture arguments), taken where the task model calls its backbone -- never a layer found
by name. The default level is the deepest (largest stride), the one the heads read.

The score explained is the class's pre-activation output: when the model ends in a
``Softmax`` layer or a softmax / sigmoid ``Activation`` layer, its input (logits) is used, so confident predictions do not
saturate the gradients. For classification (outputs ``(N, C)``) the score is the class logit;
for segmentation (outputs ``(N, H, W, C)``) it is the class logit summed over the pixels the
model assigns to that class (the whole image when it assigns none).

* Grad-CAM (Selvaraju et al. 2017): channel weights = spatial mean of the gradients;
  map = ReLU(sum_k w_k A_k).
* Grad-CAM++ (Chattopadhay et al. 2018): channel weights = sum_ij alpha_ij ReLU(g_ij) with
  alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), the closed form for an exponential score.

Example:
    >>> explainer = Explainer(load_keras_model("best.keras"), read_keras_metadata("best.keras"))
    >>> maps = explainer.explain(batch, class_index=3)      # {"gradcam": (N, h, w), ...}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionsuite.errors import ModelError, UsageError

METHODS = ("gradcam", "gradcam++")


def backbone_levels(metadata) -> tuple:
    """The declared feature levels of the model's backbone (from its metadata)."""
    from visionsuite.backbones.registry import get_backbone_entry, resolve_arch

    if not metadata.backbone:
        raise ModelError("explanations need the model's backbone in its metadata. "
                         "Received: backbone=None")
    entry = get_backbone_entry(metadata.backbone)
    arch = dict(metadata.extra.get("backbone_args") or {})
    known = set(entry.arch_defaults)
    return tuple(entry.levels(**resolve_arch(entry, {k: v for k, v in arch.items()
                                                     if k in known})))


def _level_tensors(model, level_names: set[str]) -> dict:
    """``{level: tensor}`` of the task model's graph where it calls its backbone: the nested
    model whose dict outputs hold the declared levels."""
    import keras

    for layer in model.layers:
        out = getattr(layer, "output", None) if isinstance(layer, keras.Model) else None
        if isinstance(out, dict) and level_names <= set(out):
            node = layer._inbound_nodes[0]
            return keras.tree.pack_sequence_as(out, list(node.outputs))
    raise ModelError(f"the model has no backbone sub-model with the declared levels "
                     f"{sorted(level_names)}. Received: layers="
                     f"{[layer.name for layer in model.layers][:8]}")


def _score_tensor(model):
    """The model's output before a final softmax/sigmoid ``Activation`` (else the output)."""
    import keras

    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax) or (
            isinstance(last, keras.layers.Activation)
            and getattr(last.activation, "__name__", "") in ("softmax", "sigmoid")):
        return last._inbound_nodes[0].input_tensors[0]
    if len(model.outputs) != 1:
        raise ModelError(f"explanations need a one-output model. Received: "
                         f"{len(model.outputs)} outputs")
    return model.outputs[0]


class Explainer:
    """Grad-CAM / Grad-CAM++ for a task model.

    Args:
        model: the loaded Keras task model.
        metadata: its :class:`~visionsuite.models.ModelMetadata` (backbone, classes).
        level: the backbone level to explain (default: the deepest declared level).

    Example:
        >>> explainer = Explainer(model, metadata, level="P4")
        >>> maps = explainer.explain(batch, class_index=0, methods=("gradcam",))
    """

    def __init__(self, model, metadata, level: str | None = None):
        import keras
        import tensorflow as tf

        levels = backbone_levels(metadata)
        names = [lv.name for lv in levels]
        if level is None:
            level = max(levels, key=lambda lv: lv.stride).name
        if level not in names:
            raise UsageError(f"backbone {metadata.backbone!r} declares levels {names}. "
                             f"Received: level={level!r}")
        self.level = level
        self.stride = next(lv.stride for lv in levels if lv.name == level)
        self.metadata = metadata
        features = _level_tensors(model, set(names))[level]
        self._model = keras.Model(model.inputs, [features, _score_tensor(model),
                                                 model.outputs[0]])
        self._tf = tf

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """The model's own outputs (probabilities) for ``batch``."""
        return np.asarray(self._model(batch, training=False)[2])

    def explain(self, batch: np.ndarray, class_index: int,
                methods: Sequence[str] = METHODS) -> dict[str, np.ndarray]:
        """Maps in [0, 1] at the level's resolution, ``{method: (N, h, w)}``."""
        tf = self._tf
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise UsageError(f"method must be one of {', '.join(METHODS)}. Received: {bad[0]!r}")
        n_classes = len(self.metadata.classes)
        if not 0 <= class_index < n_classes:
            raise UsageError(f"class index must be in [0, {n_classes}). "
                             f"Received: {class_index}")
        x = tf.convert_to_tensor(np.asarray(batch, np.float32))
        with tf.GradientTape() as tape:
            features, scores, probs = self._model(x, training=False)
            tape.watch(features)
            scores = tf.cast(scores, tf.float32)
            if scores.shape.rank == 2:
                score = scores[:, class_index]
            elif scores.shape.rank == 4:  # segmentation: the class's own region
                region = tf.cast(tf.argmax(probs, -1) == class_index, tf.float32)
                empty = tf.reduce_sum(region, axis=[1, 2], keepdims=True) == 0
                region = tf.where(empty, tf.ones_like(region), region)
                score = tf.reduce_sum(scores[..., class_index] * region, axis=[1, 2])
            else:
                raise ModelError(f"explanations support (N, C) and (N, H, W, C) outputs. "
                                 f"Received: shape={tuple(scores.shape)}")
        grads = tf.cast(tape.gradient(score, features), tf.float32)
        a = tf.cast(features, tf.float32)
        out = {}
        if "gradcam" in methods:
            weights = tf.reduce_mean(grads, axis=[1, 2], keepdims=True)
            out["gradcam"] = tf.nn.relu(tf.reduce_sum(weights * a, -1))
        if "gradcam++" in methods:
            g2, g3 = grads ** 2, grads ** 3
            denom = 2.0 * g2 + tf.reduce_sum(a, axis=[1, 2], keepdims=True) * g3
            alpha = tf.math.divide_no_nan(g2, denom)
            weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=[1, 2], keepdims=True)
            out["gradcam++"] = tf.nn.relu(tf.reduce_sum(weights * a, -1))
        return {m: _normalise(np.asarray(v)) for m, v in out.items()}


def _normalise(maps: np.ndarray) -> np.ndarray:
    peak = maps.reshape(len(maps), -1).max(1).reshape(-1, 1, 1)
    return np.where(peak > 0, maps / np.maximum(peak, 1e-12), 0.0).astype(np.float32)


def upsample(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """A ``(h, w)`` map resized to the image (bilinear)."""
    import cv2

    return cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def overlay(image_rgb: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image with the map (resized to it) blended as a JET heat map; RGB uint8."""
    import cv2

    h, w = image_rgb.shape[:2]
    heat = cv2.applyColorMap(np.uint8(255 * np.clip(upsample(cam, h, w), 0, 1)),
                             cv2.COLORMAP_JET)[..., ::-1]
    return cv2.addWeighted(image_rgb, 1 - alpha, heat, alpha, 0)


def peak(cam: np.ndarray, height: int, width: int) -> tuple[int, int]:
    """``(x, y)`` of the map's maximum in image pixels."""
    up = upsample(cam, height, width)
    y, x = np.unravel_index(int(np.argmax(up)), up.shape)
    return int(x), int(y)


def explain_images(task: str, model_path, images: Sequence, out_dir, *, top_k: int = 1,
                   class_name: str | None = None, level: str | None = None,
                   methods: Sequence[str] = METHODS) -> list[dict]:
    """Explain ``images`` (files, folders, globs) with a ``.keras`` model; writes one overlay
    PNG per image, class and method into ``out_dir`` plus ``explanations.jsonl``.

    Args:
        task: the task name (must match the model's).
        top_k: explain the model's k most likely classes (classification; segmentation
            explains the k classes covering most pixels).
        class_name: explain this class instead of the top k.
        level: backbone level (default: the deepest declared).

    Returns:
        One record per (image, class): path, class, score, level, overlay files, peak (x, y).
    """
    import json
    from pathlib import Path

    import cv2

    from visionsuite.data.images import read_image
    from visionsuite.files import atomic_path
    from visionsuite.models import check_task, load_keras_model, read_keras_metadata
    from visionsuite.plugins import task_for_model
    from visionsuite.predict import expand_inputs

    model_path = Path(model_path)
    if model_path.suffix != ".keras":
        raise UsageError(f"explanations need the .keras model (gradients). "
                         f"Received: model={model_path}")
    metadata = read_keras_metadata(model_path)
    check_task(metadata, task, str(model_path))
    classes = list(metadata.classes)
    if class_name is not None and class_name not in classes:
        from visionsuite.errors import did_you_mean

        raise UsageError(f"unknown class {class_name!r}.{did_you_mean(class_name, classes)} "
                         f"Received: class={class_name!r}")
    if top_k < 1:
        raise UsageError(f"top_k must be >= 1. Received: top_k={top_k}")
    plugin = task_for_model(metadata, task, source=str(model_path))
    explainer = Explainer(load_keras_model(model_path), metadata, level=level)
    paths, _ = expand_inputs(list(images))
    if not paths:
        raise UsageError(f"explain needs image files, folders or globs. Received: {list(images)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for path in paths:
        rgb = read_image(path)
        x, _ = plugin.preprocess(rgb, metadata.input_spec)
        batch = x[None].astype(np.float32)
        probs = explainer.predict(batch)[0]
        if class_name is not None:
            chosen = [classes.index(class_name)]
        elif probs.ndim == 1:
            chosen = list(np.argsort(-probs)[:top_k])
        else:  # segmentation: the classes covering the most pixels
            counts = np.bincount(probs.argmax(-1).ravel(), minlength=len(classes))
            chosen = [int(c) for c in np.argsort(-counts)[:top_k] if counts[c] > 0]
        h, w = rgb.shape[:2]
        for c in chosen:
            maps = explainer.explain(batch, int(c), methods)
            score = float(probs[c]) if probs.ndim == 1 else float((probs.argmax(-1) == c).mean())
            files = {}
            for method, cam in maps.items():
                tag = method.replace("++", "pp")
                name = f"{Path(path).stem}_{classes[c]}_{tag}.png"
                with atomic_path(out_dir / name, keep_suffix=True) as tmp:
                    cv2.imwrite(str(tmp), overlay(rgb, cam[0])[..., ::-1])
                files[method] = name
            records.append({"image": str(path), "class": classes[c],
                            "score" if probs.ndim == 1 else "area": round(score, 4),
                            "level": explainer.level, "stride": explainer.stride,
                            "overlays": files,
                            "peak": {m: peak(cam[0], h, w) for m, cam in maps.items()}})
    with atomic_path(out_dir / "explanations.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records
