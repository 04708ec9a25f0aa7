#!/usr/bin/env python3
"""Brain extraction (deepbrain, ported to Keras) on the real MNI152 T1 template.

Writes the mask as NIfTI with the input's affine, a PNG of three orthogonal slices with the
mask overlaid, and prints the brain volume, Dice/HD95 against two references built from the
template's own files, and the same run on a reoriented (LPS) and resampled (1.5 mm) copy.

Usage:
    python tools/medical_brain_demo.py [--out runs/medical/brain_demo]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from visionsuite import samples
from visionsuite_tasks.medical import metrics, preprocess, pretrained, readers, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/medical/brain_demo"))
    args = parser.parse_args(argv)
    files = samples.mni152_template()
    t1 = readers.read_nifti(files["t1"])
    gm = readers.read_nifti(files["gm"]).array.astype(np.float32)
    wm = readers.read_nifti(files["wm"]).array.astype(np.float32)
    references = {
        # The template T1 is skull-stripped: its non-zero voxels are its own brain mask.
        "t1_nonzero": t1.array > 0,
        # Tissue probability maps: grey + white matter above 0.2.
        "gm_plus_wm_0.2": (gm + wm) > 0.2,
    }
    model = pretrained.build_deepbrain_keras()
    report = {"input": str(files["t1"]), "shape": t1.shape, "spacing_mm": t1.spacing}
    t0 = time.perf_counter()
    result = pretrained.extract_brain(t1, model)
    report["seconds_total"] = time.perf_counter() - t0
    report["seconds_network"] = result.seconds
    report["brain_ml"] = result.volume_ml
    report["references"] = {}
    for name, ref in references.items():
        m = result.mask.array > 0
        report["references"][name] = {
            "reference_ml": float(ref.sum()) * t1.voxel_volume_ml,
            "dice": metrics.dice(m, ref),
            "hd95_mm": metrics.hd95(m, ref, t1.spacing),
            "mask_inside_reference": float((m & ref).sum() / max(m.sum(), 1)),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    mask_path = readers.write_nifti(result.mask, args.out / "brain_mask.nii.gz")
    back = readers.read_nifti(mask_path)
    report["written_affine_max_diff"] = float(np.abs(back.affine - t1.affine).max())
    report["written_shape_equal"] = back.shape == t1.shape
    render.save_orthogonal_png(args.out / "brain_mask.png", t1, result.mask)
    # The same brain reoriented (LPS) and resampled (1.5 mm): the mask must land on that grid.
    other = preprocess.resample_to_spacing(preprocess.reorient(t1, "LPS"), (1.5, 1.5, 1.5))
    res2 = pretrained.extract_brain(other, model)
    report["lps_1.5mm"] = {"shape": other.shape, "orientation": other.orientation,
                           "mask_affine_equal": bool(np.array_equal(res2.mask.affine,
                                                                    other.affine)),
                           "mask_shape_equal": res2.mask.shape == other.shape,
                           "brain_ml": res2.volume_ml}
    (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(report, indent=2, default=str))
    print(f"wrote {mask_path} and {args.out / 'brain_mask.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
