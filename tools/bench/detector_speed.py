"""Speed of the YOLOv8-style detector in LiteRT fp32: FPS, GFLOP/s and GFLOP/s / matmul peak.

Builds ``build_detector(backbone, classes, size)`` at the given input size (random weights:
speed does not depend on them), counts parameters and FLOPs (TF profiler on the frozen
graph, and by hand over the convolution/dense layers as a cross-check; FLOPs = 2 x
multiply-adds, as Ultralytics counts them), converts the inference model (``{"boxes",
"scores"}``, decoding in the graph, no NMS) with ``TFLiteConverter``, runs it with
``ai-edge-litert`` at batch 1, and measures the float32 matmul peak of this machine in the
same run (NumPy/OpenBLAS, square matrices, best of several, with the same thread count).

    python tools/bench/detector_speed.py [--backbone mobilenet_v3_large] [--size n]
        [--image-size 640] [--classes 80] [--separable-cls] [--threads 1] [--frames 30]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import load_average, median  # noqa: E402


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an n x n matmul with ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    best = float("inf")
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best / 1e9


def profiler_flops(model, shape) -> int:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    fn = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(
        fn.get_concrete_function(tf.TensorSpec((1, *shape), tf.float32)))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=frozen.graph,
                                         run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                         options=options)
    return int(info.total_float_ops)


def hand_flops(model) -> int:
    """2 x multiply-adds of every Conv2D / DepthwiseConv2D / Dense layer (nested models too)."""
    import keras

    total = 0
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * c * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1] // layer.groups
            total += 2 * h * w * c_out * kh * kw * c_in
        elif isinstance(layer, keras.layers.Dense):
            units_in = layer.input.shape[-1]
            rows = int(np.prod([d for d in layer.input.shape[1:-1] if d])) or 1
            total += 2 * rows * units_in * layer.units
    return int(total)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="mobilenet_v3_large")
    parser.add_argument("--size", default="n")
    parser.add_argument("--image-size", default="640", help="S or HxW (multiples of 32)")
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--separable-cls", action="store_true",
                        help="depthwise-separable classification branch (YOLO11-style)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from visionsuite.backbones import build_backbone
    from visionsuite_tasks.detection.models import build_detector, inference_model

    hw = [int(v) for v in args.image_size.lower().split("x")]
    height, width = (hw[0], hw[0]) if len(hw) == 1 else hw
    shape = (height, width, 3)
    backbone = build_backbone(args.backbone, shape)
    model = inference_model(build_detector(backbone, args.classes, size=args.size,
                                           separable_cls=args.separable_cls))
    params = int(model.count_params())
    bb_params = int(backbone.model.count_params())
    flops_tf = profiler_flops(model, shape)
    flops_hand = hand_flops(model)
    flops_backbone = hand_flops(backbone.model)

    start = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    data = converter.convert()
    convert_s = time.perf_counter() - start
    interp = Interpreter(model_content=data, num_threads=args.threads)
    interp.allocate_tensors()
    runner = interp.get_signature_runner()
    in_name = next(iter(runner.get_input_details()))
    rng = np.random.default_rng(0)
    frames = [rng.uniform(0, 255, (1, *shape)).astype(np.float32) for _ in range(4)]
    out = runner(**{in_name: frames[0]})
    keras_out = model(frames[0])
    parity = max(float(np.abs(out[k] - np.asarray(keras_out[k])).max()) for k in out)
    for x in frames:
        runner(**{in_name: x})
    fps = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for i in range(args.frames):
            runner(**{in_name: frames[i % len(frames)]})
        fps.append(args.frames / (time.perf_counter() - start))
    peak = matmul_peak(args.threads)
    fps_med = median(fps)
    gflops = flops_tf / 1e9
    achieved = gflops * fps_med
    result = {
        "backbone": args.backbone, "size": args.size, "separable_cls": args.separable_cls, "input": f"{height}x{width}",
        "classes": args.classes, "params_m": round(params / 1e6, 3),
        "backbone_params_m": round(bb_params / 1e6, 3),
        "gflops_profiler": round(gflops, 3), "gflops_by_hand": round(flops_hand / 1e9, 3),
        "backbone_gflops_by_hand": round(flops_backbone / 1e9, 3),
        "outputs": {k: list(v.shape) for k, v in out.items()},
        "tflite_mib": round(len(data) / 2 ** 20, 2), "convert_s": round(convert_s, 1),
        "tflite_vs_keras_max_abs_diff": parity, "threads": args.threads,
        "fps": round(fps_med, 2), "ms_per_frame": round(1000 / fps_med, 1),
        "fps_rounds": [round(v, 2) for v in fps],
        "achieved_gflop_s": round(achieved, 1), "matmul_peak_gflop_s": round(peak, 1),
        "fraction_of_peak": round(achieved / peak, 3), "load_average": load_average(),
    }
    print(f"{args.backbone} {args.size} {height}x{width}: {params / 1e6:.2f} M params "
          f"(backbone {bb_params / 1e6:.2f} M), {gflops:.2f} GFLOPs (by hand "
          f"{flops_hand / 1e9:.2f}, of which backbone {flops_backbone / 1e9:.2f})")
    print(f"LiteRT fp32, {args.threads} thread(s): {fps_med:.2f} FPS ({1000 / fps_med:.1f} ms), "
          f"{achieved:.1f} GFLOP/s = {achieved / peak:.3f} x matmul peak ({peak:.1f} GFLOP/s); "
          f"load {result['load_average']}")
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
