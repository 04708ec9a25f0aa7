"""`visionsuite doctor`: a healthy machine passes; provoked problems give one line each."""

import os
import subprocess
import sys

import pytest

from visionsuite.doctor import duplicate_problems

PYTHON = sys.executable


def _doctor(env, cwd):
    return subprocess.run([PYTHON, "-m", "visionsuite.cli", "doctor"], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_two_opencv_wheels_and_no_tensorflow_are_problems():
    found = duplicate_problems([("opencv-python", "4.10.0.84"),
                                ("opencv-python-headless", "5.0.0.93"), ("numpy", "2.4.6")])
    problems = [f.problem for f in found if f.problem]
    assert len(problems) == 2
    assert "no TensorFlow distribution" in problems[0]
    assert "2 OpenCV distributions" in problems[1]
    assert "opencv-python==4.10.0.84" in problems[1] and "opencv-python-headless==5.0.0.93" \
        in problems[1] and "keep one: pip uninstall " in problems[1]
    ok = duplicate_problems([("tensorflow", "2.21.0"), ("opencv-python-headless", "5.0.0.93")])
    assert [f.problem for f in ok] == [None, None]


@pytest.mark.slow
def test_healthy_machine_passes(tmp_path):
    """The real stack, the shared sample cache and ffmpeg: all green, exit 0."""
    env = dict(os.environ)
    result = _doctor(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "XNNPACK delegate: yes" in result.stdout
    assert "FFmpeg backend: yes" in result.stdout
    assert "TensorFlow distributions: tensorflow==" in result.stdout
    assert result.stdout.rstrip().endswith("all checks passed")


def test_unwritable_cache_and_missing_ffmpeg_are_one_line_each(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = dict(os.environ, VISIONSUITE_CACHE=str(blocker / "cache"), PATH=str(empty_bin))
    result = _doctor(env, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = [ln for ln in result.stderr.splitlines() if ln.startswith("problem: ")]
    assert len(problems) == 3, result.stderr
    assert any("cache folder" in p and "not writable" in p and "VISIONSUITE_CACHE" in p
               for p in problems)
    assert any("sample files are missing" in p and "fetch_samples.py" in p for p in problems)
    assert any("ffmpeg is not on PATH" in p for p in problems)
    assert "Traceback" not in result.stderr
    # the checks that did not break still report green
    assert "XNNPACK delegate: yes" in result.stdout
