"""Lightning releases other than the installed one, installed on first use, hash-checked, into a cache.

A run whose `lightning` is set imports that release first on its path (a fresh or forked process
with the release's folder at the front of PYTHONPATH); every result records the version it really
imported. Releases install with `pip install --no-deps --require-hashes --target DIR` against the
installed torch, only from the list below, each with the sha256 of its wheel as PyPI serves it. 2.6.2
and 2.6.3 were malicious uploads (April 2026), withdrawn from PyPI: never installed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from loopbench.core.types import UsageError

# the last release of every 2.x minor line, and the 2.6 patch releases still served (sha256 of the wheel)
RELEASES: dict[str, str] = {
    "2.0.9.post0": "adef569cd84053889b7bbf566be7506385170b4e82401bedfd6bcadf3aba557a",
    "2.1.4": "85d9c8c12bab30c5d9aa45041a399d1c72343fd244421c0344420a6d189dad98",
    "2.2.5": "67a7800863326914f68f6afd68f427855ef2315b4f00d554be8ea4c0f0557fd8",
    "2.3.3": "4365e3f2874e223e63cb42628d24c88c2bdc8d1794453cac38c0619b31115fba",
    "2.4.0": "9ac7935229ac022ef06994c928217ed37f525ac6700f7d4fc57009624570e655",
    "2.5.6": "037bad1e2fd94d5eb6c5144f045fd4c1070c3d38fc9c14d9f3774a3a9be54dff",
    "2.6.0": "ee72cff4b8c983ecfaae8599382544bd5236d9eb300adc7dd305f359195f4e79",
    "2.6.1": "1f8118567ec829e3055f16cf1aa320883a86a47c836951bfd9dcfa34ec7ffd59",
    "2.6.4": "78115f8648d61438236fe2cf503647e7984e5a6e43262a1811496654155b1b00",
    "2.6.5": "62d9c8549b2278fedc3364f0a5607a56c6063d18635008f8cf3fae8d802b0d76",
    "2.6.6": "71f95c7b22f25c4f91cc659e1734bcdc6c69c8b66543f2ed2d78dbe29ce2f167",
}
WITHDRAWN = {
    "2.6.2": "a malicious upload (April 2026), withdrawn from PyPI",
    "2.6.3": "a malicious upload (April 2026), withdrawn from PyPI",
}
# releases before 2.4 import pkg_resources, which setuptools 81 dropped: installed beside them, hash-checked
PKG_RESOURCES = ("2.0.9.post0", "2.1.4", "2.2.5", "2.3.3")
QUIET = "ignore:pkg_resources is deprecated as an API:UserWarning"
SETUPTOOLS = ("80.9.0", "062d34222ad13e0cc312a4c02d73f059e86a4acbfbdea8f8f76b28c99f306922")


def installed() -> str | None:
    try:
        return importlib.metadata.version("pytorch-lightning")
    except importlib.metadata.PackageNotFoundError:
        return None


def is_path(spec: str) -> bool:
    """Does `--lightning` name a Lightning of one's own (a folder or a wheel) rather than a release?"""
    return os.sep in spec or spec.endswith(".whl") or spec.startswith(".")


def check(version: str, flag: str = "--lightning") -> None:
    """A release loopbench may install, the installed one, or a Lightning of one's own; UsageError otherwise."""
    if is_path(version):
        own_site(version, flag)
        return
    if version in WITHDRAWN:
        raise UsageError(f"{flag} {version}: refused: {WITHDRAWN[version]}; never installed")
    if version not in RELEASES and version != installed():
        raise UsageError(
            f"{flag} {version}: not a release on loopbench's list (each with its wheel's sha256 in "
            f"loopbench/core/releases.py); choose from {', '.join(RELEASES)}"
        )


def cache_dir() -> Path:
    """$LOOPBENCH_CACHE/lightning (beside the data cache), else ~/.cache/loopbench/lightning."""
    where = os.environ.get("LOOPBENCH_CACHE")
    base = Path(where) if where and where != "off" else Path.home() / ".cache" / "loopbench"
    return base / "lightning"


def site(version: str | None) -> Path | None:
    """The folder to put first on the path for `version`, installed on first use; None: the installed one."""
    if version is None or version == installed():
        return None
    if is_path(version):
        return own_site(version)
    check(version)
    folder = cache_dir() / version
    needs = [folder / "pytorch_lightning" / "__init__.py"]
    needs += [folder / "pkg_resources" / "__init__.py"] if version in PKG_RESOURCES else []
    if all(p.is_file() for p in needs):
        return folder
    return install(version, folder)


def install(version: str, folder: Path) -> Path:
    """pip install --no-deps --require-hashes --target into a temporary folder, then moved into place."""
    requirements = [f"pytorch-lightning=={version} --hash=sha256:{RELEASES[version]}"]
    if version in PKG_RESOURCES:
        requirements.append(f"setuptools=={SETUPTOOLS[0]} --hash=sha256:{SETUPTOOLS[1]}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{version}-") as tmp:
        req = Path(tmp, "requirements.txt")
        req.write_text("\n".join(requirements) + "\n")
        target = Path(tmp, "site")
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--require-hashes", "--only-binary=:all:"]
        cmd += ["--no-input", "--disable-pip-version-check", "--target", str(target), "-r", str(req)]
        env = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}  # the tested set pins 2.6.6
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            reason = next((line for line in reversed(proc.stderr.strip().splitlines()) if line.strip()), "?")
            raise UsageError(
                f"--lightning {version}: installing it failed ({reason.strip()}); without network, install it by "
                f"hand: pip install --no-deps --target {folder} pytorch-lightning=={version}"
            )
        shutil.rmtree(folder, ignore_errors=True)
        target.rename(folder)
    return folder


def own_site(spec: str, flag: str = "--lightning") -> Path:
    """The folder to import a Lightning of one's own from: a folder holding `pytorch_lightning` as it is; a wheel,
    or a checkout of Lightning's sources (built as the `pytorch_lightning` package), installed once into the cache
    under a name that changes with the file or with the checkout's commit."""
    path = Path(spec).expanduser().resolve()
    if path.is_dir() and (path / "pytorch_lightning" / "__init__.py").is_file():
        return path
    if path.is_file() and path.suffix == ".whl":
        key = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        return _build(path, cache_dir() / f"wheel-{key}", {}, flag)
    if path.is_dir() and ((path / "setup.py").is_file() or (path / "pyproject.toml").is_file()):
        key = hashlib.sha256(f"{path}|{commit_of(spec)}".encode()).hexdigest()[:12]
        return _build(path, cache_dir() / f"checkout-{key}", {"PACKAGE_NAME": "pytorch"}, flag)
    raise UsageError(f"{flag} {spec}: not a release, nor a wheel, nor a folder holding pytorch_lightning or a "
                     "checkout of Lightning's sources")  # fmt: skip


def _build(source: Path, folder: Path, env: dict[str, str], flag: str) -> Path:
    """pip install --no-deps --target `folder` (no hashes: one's own file); reused while `folder` exists."""
    if (folder / "pytorch_lightning" / "__init__.py").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as tmp:
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-input",
               "--disable-pip-version-check", "--target", str(Path(tmp, "site")), str(source)]  # fmt: skip
        clean = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"} | env
        proc = subprocess.run(cmd, capture_output=True, text=True, env=clean, timeout=900)
        if proc.returncode != 0 or not Path(tmp, "site", "pytorch_lightning", "__init__.py").is_file():
            reason = next((x for x in reversed(proc.stderr.strip().splitlines()) if x.strip()), "no pytorch_lightning")
            raise UsageError(f"{flag} {source}: building it failed ({reason.strip()})")
        shutil.rmtree(folder, ignore_errors=True)
        Path(tmp, "site").rename(folder)
    return folder


def commit_of(spec: str | None) -> str | None:
    """The git commit of a Lightning of one's own (a checkout, or a folder inside one), with -dirty; else None."""
    if not spec or not is_path(spec) or not Path(spec).expanduser().is_dir():
        return None
    where = str(Path(spec).expanduser().resolve())
    run = lambda *a: subprocess.run(["git", "-C", where, *a], capture_output=True, text=True, timeout=10)  # noqa: E731
    try:
        head, status = run("rev-parse", "--short=12", "HEAD"), run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def path_env(version: str | None, env: dict[str, str]) -> dict[str, str]:
    """`env` with the release's folder first on PYTHONPATH (unchanged for the installed release), and the commit of
    a Lightning of one's own, which every result records."""
    folder = site(version)
    if folder is None:
        return env
    out = env | {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH")) if p)}
    if commit := commit_of(version):
        out["LOOPBENCH_LIGHTNING_COMMIT"] = commit
    if version in PKG_RESOURCES:  # their import of pkg_resources warns in every process: the note above says why
        out["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), QUIET) if w)
    return out
