"""Packaging: every package is listed, the console script and entry points are installed, and
the environment holds exactly one TensorFlow and one OpenCV."""

import ast
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIRS = {"visionsuite": ROOT / "visionsuite", "visionsuite_tasks": ROOT / "tasks"}


def _code_dirs(top: Path):
    """Folders under ``top`` holding library .py files (test folders excluded)."""
    for path in sorted({p.parent for p in top.rglob("*.py")}):
        parts = path.relative_to(top).parts
        if "__pycache__" in parts or "tests" in parts:
            continue
        yield path


def _dotted(package: str, top: Path, path: Path) -> str:
    return ".".join((package, *path.relative_to(top).parts))


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {_dotted(pkg, top, d) for pkg, top in PACKAGE_DIRS.items() for d in _code_dirs(top)}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_every_listed_package_exists_with_an_init():
    for name in PYPROJECT["tool"]["setuptools"]["packages"]:
        top, *rest = name.split(".")
        folder = PACKAGE_DIRS[top].joinpath(*rest)
        assert (folder / "__init__.py").is_file(), f"{name} is listed but {folder} has no __init__.py"


def test_console_script_is_installed():
    (script,) = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == "visionsuite"]
    assert script.value == PYPROJECT["project"]["scripts"]["visionsuite"]
    assert callable(script.load())
    assert Path(sys.executable).with_name("visionsuite").is_file()


def _distributions_shipping(top_level_file: str) -> list[str]:
    names = []
    for dist in metadata.distributions():
        if any(str(f) == top_level_file for f in dist.files or ()):
            names.append(f"{dist.metadata['Name']} {dist.version}")
    return sorted(set(names))


def test_exactly_one_tensorflow_distribution():
    found = _distributions_shipping("tensorflow/__init__.py")
    assert len(found) == 1, f"several TensorFlow wheels write into one folder: {found}"
    assert found[0].split()[0] == "tensorflow"


def test_exactly_one_opencv_distribution():
    found = _distributions_shipping("cv2/__init__.py")
    assert len(found) == 1, f"several OpenCV wheels write into one cv2 folder: {found}"


def test_pip_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    if proc.returncode == 0:
        return
    problems = [line for line in proc.stdout.splitlines() if line.strip()]
    if _distributions_shipping("cv2/__init__.py")[0].split()[0] == "opencv-python":
        # The README's GUI swap (./setup.sh --gui-opencv): same cv2, other wheel name.
        problems = [p for p in problems
                    if not p.endswith("requires opencv-python-headless, which is not installed.")]
    assert problems == [], proc.stdout + proc.stderr


@pytest.mark.parametrize("group", ["visionsuite.tasks", "visionsuite.backbones"])
def test_installed_entry_points_match_pyproject(group):
    declared = PYPROJECT["project"]["entry-points"][group]
    installed = {ep.name: ep.value for ep in metadata.entry_points(group=group)
                 if ep.dist and ep.dist.name == "visionsuite"}
    assert installed == declared, "reinstall: pip install -e . --no-deps"


def test_every_builtin_task_is_registered_by_entry_point():
    declared = PYPROJECT["project"]["entry-points"]["visionsuite.tasks"].values()
    modules = {value.split(":")[0] for value in declared}
    for folder in sorted((ROOT / "tasks").iterdir()):
        if (folder / "__init__.py").is_file():
            assert f"visionsuite_tasks.{folder.name}" in modules, f"tasks/{folder.name} has no entry point"


def _imported_modules(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", ""))
              in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value


def test_core_never_imports_the_builtin_tasks():
    offenders = [f"{path.relative_to(ROOT)}: {module}"
                 for path in sorted((ROOT / "visionsuite").rglob("*.py"))
                 for module in _imported_modules(path)
                 if module.split(".")[0] in ("visionsuite_tasks", "tasks")]
    assert offenders == []


def test_dataset_cards_are_package_data_of_a_built_wheel(tmp_path):
    """A non-editable install must still give Fashion-MNIST its class names."""
    import zipfile

    import shutil

    had_build = (ROOT / "build").exists()
    try:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True,
                       timeout=300)
    finally:  # setuptools builds inside the source tree: leave it as it was
        if not had_build:
            shutil.rmtree(ROOT / "build", ignore_errors=True)
    (wheel,) = tmp_path.glob("visionsuite-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "visionsuite/cards/fashion-mnist.yaml" in names
    assert "visionsuite/cards/shapes.yaml" in names
