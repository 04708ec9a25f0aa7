"""The TF.js graph-model loader (on a model written here) and the default NanoDet detector on
the real vtest.avi clip (needs the cached npm files; skipped with the reason otherwise)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from visionsuite import samples
from visionsuite.assets import AssetError
from visionsuite.errors import ModelError
from visionsuite_tasks.detection.boxes import letterbox
from visionsuite_tasks.detection.nms import non_max_suppression


def _write_tfjs(folder, quantize_w: bool):
    """A small graph (x @ W + b, reshaped by an int64 shape constant) saved the way the TF.js
    converter does: GraphDef JSON without weight values + weights in a .bin."""
    import tensorflow as tf
    from google.protobuf import json_format

    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 4)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 6), name="x")
        y = tf.matmul(x, tf.constant(w, name="W")) + tf.constant(b, name="B")
        tf.reshape(y, tf.constant(np.array([-1, 2, 2], np.int64), name="S"), name="out")
    gd = graph.as_graph_def()
    weights, blobs = [], []
    for node in gd.node:
        if node.op != "Const":
            continue
        value = tf.make_ndarray(node.attr["value"].tensor)
        spec = {"name": node.name, "shape": list(value.shape)}
        if value.dtype == np.int64:  # TF.js stores int64 weights as int32
            spec["dtype"], data = "int32", value.astype(np.int32).tobytes()
        elif quantize_w and node.name == "W":
            spec.update(dtype="float32",
                        quantization={"dtype": "float16", "original_dtype": "float32"})
            data = value.astype(np.float16).tobytes()
        else:
            spec["dtype"], data = "float32", value.tobytes()
        node.attr["value"].tensor.ClearField("tensor_content")
        node.attr["value"].tensor.ClearField("float_val")
        node.attr["value"].tensor.ClearField("int64_val")
        weights.append(spec)
        blobs.append(data)
    doc = {"format": "graph-model", "modelTopology": json_format.MessageToDict(gd),
           "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": weights}]}
    (folder / "model.json").write_text(json.dumps(doc))
    (folder / "group1-shard1of1.bin").write_bytes(b"".join(blobs))
    return folder / "model.json", w, b


@pytest.mark.parametrize("quantize_w", [False, True])
def test_tfjs_graph_model_loads_with_weights_from_the_bin(tmp_path, quantize_w):
    import tensorflow as tf

    from visionsuite_tasks.detection.pretrained import load_tfjs_graph_model

    path, w, b = _write_tfjs(tmp_path, quantize_w)
    wrapped, _ = load_tfjs_graph_model(path)
    fn = wrapped.prune(feeds="x:0", fetches="out:0")
    x = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    w_used = w.astype(np.float16).astype(np.float32) if quantize_w else w
    expected = (x @ w_used + b).reshape(-1, 2, 2)
    np.testing.assert_allclose(fn(tf.constant(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_tfjs_damaged_files_are_one_line_model_errors(tmp_path):
    from visionsuite_tasks.detection.pretrained import load_tfjs_graph_model

    path, _, _ = _write_tfjs(tmp_path, False)
    bin_path = tmp_path / "group1-shard1of1.bin"
    bin_path.write_bytes(bin_path.read_bytes()[:-8])
    with pytest.raises(ModelError, match="weight file too short"):
        load_tfjs_graph_model(path)
    path.write_text("{not json")
    with pytest.raises(ModelError, match="not a TF.js graph model"):
        load_tfjs_graph_model(path)


@pytest.fixture(scope="module")
def nanodet():
    from visionsuite.runtime import load_runtime
    from visionsuite_tasks.detection.pretrained import nanodet_model

    try:
        return load_runtime(nanodet_model())
    except AssetError as exc:
        pytest.skip(str(exc))


def test_nanodet_is_a_coco_detector_with_the_detector_output_contract(nanodet):
    meta = nanodet.metadata
    assert meta.task == "detection" and len(meta.classes) == 80
    assert (meta.classes[0], meta.classes[2], meta.classes[79]) == ("person", "car",
                                                                   "toothbrush")
    assert meta.input_size == 416 and nanodet.runtime == "savedmodel"
    assert meta.input_spec.divisor == 32 and [o.name for o in meta.outputs] == ["boxes", "scores"]
    out = nanodet(np.zeros((2, 416, 416, 3), np.float32))  # {name: array}
    boxes, scores = out["boxes"], out["scores"]
    assert boxes.shape == (2, 3549, 4) and scores.shape == (2, 3549, 80)
    assert 0.0 <= scores.min() and scores.max() <= 1.0


def test_nanodet_finds_the_walkers_of_a_vtest_frame(nanodet):
    cap = cv2.VideoCapture(str(samples.sample_video("vtest")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 300)
    ok, frame = cap.read()
    cap.release()
    assert ok
    x, lb = letterbox(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), 416, pad_value=0)
    out = nanodet(x[None].astype(np.float32))  # {name: array}
    boxes, scores = out["boxes"], out["scores"]
    dets = non_max_suppression(boxes[0], scores[0], conf=0.5, iou=0.5, classes=[0])
    people = lb.to_source(dets.boxes)
    assert len(people) >= 5  # six people walk in this frame
    h, w = frame.shape[:2]
    assert people[:, 0].min() >= 0 and people[:, 2].max() <= w and people[:, 3].max() <= h
    tall = (people[:, 3] - people[:, 1]) / (people[:, 2] - people[:, 0])
    assert np.all(tall > 1.5)  # standing people: boxes taller than wide
