"""The bad-input sweep: every kind of bad input a new user can type, through the real CLI
entry point (``visionsuite.cli:main``, in-process with click's runner), gets exactly one line
on stderr starting with ``error:``, a non-zero exit code and no traceback.

The per-task cases run for every installed task plugin, so a task added later is swept too.
Warnings logged before the error count as lines: a user would see them above it.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from visionsuite.cli import main
from visionsuite.plugins import discover

TASKS = sorted(discover()[0])
SECRET = "s3cr3t"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory, save_tiny_classifier):
    """Every bad file the sweep needs, made once."""
    import cv2
    import keras

    from visionsuite.models import ModelMetadata, save_keras_model
    from visionsuite.runtime import load_runtime
    from visionsuite.testing import write_test_video

    root = tmp_path_factory.mktemp("bad_inputs")
    f = {"root": root}
    f["keras"] = save_tiny_classifier(root / "tiny.keras")
    load_runtime(f["keras"])
    f["tflite"] = root / "tiny.fp32.tflite"
    f["segmentation_model"] = save_tiny_classifier(root / "seg.keras", task="segmentation")
    f["ab_model"] = save_tiny_classifier(root / "ab.keras", classes=("a", "b"))
    f["video"] = write_test_video(root / "clip.mp4", n=8)
    f["image"] = root / "img.png"
    cv2.imwrite(str(f["image"]), np.full((40, 40, 3), 90, np.uint8))
    (root / "not_a_model.keras").write_text("hello")
    f["not_a_model"] = root / "not_a_model.keras"
    (root / "text.h5").write_text("not hdf5")
    f["text_h5"] = root / "text.h5"
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain.save(root / "plain.keras")
    f["plain_keras"] = root / "plain.keras"
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    f["lambda"] = save_keras_model(keras.Model(inp, out), root / "lambda.keras",
                                   ModelMetadata("classification", ("a", "b", "c"), 32))
    (root / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    f["truncated"] = root / "truncated.jpg"
    data = f["video"].read_bytes()
    (root / "corrupt.mp4").write_bytes(data[: len(data) // 3])
    f["corrupt_video"] = root / "corrupt.mp4"
    (root / "empty").mkdir()
    f["empty_dir"] = root / "empty"
    (root / "a_file").write_text("x")
    f["a_file"] = root / "a_file"
    (root / "bad.yaml").write_text("epochs: [1\n")
    f["bad_yaml"] = root / "bad.yaml"
    (root / "keys.yaml").write_text("epoch: 2\n")
    f["unknown_key_yaml"] = root / "keys.yaml"
    (root / "list.yaml").write_text("- 1\n- 2\n")
    f["list_yaml"] = root / "list.yaml"
    # a folder dataset whose only images are damaged inside (valid header and IEND)
    damaged = root / "damaged"
    for c in ("a", "b"):
        (damaged / c).mkdir(parents=True)
        for i in range(2):
            p = damaged / c / f"{i}.png"
            cv2.imwrite(str(p), np.full((16, 16, 3), 40 * i, np.uint8))
            raw = bytearray(p.read_bytes())
            k = raw.find(b"IDAT")
            n = struct.unpack(">I", raw[k - 4:k])[0]
            chunk = b"IDAT" + zlib.compress(b"\x07" * 800)
            raw[k - 4:k + 4 + n + 4] = (struct.pack(">I", len(chunk) - 4) + chunk
                                         + struct.pack(">I", zlib.crc32(chunk)))
            p.write_bytes(bytes(raw))
    f["damaged"] = damaged
    return f


def _train(*args):
    return ("train", "classification", "--backbone", "simple_cnn", "--image-size", "32",
            "--epochs", "1", *args)


# (id, argv builder taking the files dict and tmp_path, substring of the one error line)
CASES = [
    # === command line ===
    ("unknown-command", lambda f, t: ["trian"], "No such command"),
    ("unknown-task", lambda f, t: ["train", "clasification"], "Did you mean: classification"),
    ("unknown-option", lambda f, t: ["train", "classification", "--epoch", "2"], "--epoch"),
    ("option-type", lambda f, t: ["train", "classification", "--epochs", "two"], "--epochs"),
    ("option-choice", lambda f, t: ["train", "classification", "--optimizer", "rmsprop"],
     "--optimizer"),
    ("missing-argument", lambda f, t: ["predict", "classification"], "IMAGES"),
    ("set-without-equals", lambda f, t: ["train", "classification", "--set", "epochs"], "epochs"),
    ("unknown-task-key", lambda f, t: ["train", "classification", "--set", "task.image_sise=32"],
     "image_sise"),
    # === config files ===
    ("config-missing", lambda f, t: ["train", "classification", "--config", str(t / "no.yaml")],
     "no.yaml"),
    ("config-malformed", lambda f, t: ["train", "classification", "--config", str(f["bad_yaml"])],
     "malformed YAML"),
    ("config-unknown-key", lambda f, t: ["train", "classification", "--config",
                                         str(f["unknown_key_yaml"])], "epoch"),
    ("config-not-a-mapping", lambda f, t: ["train", "classification", "--config",
                                           str(f["list_yaml"])], ""),
    # === train ===
    ("train-no-data", lambda f, t: ["train", "classification"], "data"),
    ("train-data-missing", lambda f, t: _train("--data", str(t / "nope")), "nope"),
    ("train-data-empty", lambda f, t: _train("--data", str(f["empty_dir"])), "empty"),
    ("train-data-is-a-file", lambda f, t: _train("--data", str(f["a_file"])), "a_file"),
    ("train-epochs-0", lambda f, t: _train("--data", str(f["empty_dir"]), "--epochs", "0"),
     "epochs"),
    ("train-batch-negative", lambda f, t: _train("--data", str(f["empty_dir"]), "--batch-size",
                                                 "-1"), "batch_size"),
    ("train-resume-no-name", lambda f, t: _train("--data", str(f["empty_dir"]), "--resume"),
     "--name"),
    ("train-unknown-backbone", lambda f, t: ["train", "classification", "--data",
                                             str(f["empty_dir"]), "--backbone", "resnet9000"],
     "resnet9000"),
    ("train-weights-missing", lambda f, t: _train("--data", str(f["empty_dir"]), "--weights",
                                                  str(t / "w.h5")), "weights file not found"),
    ("train-weights-wrong-type", lambda f, t: _train("--data", str(f["empty_dir"]), "--weights",
                                                     str(f["text_h5"])), "not an HDF5"),
    ("train-weights-imagenet-none", lambda f, t: _train("--data", str(f["image"].parent),
                                                        "--weights", "imagenet",
                                                        "--runs-dir", str(t / "runs")),
     "no ImageNet weights"),
    ("train-freeze-too-long", lambda f, t: _train("--data", str(f["empty_dir"]),
                                                  "--freeze-epochs", "3"), "freeze_epochs"),
    ("train-val-data-missing", lambda f, t: _train("--data", str(f["damaged"]), "--val-data",
                                                   str(t / "val"), "--runs-dir",
                                                   str(t / "runs")), "val"),
    ("train-runs-dir-is-a-file", lambda f, t: _train("--data", str(f["damaged"]), "--runs-dir",
                                                     str(f["a_file"])), "not a folder"),
    # === evaluate ===
    ("evaluate-model-missing", lambda f, t: ["evaluate", "classification", "--model",
                                             str(t / "m.keras"), "--data", str(f["damaged"])],
     "m.keras"),
    ("evaluate-model-not-a-zip", lambda f, t: ["evaluate", "classification", "--model",
                                               str(f["not_a_model"]), "--data",
                                               str(f["damaged"])], "not_a_model.keras"),
    ("evaluate-plain-keras", lambda f, t: ["evaluate", "classification", "--model",
                                           str(f["plain_keras"]), "--data", str(f["damaged"])],
     "not a visionsuite model"),
    ("evaluate-other-task", lambda f, t: ["evaluate", "classification", "--model",
                                          str(f["segmentation_model"]), "--data",
                                          str(f["damaged"])], "'segmentation' model"),
    ("evaluate-data-missing", lambda f, t: ["evaluate", "classification", "--model",
                                            str(f["keras"]), "--data", str(t / "nodata")],
     "nodata"),
    ("evaluate-strict-damaged", lambda f, t: ["evaluate", "classification", "--model",
                                              str(f["ab_model"]), "--data", str(f["damaged"]),
                                              "--strict"], ".png"),
    # === predict ===
    ("predict-image-missing", lambda f, t: ["predict", "classification", "--model",
                                            str(f["tflite"]), str(t / "x.jpg")], "x.jpg"),
    ("predict-truncated-image", lambda f, t: ["predict", "classification", "--model",
                                              str(f["tflite"]), str(f["truncated"])],
     "truncated"),
    ("predict-model-missing", lambda f, t: ["predict", "classification", "--model",
                                            str(t / "m.tflite"), str(f["image"])], "m.tflite"),
    ("predict-lambda-model", lambda f, t: ["predict", "classification", "--model",
                                           str(f["lambda"]), str(f["image"])], "Lambda layer"),
    ("predict-model-not-a-model", lambda f, t: ["predict", "classification", "--model",
                                                str(f["not_a_model"]), str(f["image"])],
     "not_a_model.keras"),
    ("predict-unknown-option", lambda f, t: ["predict", "classification", "--model",
                                             str(f["tflite"]), "--set", "top_kk=2",
                                             str(f["image"])], "top_kk"),
    # === run ===
    ("run-source-missing", lambda f, t: ["run", "classification", "--model", str(f["tflite"]),
                                         "--source", str(t / "v.mp4")], "video file not found"),
    ("run-corrupt-video", lambda f, t: ["run", "classification", "--model", str(f["tflite"]),
                                        "--source", str(f["corrupt_video"])], "cannot open video"),
    ("run-unsupported-scheme", lambda f, t: ["run", "classification", "--model",
                                             str(f["tflite"]), "--source",
                                             f"ftp://u:{SECRET}@h/x"], "unsupported URL scheme"),
    ("run-camera-absent", lambda f, t: ["run", "classification", "--model", str(f["tflite"]),
                                        "--source", "7"], "camera 7"),
    ("run-unreachable-url", lambda f, t: ["run", "classification", "--model", str(f["tflite"]),
                                          "--timeout", "1", "--source",
                                          f"rtsp://:{SECRET}@127.0.0.1:{_free_port()}/s"],
     "cannot open stream rtsp://:***@127.0.0.1"),
    ("run-results-is-a-folder", lambda f, t: ["run", "classification", "--model",
                                              str(f["tflite"]), "--source", str(f["video"]),
                                              "--results", str(t)], "--results"),
    ("run-save-gif", lambda f, t: ["run", "classification", "--model", str(f["tflite"]),
                                   "--source", str(f["video"]), "--save", str(t / "x.gif")],
     "unsupported video type"),
    ("run-batch-size-0", lambda f, t: ["run", "classification", "--model", str(f["tflite"]),
                                       "--source", str(f["video"]), "--batch-size", "0"],
     "batch"),
    ("run-vid-stride-0", lambda f, t: ["run", "classification", "--model", str(f["tflite"]),
                                       "--source", str(f["video"]), "--vid-stride", "0"],
     "vid_stride"),
    ("run-other-task-model", lambda f, t: ["run", "classification", "--model",
                                           str(f["segmentation_model"]), "--source",
                                           str(f["video"])], "'segmentation' model"),
    ("run-policy-choice", lambda f, t: ["run", "classification", "--model", str(f["tflite"]),
                                        "--source", str(f["video"]), "--policy", "oldest"],
     "--policy"),
    # === export ===
    ("export-model-missing", lambda f, t: ["export", "--model", str(t / "m.keras"), "--format",
                                           "tflite"], "m.keras"),
    ("export-format-choice", lambda f, t: ["export", "--model", str(f["keras"]), "--format",
                                           "onnx"], "--format"),
    ("export-int8-no-calibration", lambda f, t: ["export", "--model", str(f["keras"]),
                                                 "--format", "tflite", "--quantize", "int8"],
     "calibration"),
    ("export-quantize-savedmodel", lambda f, t: ["export", "--model", str(f["keras"]),
                                                 "--format", "savedmodel", "--quantize", "fp16"],
     "TFLite"),
    ("export-bad-suffix", lambda f, t: ["export", "--model", str(f["keras"]), "--format",
                                        "tflite", "--out", str(t / "m.pb")], ".tflite"),
    ("export-into-a-file", lambda f, t: ["export", "--model", str(f["keras"]), "--format",
                                         "tflite", "--out", str(f["a_file"] / "m.tflite")],
     "not a folder"),
    ("export-lambda-model", lambda f, t: ["export", "--model", str(f["lambda"]), "--format",
                                          "tflite", "--out", str(t / "l.tflite")],
     "Lambda layer"),
    ("export-tflite-input", lambda f, t: ["export", "--model", str(f["tflite"]), "--format",
                                          "tflite"], ".keras"),
]

PER_TASK = [
    ("train-data-missing", lambda task, f, t: ["train", task, "--data", str(t / "missing")],
     "missing"),
    ("evaluate-model-missing", lambda task, f, t: ["evaluate", task, "--model",
                                                   str(t / "gone.keras"), "--data", str(t)],
     "gone.keras"),
    ("predict-model-missing", lambda task, f, t: ["predict", task, "--model",
                                                  str(t / "gone.keras"), str(f["image"])],
     "gone.keras"),
    ("run-source-missing", lambda task, f, t: ["run", task, "--model", str(t / "gone.tflite"),
                                               "--source", str(t / "gone.mp4")], "gone."),
    ("bad-set-key", lambda task, f, t: ["train", task, "--set", "task.no_such_option=1"],
     "no_such_option"),
]


def sweep(args, caplog) -> tuple:
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    lines = logged + result.stderr.strip().splitlines()
    return result, lines


def check_one_line(result, lines, expected: str):
    assert result.exit_code != 0, (result.exit_code, result.output, lines)
    assert "Traceback" not in result.stderr and "Traceback" not in result.output
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    assert expected in lines[0], (expected, lines[0])
    assert SECRET not in result.stderr + result.output


@pytest.mark.parametrize("make_args, expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line(make_args, expected, files, tmp_path, caplog):
    result, lines = sweep(make_args(files, tmp_path), caplog)
    check_one_line(result, lines, expected)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("make_args, expected", [c[1:] for c in PER_TASK],
                         ids=[c[0] for c in PER_TASK])
def test_bad_input_of_every_task_gets_one_line(task, make_args, expected, files, tmp_path,
                                               caplog):
    result, lines = sweep(make_args(task, files, tmp_path), caplog)
    check_one_line(result, lines, expected)


def test_the_sweep_is_big_enough():
    assert len(CASES) + len(PER_TASK) * len(TASKS) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_export_into_a_read_only_folder(files, tmp_path, caplog):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result, lines = sweep(["export", "--model", files["keras"], "--format", "tflite",
                               "--out", folder / "m.tflite"], caplog)
    finally:
        folder.chmod(0o755)
    check_one_line(result, lines, "not writable")


def test_debug_shows_a_traceback_without_secrets(files, tmp_path):
    result = CliRunner().invoke(main, ["--debug", "run", "classification", "--model",
                                       str(files["tflite"]), "--timeout", "1", "--source",
                                       f"http://user:{SECRET}@127.0.0.1:{_free_port()}/x"],
                                catch_exceptions=False)
    assert result.exit_code == 1 and "Traceback" in result.stderr
    assert SECRET not in result.stderr and re.search(r"user:\*\*\*@127\.0\.0\.1", result.stderr)
