"""The medical task through the CLI and the stream engine: NIfTI and DICOM inputs, masks written
with the input's geometry, the sliding-window state against the direct path, evaluation, data,
and bad inputs as one line."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from visionsuite.cli import main
from visionsuite_tasks.medical import MedicalConfig, MedicalTask
from visionsuite_tasks.medical.readers import read_dicom, read_nifti, write_nifti
from visionsuite_tasks.medical.synthetic import write_dicom_series, write_sphere_cases
from visionsuite_tasks.medical.volume import Volume


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def default_model():
    return MedicalTask().default_model()  # deepbrain SavedModel, built once into the cache


@pytest.fixture(scope="module")
def mni_t1():
    from visionsuite import samples

    return samples.mni152_template()["t1"]


def test_predict_cli_extracts_the_brain_of_the_real_mni152_t1(default_model, mni_t1, tmp_path):
    out = tmp_path / "out"
    result = invoke("predict", "medical", mni_t1, "--out", out, "--mask-dir", out)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 1
    record = records[0]["result"]
    t1 = read_nifti(mni_t1)
    mask = read_nifti(record["mask"])
    assert mask.shape == t1.shape and np.allclose(mask.affine, t1.affine, atol=1e-4)
    voxels = int((mask.array > 0).sum())
    assert record["volumes_ml"]["brain"] == pytest.approx(voxels * t1.voxel_volume_ml, abs=1e-2)
    # deepbrain keeps the inner brain of the skull-stripped template (~600 ml measured), all
    # of it inside the head
    assert 400 < record["volumes_ml"]["brain"] < 900
    assert (t1.array[mask.array > 0] > 0).mean() > 0.99
    overlay = out / "mni_icbm152_t1_tal_nlin_sym_09a_converted_overlay.png"
    import cv2

    picture = cv2.imread(str(overlay))
    assert picture is not None and picture.shape[2] == 3
    assert "brain" in result.output and "ml" in result.output


def test_run_cli_on_a_dicom_series_writes_the_mask_on_its_grid(default_model, tmp_path):
    folder = tmp_path / "series"
    write_dicom_series(folder, 12, rows=40, cols=36, orientation=(0, 1, 0, 0, 0, -1),
                       spacing=(1.2, 0.9))
    out = tmp_path / "masks"
    result = invoke("run", "medical", "--source", folder, "--mask-dir", out, "--no-overlay",
                    "--results", tmp_path / "r.jsonl", "--window", "brain")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 1
    volume = read_dicom(folder)
    mask = read_nifti(out / "series_mask.nii.gz")
    assert mask.shape == volume.shape
    assert np.abs(mask.affine - volume.affine).max() < 1e-4
    assert not (out / "series_overlay.png").exists()


@pytest.fixture(scope="module")
def tiny_unet(tmp_path_factory):
    """A tiny 3D U-Net with random weights, saved with metadata, windows of 16^3."""
    import keras

    from visionsuite.config import to_dict
    from visionsuite.models import ModelMetadata, save_keras_model

    keras.utils.set_random_seed(0)
    task = MedicalTask(MedicalConfig(image_size=16, width=4, levels=2, overlap=0.5,
                                     normalize="zscore"))
    model = task.build_model(None, ["background", "a", "b"])
    meta = ModelMetadata(task="medical", classes=("background", "a", "b"),
                         input_spec=task.input_spec(), outputs=task.output_specs(),
                         task_config=to_dict(task.config))
    path = save_keras_model(model, tmp_path_factory.mktemp("unet") / "unet.keras", meta)
    return task, model, path


def test_stream_state_matches_direct_sliding_window(tiny_unet, tmp_path):
    from visionsuite.streams.pipeline import run

    task, model, path = tiny_unet
    rng = np.random.default_rng(0)
    affine = np.array([[0, -1.5, 0, 20], [1.2, 0, 0, -10], [0, 0, 2.0, 5], [0, 0, 0, 1]])
    volume = Volume(rng.normal(0, 1, (30, 21, 19)).astype(np.float32), affine)
    nii = write_nifti(volume, tmp_path / "vol.nii.gz")
    stream = run("medical", [str(nii)], model=str(path), runtime="keras", policy="queue")
    results = list(stream)
    assert len(results) == 1
    labels = results[0].prediction.labels
    assert labels.shape == volume.shape
    read = read_nifti(nii)
    direct = task.segment(read, lambda x: np.asarray(model(x)["probabilities"])).array
    assert (labels == direct).mean() > 0.999
    assert len(np.unique(labels)) > 1  # random weights still give several classes
    counts = np.bincount(labels.ravel(), minlength=3)
    assert results[0].record["volumes_ml"]["a"] == pytest.approx(
        counts[1] * read.voxel_volume_ml, abs=1e-2)


class ThresholdModel:
    """A stand-in network: one sigmoid-like channel, smoothed intensity above ``level``."""

    def __init__(self, level):
        self.level = level

    def __call__(self, batch):
        from scipy import ndimage

        smooth = ndimage.gaussian_filter(np.asarray(batch, np.float32), (0, 1.5, 1.5, 1.5, 0))
        return (smooth > self.level).astype(np.float32)


def test_evaluate_reports_dice_and_hd95_per_class(tmp_path):
    from scipy import ndimage

    from visionsuite_tasks.medical import metrics
    from visionsuite_tasks.medical.readers import read_case

    data = write_sphere_cases(tmp_path / "data", n_cases=2, size=28)
    task = MedicalTask(MedicalConfig(image_size=16, normalize="none", levels=2))
    dataset = task.load_dataset(data)
    scores = task.evaluate(ThresholdModel(140.0), dataset, tmp_path / "eval", batch_size=4)
    # the same stand-in on each whole volume (no windows, no reorientation), scored directly
    dices, hds = [], []
    for sample in dataset.samples:
        image, label = read_case(sample.image, sample.target)
        pred = ndimage.gaussian_filter(image.array, 1.5) > 140.0
        dices.append(metrics.dice(pred, label.array > 0))
        hds.append(metrics.hd95(pred, label.array > 0, image.spacing))
    assert scores["num_samples"] == 2
    assert scores["dice/foreground"] == pytest.approx(np.mean(dices), abs=0.02)
    assert scores["hd95_mm/foreground"] == pytest.approx(np.mean(hds), abs=0.5)
    assert scores["mean_dice"] == scores["dice/foreground"] and scores["mean_dice"] > 0.5
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert len(report["per_case"]) == 2 and "foreground" in report["per_class"]
    worse = task.evaluate(ThresholdModel(60.0), dataset, batch_size=4)  # everything foreground
    assert worse["dice/foreground"] < scores["dice/foreground"]


def test_splits_are_patient_grouped_and_classes_come_from_the_folder(tmp_path):
    data = write_sphere_cases(tmp_path / "data", n_cases=6, size=20, n_patients=3)
    (data / "classes.txt").write_text("background\nsphere\n")
    task = MedicalTask(MedicalConfig(image_size=16, levels=2, val_fraction=0.34))
    patient = dict(line.split(",") for line in (data / "patients.csv").read_text().split()[1:])
    train = task.load_dataset(data, split="train")
    val = task.load_dataset(data, split="val")
    assert train.classes == ["background", "sphere"]
    p_train = {patient[s.source] for s in train.samples}
    p_val = {patient[s.source] for s in val.samples}
    assert p_train and p_val and not p_train & p_val
    assert len(train) + len(val) == 6


def test_tf_dataset_samples_augmented_patches_reproducibly(tmp_path):
    data = write_sphere_cases(tmp_path / "data", n_cases=2, size=24)
    task = MedicalTask(MedicalConfig(image_size=16, levels=2, patches_per_case=2,
                                     positive_fraction=1.0))
    dataset = task.load_dataset(data)
    first = [(x.numpy(), y.numpy()) for x, y in task.make_tf_dataset(
        dataset, batch_size=2, training=True, seed=3)]
    again = [(x.numpy(), y.numpy()) for x, y in task.make_tf_dataset(
        dataset, batch_size=2, training=True, seed=3)]
    assert len(first) == 2 and first[0][0].shape == (2, 16, 16, 16, 1)
    assert first[0][1].shape == (2, 16, 16, 16) and first[0][1].dtype == np.int32
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert all((y > 0).any(axis=(1, 2, 3)).all() for _, y in first)  # centred on labels


def _no_geometry(path):
    img = nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4))
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("case", ["no_geometry", "not_nifti", "missing", "mixed_series",
                                  "single_slice"])
@pytest.mark.parametrize("command", ["predict", "run"])
def test_bad_volume_inputs_are_one_line(default_model, pydicom_series, pydicom_data, tmp_path,
                                        case, command):
    if case == "no_geometry":
        path, expect = _no_geometry(tmp_path / "x.nii.gz"), "qform"
    elif case == "not_nifti":
        path, expect = tmp_path / "notes.nii.gz", "nii"
        path.write_text("not a volume\n")
    elif case == "missing":
        path, expect = tmp_path / "absent.nii.gz", "no such"
    elif case == "mixed_series":
        path, expect = pydicom_series("98892003/MR2"), "series"
    else:
        path, expect = pydicom_data("CT_small.dcm"), "slice"
    args = ["predict", "medical", path] if command == "predict" else \
        ["run", "medical", "--source", path, "--results", tmp_path / "r.jsonl"]
    result = invoke(*args)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and expect in lines[0].lower(), lines[0]


@pytest.mark.slow
def test_mni152_as_a_dicom_series_gives_the_same_mask_as_the_nifti(default_model, mni_t1,
                                                                   tmp_path):
    from visionsuite_tasks.medical.synthetic import write_dicom_slice

    t1 = read_nifti(mni_t1)
    a = t1.affine
    to_lps = np.diag([-1.0, -1.0, 1.0])
    row, col = to_lps @ a[:3, 0], to_lps @ a[:3, 1]
    series = tmp_path / "series"
    series.mkdir()
    for k in range(t1.shape[2]):
        position = to_lps @ (a[:3, :3] @ [0, 0, k] + a[:3, 3])
        pixels = np.round(np.clip(t1.array[:, :, k].T, 0, None) / 0.01)
        write_dicom_slice(series / f"IM{k:04d}.dcm", pixels, position,
                          tuple(row / np.linalg.norm(row)) + tuple(col / np.linalg.norm(col)),
                          (float(np.linalg.norm(a[:3, 1])), float(np.linalg.norm(a[:3, 0]))),
                          instance=k + 1, slope=0.01, intercept=0.0, modality="MR")
    assert invoke("run", "medical", "--source", series, "--mask-dir", tmp_path / "d",
                  "--no-overlay").exit_code == 0
    assert invoke("predict", "medical", mni_t1, "--mask-dir", tmp_path / "n",
                  "--no-overlay").exit_code == 0
    from_dicom = read_nifti(tmp_path / "d" / "series_mask.nii.gz")
    from_nifti = read_nifti(tmp_path / "n" / "mni_icbm152_t1_tal_nlin_sym_09a_converted_mask.nii.gz")
    assert np.abs(from_dicom.affine - from_nifti.affine).max() < 1e-4
    assert (from_dicom.array != from_nifti.array).mean() < 1e-4
