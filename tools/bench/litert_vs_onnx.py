"""LiteRT (fp32 TFLite, XNNPACK) vs ONNX Runtime on the same model, in one run.

Both files are exported from the same ``.keras`` model by `visionsuite.export.export_model`
(each with its parity check against Keras), then timed at batch 1 on the same preprocessed
640x480 clip frames, for 1 and 2 threads, in interleaved rounds (medians). Needs the
``visionsuite[onnx]`` extra.

    python tools/bench/litert_vs_onnx.py [--model imagenet:efficientnet_lite0] [--frames 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import Clock, load_average, make_video, median, preprocessed_frames  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="imagenet:efficientnet_lite0")
    parser.add_argument("--task", default="classification")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()

    from visionsuite.export import export_model
    from visionsuite.plugins import task_for_model
    from visionsuite.runtime import load_runtime, resolve_model

    work = Path(tempfile.mkdtemp(prefix="vs-bench-onnx-"))
    video = make_video(work / "clip_640x480.mp4", frames=args.frames)
    _, metadata = resolve_model(args.model)
    exports = {"tflite": export_model(args.model, "tflite", out=work / "model.tflite"),
               "onnx": export_model(args.model, "onnx", out=work / "model.onnx")}
    threads = [int(t) for t in args.threads.split(",")]
    models = {(fmt, t): load_runtime(r["export"], runtime=fmt, threads=t)
              for fmt, r in exports.items() for t in threads}
    task = task_for_model(metadata, args.task, source=args.model)
    inputs = preprocessed_frames(video, task, metadata.input_spec)
    for m in models.values():
        for x in inputs[:5]:
            m(x)
    fps = {key: [] for key in models}
    for _ in range(args.rounds):
        for key, m in models.items():
            with Clock() as c:
                for x in inputs:
                    m(x)
            fps[key].append(len(inputs) / c.seconds)
    rows = []
    for (fmt, t), values in fps.items():
        report = exports[fmt]
        rows.append({"runtime": "LiteRT fp32" if fmt == "tflite" else "ONNX Runtime",
                     "threads": t, "fps": round(median(values), 2),
                     "vs_litert_same_threads": round(median(values) / median(fps[("tflite", t)]), 2),
                     "export_s": report["seconds"],
                     "size_mib": round(report["size_bytes"] / 2**20, 2),
                     "max_abs_diff": report["parity"]["max_abs_diff"],
                     "rounds": [round(v, 1) for v in values]})
    out = {"model": args.model, "frames": len(inputs), "batch": 1,
           "parity_inputs": exports["onnx"]["parity"]["inputs"],
           "load_average": load_average(), "rows": rows}
    print(f"{'runtime':<14} {'threads':>7} {'FPS':>8} {'x LiteRT':>9} {'export s':>9} "
          f"{'MiB':>6} {'max|diff|':>10}")
    for r in rows:
        print(f"{r['runtime']:<14} {r['threads']:>7} {r['fps']:>8.1f} "
              f"{r['vs_litert_same_threads']:>9.2f} {r['export_s']:>9.1f} {r['size_mib']:>6.2f} "
              f"{r['max_abs_diff']:>10.2g}")
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
