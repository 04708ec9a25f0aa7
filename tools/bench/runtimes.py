"""FPS of one model under each runtime -- Keras tf.function, SavedModel, TFLite fp32, TFLite
int8 (and fp16) -- with each export's parity against the Keras model next to it.

Batch 1, the same preprocessed frames for every runtime, interleaved rounds, medians. Exports
are made with `visionsuite.export.export_model` (int8 calibrated on real photos and frames).

    python tools/bench/runtimes.py [--model imagenet:efficientnet_lite0] [--frames 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import Clock, load_average, make_video, median, preprocessed_frames  # noqa: E402


def calibration_folder(folder: Path, video: Path, n_frames: int = 40) -> Path:
    """Sample photos plus frames of the benchmark clip, as image files."""
    import shutil

    import cv2

    from visionsuite import samples

    folder.mkdir(parents=True, exist_ok=True)
    for name, path in samples.sample_photos().items():
        shutil.copy(path, folder / f"{name}{path.suffix}")
    cap = cv2.VideoCapture(str(video))
    for i in range(n_frames):
        ok, img = cap.read()
        if not ok:
            break
        if i % 2 == 0:
            cv2.imwrite(str(folder / f"frame{i:03d}.png"), img)
    return folder


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="imagenet:efficientnet_lite0")
    parser.add_argument("--task", default="classification")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fp16", action="store_true", help="also export and time fp16")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    from visionsuite.export import export_model
    from visionsuite.plugins import task_for_model
    from visionsuite.runtime import load_runtime, resolve_model

    work = Path(tempfile.mkdtemp(prefix="vs-bench-rt-"))
    video = make_video(work / "clip_640x480.mp4", frames=args.frames)
    calib = calibration_folder(work / "calib", video)
    keras_path, metadata = resolve_model(args.model)
    exports = {
        "savedmodel": export_model(args.model, "savedmodel", out=work / "model_savedmodel",
                                   calibration_data=calib),
        "tflite fp32": export_model(args.model, "tflite", out=work / "model.tflite",
                                    calibration_data=calib),
        "tflite int8": export_model(args.model, "tflite", quantize="int8",
                                    out=work / "model.int8.tflite", calibration_data=calib),
    }
    if args.fp16:
        exports["tflite fp16"] = export_model(args.model, "tflite", quantize="fp16",
                                              out=work / "model.fp16.tflite",
                                              calibration_data=calib)
    models = {"keras": load_runtime(keras_path, runtime="keras")}
    for name, report in exports.items():
        models[name] = load_runtime(report["export"], runtime=name.split()[0],
                                    threads=args.threads)
    task = task_for_model(metadata, args.task, source=args.model)
    inputs = preprocessed_frames(video, task, metadata.input_spec)
    for m in models.values():
        for x in inputs[:5]:
            m(x)
    fps = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, m in models.items():
            with Clock() as c:
                for x in inputs:
                    m(x)
            fps[name].append(len(inputs) / c.seconds)
    base = median(fps["keras"])
    rows = []
    for name in models:
        report = exports.get(name)
        rows.append({
            "runtime": name,
            "fps": round(median(fps[name]), 2),
            "vs_keras": round(median(fps[name]) / base, 2),
            "size_mib": round(report["size_bytes"] / 2**20, 2) if report else
            round(keras_path.stat().st_size / 2**20, 2),
            "max_abs_diff": report["parity"]["max_abs_diff"] if report else 0.0,
            "top1_agreement": report["parity"].get("argmax_agreement") if report else 1.0,
            "rounds": [round(v, 1) for v in fps[name]],
        })
    out = {"model": args.model, "frames": len(inputs), "batch": 1, "threads": args.threads,
           "parity_inputs": f"{exports['tflite fp32']['parity']['samples']} calibration images",
           "load_average": load_average(), "rows": rows}
    print(f"{'runtime':<12} {'FPS':>8} {'x keras':>8} {'MiB':>6} {'max|diff|':>10} {'top-1':>6}")
    for r in rows:
        agree = "-" if r["top1_agreement"] is None else f"{r['top1_agreement'] * 100:.0f}%"
        print(f"{r['runtime']:<12} {r['fps']:>8.1f} {r['vs_keras']:>8.2f} {r['size_mib']:>6.2f} "
              f"{r['max_abs_diff']:>10.2g} {agree:>6}")
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
