"""Detection evaluation with pycocotools' ``COCOeval`` (the reference COCO implementation).

    >>> report = evaluate_detections(targets, detections, classes, out_dir="runs/eval")
    >>> report["metrics"]["map50_95"], report["per_class"]["person"]["ap50"]

``targets`` are the reader's targets (``{"boxes": (N, 4) xyxy, "classes": (N,), "size":
(h, w)}``, one per image) and ``detections`` the post-NMS predictions of the same images, in
source-image pixels (:class:`~visionsuite_tasks.detection.nms.Detections`, or dicts with
``boxes``, ``scores``, ``classes``). Both are handed to pycocotools as in-memory COCO
datasets (categories ``index + 1``, boxes as ``xywh``, ``area = w * h``), and the numbers
reported are COCOeval's own:

* ``map50_95`` (AP averaged over IoU 0.50:0.05:0.95), ``map50``, ``map75``, ``map_small``,
  ``map_medium``, ``map_large``; ``ar1``, ``ar10``, ``ar100``, ``ar_small``, ``ar_medium``,
  ``ar_large`` (COCO's ``stats`` in its order; at most 100 detections per image count);
* per class: AP50:95 and AP50 from COCOeval's precision array (``-1`` -- no ground truth --
  is reported as ``null``), plus the number of instances.

COCO conventions apply: a class absent from the ground truth is left out of the means; an
image with no detections still counts its ground truth as missed. ``out_dir`` receives
``evaluation.json`` (the whole report), ``pr_curves.png`` (precision-recall at IoU 0.5 per
class, COCO's 101-point interpolated precision) and ``confusion_matrix.png`` (detections
with score >= ``conf`` matched one-to-one to ground truth at IoU >= ``iou``, class-agnostic
and greedily by IoU; an extra ``background`` row holds false positives and an extra column
missed objects).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visionsuite.errors import DataError
from visionsuite_tasks.detection.boxes import iou_matrix

REPORT_NAME = "evaluation.json"
STAT_NAMES = ("map50_95", "map50", "map75", "map_small", "map_medium", "map_large",
              "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")


def _field(item, name):
    return item[name] if isinstance(item, dict) else getattr(item, name)


def coco_ground_truth(targets: Sequence[dict], classes: Sequence[str]) -> dict:
    """The COCO dataset dict of ``targets`` (image ids 1..N, category ids index + 1)."""
    images, annotations = [], []
    for k, t in enumerate(targets):
        h, w = t.get("size", (0, 0))
        images.append({"id": k + 1, "height": int(h), "width": int(w),
                       "file_name": f"{k + 1}.jpg"})
        boxes = np.asarray(t["boxes"], np.float64).reshape(-1, 4)
        for box, cls in zip(boxes, np.asarray(t["classes"]).reshape(-1)):
            bw, bh = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": k + 1,
                                "category_id": int(cls) + 1, "iscrowd": 0, "area": bw * bh,
                                "bbox": [box[0], box[1], bw, bh]})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}


def coco_detections(detections: Sequence) -> list[dict]:
    """COCO result records (``image_id``, ``category_id``, ``bbox`` xywh, ``score``)."""
    out = []
    for k, d in enumerate(detections):
        boxes = np.asarray(_field(d, "boxes"), np.float64).reshape(-1, 4)
        for box, score, cls in zip(boxes, np.asarray(_field(d, "scores")).reshape(-1),
                                   np.asarray(_field(d, "classes")).reshape(-1)):
            out.append({"image_id": k + 1, "category_id": int(cls) + 1, "score": float(score),
                        "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    return out


def run_cocoeval(targets: Sequence[dict], detections: Sequence, classes: Sequence[str]):
    """A finished ``COCOeval`` (evaluate + accumulate + summarize, output silenced), or None
    when there are no detections at all (every AP is then 0)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(targets) != len(detections):
        raise DataError(f"need one detection set per image. Received: {len(targets)} images, "
                        f"{len(detections)} detection sets")
    results = coco_detections(detections)
    if not results:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = coco_ground_truth(targets, classes)
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def confusion_matrix(targets: Sequence[dict], detections: Sequence, num_classes: int, *,
                     conf: float = 0.25, iou: float = 0.5) -> np.ndarray:
    """``(C + 1, C + 1)`` counts, rows = true class, columns = predicted class; index ``C`` is
    background (row: false positives, column: missed objects). See the module docstring."""
    cm = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for t, d in zip(targets, detections):
        gt_boxes = np.asarray(t["boxes"], np.float32).reshape(-1, 4)
        gt_cls = np.asarray(t["classes"], np.int64).reshape(-1)
        scores = np.asarray(_field(d, "scores")).reshape(-1)
        keep = scores >= conf
        boxes = np.asarray(_field(d, "boxes"), np.float32).reshape(-1, 4)[keep]
        cls = np.asarray(_field(d, "classes"), np.int64).reshape(-1)[keep]
        matched_gt, matched_dt = set(), set()
        if len(gt_boxes) and len(boxes):
            ious = iou_matrix(gt_boxes, boxes)
            gi, di = np.nonzero(ious >= iou)
            for k in np.argsort(-ious[gi, di], kind="stable"):
                g, p = int(gi[k]), int(di[k])
                if g in matched_gt or p in matched_dt:
                    continue
                matched_gt.add(g)
                matched_dt.add(p)
                cm[gt_cls[g], cls[p]] += 1
        for g in range(len(gt_boxes)):
            if g not in matched_gt:
                cm[gt_cls[g], num_classes] += 1
        for p in range(len(boxes)):
            if p not in matched_dt:
                cm[num_classes, cls[p]] += 1
    return cm


def evaluate_detections(targets: Sequence[dict], detections: Sequence, classes: Sequence[str],
                        out_dir: str | Path | None = None, *, conf: float = 0.25,
                        iou: float = 0.5) -> dict:
    """Score ``detections`` against ``targets`` (see the module docstring).

    Returns the report: ``metrics`` (flat floats, :data:`STAT_NAMES`), ``per_class``,
    ``confusion_matrix`` (with its ``conf`` / ``iou``), ``images``, ``instances``,
    ``evaluator``. Writes ``evaluation.json`` and the two PNGs when ``out_dir`` is given.
    """
    from importlib.metadata import version

    classes = list(classes)
    ev = run_cocoeval(targets, detections, classes)
    counts = np.zeros(len(classes), np.int64)
    for t in targets:
        np.add.at(counts, np.asarray(t["classes"], np.int64).reshape(-1), 1)
    if ev is None:
        stats = np.zeros(len(STAT_NAMES))
        precision = None
    else:
        stats = np.asarray(ev.stats, np.float64)
        precision = ev.eval["precision"]  # [iou T, recall R, class K, area A, maxdets M]
    metrics = {name: max(float(v), 0.0) for name, v in zip(STAT_NAMES, stats)}
    per_class = {}
    for k, name in enumerate(classes):
        entry = {"instances": int(counts[k]), "ap50_95": None, "ap50": None}
        if precision is not None:
            entry["ap50_95"] = _mean_valid(precision[:, :, k, 0, -1])
            entry["ap50"] = _mean_valid(precision[0, :, k, 0, -1])
        elif counts[k]:
            entry["ap50_95"] = entry["ap50"] = 0.0
        per_class[name] = entry
    cm = confusion_matrix(targets, detections, len(classes), conf=conf, iou=iou)
    report = {"metrics": metrics, "per_class": per_class,
              "confusion_matrix": {"labels": classes + ["background"], "conf": conf, "iou": iou,
                                   "rows": "true", "columns": "predicted",
                                   "counts": cm.tolist()},
              "images": len(targets), "instances": int(counts.sum()),
              "evaluator": f"pycocotools {version('pycocotools')} COCOeval (bbox, maxDets 100)"}
    if out_dir is not None:
        from visionsuite.files import write_json_atomic

        out_dir = Path(out_dir)
        write_json_atomic(out_dir / REPORT_NAME, report)
        plot_pr_curves(precision, classes, out_dir / "pr_curves.png")
        plot_confusion_matrix(cm, classes, out_dir / "confusion_matrix.png")
    return report


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".part.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def plot_pr_curves(precision, classes: Sequence[str], path: Path) -> None:
    """Precision-recall at IoU 0.5 per class (thin) and their mean (thick) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall = np.linspace(0, 1, 101)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    curves = []
    if precision is not None:
        for k, name in enumerate(classes):
            p = precision[0, :, k, 0, -1]
            if (p > -1).any():
                p = np.where(p > -1, p, 0)
                curves.append(p)
                if len(classes) <= 20:
                    ax.plot(recall, p, lw=1, label=f"{name} {p.mean():.3f}")
                else:
                    ax.plot(recall, p, lw=0.6, color="grey")
    if curves:
        mean = np.mean(curves, axis=0)
        ax.plot(recall, mean, lw=3, color="blue", label=f"all classes {mean.mean():.3f} mAP50")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title="precision-recall at IoU 0.5 (COCO 101-point)")
    if curves:
        ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    _savefig(fig, path)


def plot_confusion_matrix(cm, classes: Sequence[str], path: Path) -> None:
    """The detection confusion matrix (counts, colour row-normalised) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, np.float64)
    labels = list(classes) + ["background"]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    size = max(5.5, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=7 if n > 20 else 9)
    ax.set_yticks(range(n), labels, fontsize=7 if n > 20 else 9)
    ax.set(xlabel="predicted", ylabel="true",
           title="confusion matrix (counts, colour = row share)")
    if n <= 21:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    _savefig(fig, path)
