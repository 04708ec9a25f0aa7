"""``visionsuite doctor``: is this machine ready to train and run models?

Each check returns :class:`Finding` lines; a finding with a ``problem`` makes the command exit 1
and is printed again at the end as one line (what is wrong and how to fix it). Checks:

* the stack's versions, and exactly one TensorFlow and one OpenCV distribution installed
  (two OpenCV wheels, e.g. ``opencv-python`` next to ``opencv-python-headless``, overwrite each
  other's ``cv2``; two TensorFlows break imports in ways that are hard to trace);
* the accelerators TensorFlow sees and the precision ``--precision auto`` would train in;
* LiteRT runs a tiny model and reports the XNNPACK delegate (the fast CPU path);
* OpenCV's FFmpeg backend (video files and streams) and ``ffmpeg`` on ``PATH``;
* the cache folder: writable, which sample files and cached models are present;
* the current folder is writable (``runs/`` goes there).

Example:
    >>> from visionsuite.doctor import diagnose
    >>> problems = [f.problem for f in diagnose() if f.problem]
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Distributions that each install the ``tensorflow`` / ``cv2`` import package.
TENSORFLOW_DISTS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                    "tensorflow-macos", "tensorflow-aarch64", "tensorflow-rocm", "tf-nightly",
                    "tf-nightly-cpu", "intel-tensorflow")
OPENCV_DISTS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                "opencv-contrib-python-headless")
# Reported with their versions (absent optional ones say so).
STACK = ("visionsuite", "tensorflow", "keras", "numpy", "ai-edge-litert", "albumentations",
         "scikit-learn", "scipy", "pycocotools", "pydicom", "nibabel", "onnxruntime")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One line of the report.

    Args:
        section: the check it belongs to, e.g. ``"stack"``.
        text: what was found.
        problem: ``None`` when fine, else one line saying what is wrong and how to fix it.
    """

    section: str
    text: str
    problem: str | None = None


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed_distributions() -> list[tuple[str, str]]:
    """``(normalised name, version)`` of every installed distribution."""
    seen = []
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            seen.append((_norm(name), dist.version))
    return seen


def duplicate_problems(dists: list[tuple[str, str]]) -> list[Finding]:
    """Exactly one TensorFlow and one OpenCV distribution among ``dists``."""
    out = []
    for what, family in (("TensorFlow", TENSORFLOW_DISTS), ("OpenCV", OPENCV_DISTS)):
        found = sorted({f"{n}=={v}" for n, v in dists if n in family})
        text = f"{what} distributions: {', '.join(found) or 'none'}"
        if len(found) == 1:
            out.append(Finding("stack", text))
        elif not found:
            out.append(Finding("stack", text, f"no {what} distribution is installed; run "
                                              f"./setup.sh (or pip install -e .)"))
        else:
            extra = " ".join(f.split("==")[0] for f in found[1:])
            out.append(Finding("stack", text, f"{len(found)} {what} distributions are installed "
                                              f"({', '.join(found)}); keep one: pip uninstall "
                                              f"{extra}"))
    return out


def stack_findings() -> list[Finding]:
    out = [Finding("stack", f"python {sys.version.split()[0]} ({sys.executable})")]
    dists = installed_distributions()
    versions = dict(dists)
    for name in STACK:
        out.append(Finding("stack", f"{name} {versions.get(name, 'not installed')}"))
    cv = next((f"{n} {v}" for n, v in dists if n in OPENCV_DISTS), None)
    if cv:
        out.append(Finding("stack", cv))
    return out + duplicate_problems(dists)


def accelerator_findings() -> list[Finding]:
    """Devices TensorFlow sees and the precision ``--precision auto`` resolves to."""
    from visionsuite.tflog import import_tensorflow_quietly
    from visionsuite.training.precision import resolve_precision

    tf = import_tensorflow_quietly()
    gpus = tf.config.list_physical_devices("GPU")
    tpus = tf.config.list_logical_devices("TPU")
    device = "tpu" if tpus else "gpu" if gpus else "cpu"
    names = [d.name for d in gpus + tpus] or ["none (CPU only)"]
    policy = resolve_precision("auto", device)
    return [Finding("accelerators", f"TensorFlow sees: {', '.join(names)}"),
            Finding("accelerators", f"training precision with --precision auto: {policy}"
                                    f"{' (mixed precision)' if policy.startswith('mixed') else ''}")]


def _tiny_tflite() -> bytes:
    """A one-convolution float32 model, converted by TensorFlow (~1 s)."""
    from visionsuite.tflog import import_tensorflow_quietly

    tf = import_tensorflow_quietly()

    @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 3), tf.float32)])
    def conv(x):
        return tf.nn.relu(tf.nn.conv2d(x, tf.ones((3, 3, 3, 4)), 1, "SAME"))

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [conv.get_concrete_function()], conv)
    return converter.convert()


def _captured_stderr(fn):
    """``(fn(), text the C++ side wrote to file descriptor 2 meanwhile)``."""
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            result = fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return result, tmp.read().decode("utf-8", "replace")


def xnnpack_findings() -> list[Finding]:
    """Run a tiny model in LiteRT and check it computed the right numbers with XNNPACK."""
    import numpy as np

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        return [Finding("litert", "ai-edge-litert not importable",
                        f"LiteRT is missing ({exc}); pip install ai-edge-litert")]
    model = _tiny_tflite()

    def run():
        interp = Interpreter(model_content=model, num_threads=1)
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], np.ones((1, 8, 8, 3), np.float32))
        interp.invoke()
        return interp.get_tensor(interp.get_output_details()[0]["index"])

    out, log = _captured_stderr(run)
    # an all-ones 3x3x3 kernel over all-ones input sums the in-bounds taps: 3 channels x
    # (2 or 3 rows) x (2 or 3 columns) with "SAME" zero padding
    taps = np.array([2] + [3] * 6 + [2], np.float32)
    expected = 3.0 * np.outer(taps, taps)
    correct = out.shape == (1, 8, 8, 4) and np.allclose(out[0, :, :, 0], expected)
    xnnpack = "XNNPACK" in log
    text = f"tiny model ran: {'correct' if correct else 'WRONG result'}; XNNPACK delegate: " \
           f"{'yes' if xnnpack else 'no'}"
    problem = None
    if not correct:
        problem = "LiteRT computed a wrong result on a tiny convolution; reinstall ai-edge-litert"
    elif not xnnpack:
        problem = ("LiteRT ran without the XNNPACK delegate (CPU inference will be several "
                   "times slower); install the ai-edge-litert wheel from PyPI")
    return [Finding("litert", text, problem)]


def ffmpeg_findings() -> list[Finding]:
    import cv2

    info = cv2.getBuildInformation()
    line = next((ln for ln in info.splitlines() if ln.strip().startswith("FFMPEG:")), "")
    in_opencv = line.split(":", 1)[1].strip().startswith("YES") if line else False
    on_path = shutil.which("ffmpeg")
    return [
        Finding("video", f"OpenCV {cv2.__version__} FFmpeg backend: "
                         f"{'yes' if in_opencv else 'no'}",
                None if in_opencv else "OpenCV was built without FFmpeg (no video files or "
                                       "streams); pip install opencv-python-headless"),
        Finding("video", f"ffmpeg on PATH: {on_path or 'no'}",
                None if on_path else "ffmpeg is not on PATH (needed to write H.264 video and "
                                     "serve test streams); apt-get install ffmpeg"),
    ]


def _writable(folder: Path) -> str | None:
    """``None`` when a file can be created in ``folder`` (created if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
        return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"


def sample_status(root: Path) -> tuple[list[str], list[str]]:
    """``(present, missing)`` sample names (``package/name``) in the cache at ``root``,
    without fetching anything."""
    from visionsuite import samples

    present, missing = [], []
    for source in samples.SOURCES:
        for name, member in source.members.items():
            if source.registry == "pypi":
                path = root / "pypi" / f"{source.package}-{source.version}" / member
            else:  # installed system-wide, or extracted into the cache
                path = member if Path(member).is_file() else root / "debian" / source.package \
                    / member.lstrip("/")
            (present if Path(path).is_file() else missing).append(f"{source.package}/{name}")
    return present, missing


def cache_findings() -> list[Finding]:
    from visionsuite.assets import cache_root

    root = cache_root()
    why = _writable(root)
    out = [Finding("cache", f"cache folder: {root} ($VISIONSUITE_CACHE)"
                            + ("" if why is None else f" -- not writable ({why})"),
                   None if why is None else
                   f"the cache folder {root} is not writable ({why}); set VISIONSUITE_CACHE to "
                   f"a writable folder")]
    present, missing = sample_status(root)
    out.append(Finding(
        "cache", f"sample files: {len(present)}/{len(present) + len(missing)} present"
                 + (f" (missing: {', '.join(missing[:6])}"
                    f"{f' and {len(missing) - 6} more' if len(missing) > 6 else ''})"
                    if missing else ""),
        None if not missing else f"{len(missing)} sample files are missing from {root}; run "
                                 f"python tools/fetch_samples.py (needs the package registries "
                                 f"once)"))
    models = sorted((root / "models").iterdir()) if (root / "models").is_dir() else []
    listed = ", ".join(f"{p.name} ({_size_mb(p):.1f} MB)" for p in models) or "none yet"
    out.append(Finding("cache", f"cached default models (built on first use): {listed}"))
    return out


def _size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def workdir_findings() -> list[Finding]:
    cwd = Path.cwd()
    why = _writable(cwd)
    return [Finding("files", f"current folder {cwd} writable (runs/ goes here): "
                             f"{'yes' if why is None else 'no'}",
                    None if why is None else f"the current folder {cwd} is not writable ({why}); "
                                             f"run from a writable folder or pass --runs-dir")]


CHECKS = (stack_findings, accelerator_findings, xnnpack_findings, ffmpeg_findings,
          cache_findings, workdir_findings)


def diagnose() -> list[Finding]:
    """Every check's findings; a check that crashes is itself a problem (one line)."""
    out = []
    for check in CHECKS:
        section = check.__name__.replace("_findings", "")
        try:
            out.extend(check())
        except Exception as exc:  # noqa: BLE001 - a broken check is a finding
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            out.append(Finding(section, f"check failed: {type(exc).__name__}",
                               f"{section} check failed: {type(exc).__name__}: {first}"))
    return out
