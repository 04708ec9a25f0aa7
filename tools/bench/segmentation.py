"""Segmentation at the speed of its model: the stream engine against a plain sequential loop
over the SAME model and outputs, and against the bare model with 1 and 2 interpreter threads,
all in one run (interleaved rounds, medians, the machine's load average).

Jobs (``--job``):

* ``lraspp`` -- LR-ASPP MobileNetV3-Large, 512 px, 21 classes (untrained weights: speed
  only), 640x480 video, annotated video saved. The model is the task's stream variant
  (``labels`` uint8 at the head's 64x64, ``scores``), as ``visionsuite run
  --native-labels`` converts it;
  the engine on the full model (full-resolution ``probabilities``: bilinear resize of 21
  channels and argmax per frame, as on ``main``) is timed too, as ``engine_full_outputs``.
  ``--int8`` adds the int8 stream variant (speed and
  label agreement with fp32 on the calibration frames).
* ``person`` -- the default person model (MediaPipe selfie, 256 px), the README's main job
  (``visionsuite run segmentation --save ... --results ...`` on the 176x144 carphone clip,
  looped to ``--frames``).

    python tools/bench/segmentation.py --job lraspp --frames 300 --rounds 3 [--int8]
    python tools/bench/segmentation.py --job person --frames 300 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import Clock, load_average, make_video, median  # noqa: E402

VOC = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
       "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
       "sheep", "sofa", "train", "tvmonitor")


def lraspp_keras(folder: Path, size: int = 512) -> Path:
    """LR-ASPP MobileNetV3-Large with 21 classes as a visionsuite ``.keras`` (built once)."""
    path = folder / f"lraspp_mnv3l_{size}_voc.keras"
    if path.is_file():
        return path
    import keras

    from visionsuite.backbones.registry import build_backbone
    from visionsuite.models import ModelMetadata, save_keras_model
    from visionsuite_tasks.segmentation.task import SegmentationConfig, SegmentationTask

    keras.utils.set_random_seed(0)
    task = SegmentationTask(SegmentationConfig(image_size=size, head="lraspp"))
    model = task.build_model(build_backbone("mobilenet_v3_large", (size, size, 3)), VOC)
    meta = ModelMetadata(task="segmentation", classes=VOC, input_size=size,
                         backbone="mobilenet_v3_large",
                         task_config={"image_size": size, "head": "lraspp"},
                         outputs=tuple(task.output_specs()))
    return save_keras_model(model, path, meta)


def sequential_loop(video: Path, out: Path, model_path: Path, threads, classes, alpha=0.5):
    """What a competent user writes: read -> preprocess -> invoke -> (argmax) -> colour ->
    blend -> write, one frame at a time, with LiteRT and OpenCV, on the same model file and
    outputs as the engine. Returns the FPS."""
    import cv2
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path), num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    size = int(inp["shape"][1])
    outs = {d["name"]: d for d in interp.get_output_details()}
    sig = interp.get_signature_list().get("serving_default", {}).get("outputs", [])
    runner = interp.get_signature_runner("serving_default") if sig else None
    palette = np.zeros((256, 1, 3), np.uint8)
    from visionsuite_tasks.segmentation.render import class_colors

    palette[: len(classes), 0] = class_colors(classes)[:, ::-1]
    cap = cv2.VideoCapture(str(video))
    writer = None
    n = 0
    with Clock() as c:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            h, w = frame.shape[:2]
            x = cv2.cvtColor(cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA),
                             cv2.COLOR_BGR2RGB).astype(np.float32)[None]
            if runner is not None:
                y = runner(image=x) if "image" in runner.get_input_details() else runner(x)
            else:
                interp.set_tensor(inp["index"], x)
                interp.invoke()
                y = {k: interp.get_tensor(d["index"]) for k, d in outs.items()}
            if "labels" in y:
                labels = y["labels"][0].astype(np.uint8)
            else:  # one class-1 probability channel (the person model) or class scores
                p = next(iter(y.values()))[0]
                labels = ((p[..., 0] > 0.5) if p.shape[-1] == 1 else p.argmax(-1)).astype(np.uint8)
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST)
            color = cv2.LUT(cv2.merge([labels, labels, labels]), palette)
            blend = cv2.addWeighted(frame, 1 - alpha, color, alpha, 0)
            frame[labels > 0] = blend[labels > 0]
            if writer is None:
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (w, h))
            writer.write(frame)
            n += 1
    writer.release()
    cap.release()
    return n / c.seconds


def bare(model_path: Path, inputs, threads: int) -> float:
    from visionsuite.runtime import load_runtime

    m = load_runtime(model_path, runtime="tflite", threads=threads)
    for x in inputs[:5]:
        m(x)
    with Clock() as c:
        for x in inputs:
            m(x)
    return len(inputs) / c.seconds


def engine(video: Path, model, work: Path, threads=None, tag="engine", options=None):
    import visionsuite

    s = visionsuite.run("segmentation", video, model=model, threads=threads,
                        save=work / f"{tag}.mp4", results=work / f"{tag}.jsonl",
                        task_options=options)
    n = sum(1 for _ in s)
    return n / s.stats["wall_s"], s.stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job", choices=("lraspp", "person"), default="lraspp")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--int8", action="store_true", help="also the int8 stream variant")
    parser.add_argument("--no-full", action="store_true",
                        help="skip main's engine on the full-resolution model")
    parser.add_argument("--loop-threads", type=int, default=None,
                        help="interpreter threads of the sequential loop (default: the "
                             "bare model's faster count)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "vs-bench-seg"))
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    from visionsuite.plugins import task_for_model
    from visionsuite.runtime import _cached_conversion, load_runtime, resolve_model
    from visionsuite.streams.pipeline import cpu_cores
    from visionsuite.streams.state import to_model_input

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.job == "lraspp":
        video = make_video(work / f"clip_640x480_{args.frames}.mp4", frames=args.frames)
    else:  # the README's main job runs on the clip at its own size
        video = make_video(work / f"clip_176x144_{args.frames}.mp4", frames=args.frames,
                           size=(176, 144))
    if args.job == "lraspp":
        keras_path = lraspp_keras(work)
        _, meta = resolve_model(keras_path)
        model_ref = keras_path
        fast_task = task_for_model(meta, "segmentation", {"native_labels": True})
        run_model = _cached_conversion(keras_path, meta, "tflite", stream=fast_task)
        full_model = _cached_conversion(keras_path, meta, "tflite")
    else:
        from visionsuite_tasks.segmentation.pretrained import selfie_segmentation_model

        model_ref = run_model = full_model = selfie_segmentation_model()
        args.no_full = True
    net = load_runtime(run_model, runtime="tflite")
    classes = net.metadata.classes
    task = task_for_model(net.metadata, "segmentation")
    import cv2

    cap = cv2.VideoCapture(str(video))
    inputs = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        inputs.append(to_model_input(task, img, net.input_spec)[0][None])
    cap.release()
    models = {"stream": run_model}
    int8_info = None
    if args.int8:
        models["stream int8"], int8_info = int8_variant(keras_path, meta, work, inputs)

    fps: dict[str, list] = {}
    stats = None
    for _ in range(args.rounds):
        for name, path in models.items():
            for t in (1, 2):
                fps.setdefault(f"bare {name} {t}t", []).append(bare(path, inputs, t))
        best_t = args.loop_threads or (
            1 if median(fps["bare stream 1t"]) >= median(fps["bare stream 2t"]) else 2)
        fps.setdefault("sequential loop", []).append(
            sequential_loop(video, work / "loop.mp4", run_model, best_t, classes))
        f, stats = engine(video, model_ref, work,
                          options={"native_labels": True} if args.job == "lraspp" else None)
        fps.setdefault("engine", []).append(f)
        if not args.no_full:
            fps.setdefault("engine_full_outputs", []).append(
                engine(video, full_model, work, tag="engine_full")[0])
    med = {k: round(median(v), 2) for k, v in fps.items()}
    bare_best = max(med["bare stream 1t"], med["bare stream 2t"])
    out = {
        "job": args.job, "model": str(model_ref), "run_model": str(run_model),
        "outputs": list(net.output_names), "frames": len(inputs),
        "input": ("640x480" if args.job == "lraspp" else "176x144 (as in the README's main "
                  "job)") + " mp4v carphone frames, annotated video and JSON lines saved",
        "cores": cpu_cores(), "cpu_vnni": vnni(), "load_average_end": load_average(),
        "fps_median": med, "rounds": {k: [round(x, 1) for x in v] for k, v in fps.items()},
        "loop_threads": best_t,
        "engine_threads_choice": stats.get("threads_choice"),
        "engine_stage_mean_ms": {k: v.get("mean_ms") for k, v in stats["stages"].items()},
        "ratios": {
            "engine / sequential loop": round(med["engine"] / med["sequential loop"], 3),
            "engine / bare best-thread": round(med["engine"] / bare_best, 3),
            "bare 2 threads / 1 thread": round(med["bare stream 2t"] / med["bare stream 1t"], 3),
        },
    }
    if "engine_full_outputs" in med:
        out["ratios"]["engine / engine on full outputs"] = round(
            med["engine"] / med["engine_full_outputs"], 3)
    if int8_info:
        out["int8"] = dict(int8_info, speedup_1t=round(
            med["bare stream int8 1t"] / med["bare stream 1t"], 3), speedup_2t=round(
            med["bare stream int8 2t"] / med["bare stream 2t"], 3))
    for k, v in med.items():
        print(f"{k:<28} {v:>8.1f} FPS   rounds {out['rounds'][k]}")
    for k, v in out["ratios"].items():
        print(f"{k:<40} {v:.3f}")
    print(f"load average {out['load_average_end']} on {out['cores']} cores")
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


def vnni() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "?"
    return ",".join(f for f in ("avx512_vnni", "avx_vnni") if f in flags) or "none"


def int8_variant(keras_path: Path, meta, work: Path, inputs):
    """The stream variant quantised to int8 (calibrated on 40 of the clip's frames) and
    its label agreement with the fp32 stream variant on those frames."""
    import numpy as np

    from visionsuite.models import load_keras_model
    from visionsuite.runtime import _stream_variant, _stream_task, load_runtime
    from visionsuite.runtime import convert

    out = work / (keras_path.stem + ".stream.int8.tflite")
    from visionsuite.plugins import task_for_model

    fast_task = task_for_model(meta, "segmentation", {"native_labels": True})
    fp32 = load_runtime(keras_path, runtime="tflite", stream=fast_task)
    calib = [x[0] for x in inputs[:: max(1, len(inputs) // 40)]][:40]
    if not out.is_file():
        model = load_keras_model(keras_path)
        variant, vmeta = _stream_variant(_stream_task(meta, keras_path, fast_task), model, meta)
        data = convert.keras_to_tflite(variant, convert.with_extra(vmeta, quantize="int8"),
                                       quantize="int8", representative=lambda: iter(calib))
        convert.write_tflite(out, data)
    q = load_runtime(out, runtime="tflite")
    agree = [float((fp32(x[None])["labels"] == q(x[None])["labels"]).mean()) for x in calib]
    return out, {"label_agreement": round(float(np.mean(agree)), 4),
                 "calibration_frames": len(calib)}


if __name__ == "__main__":
    main()
