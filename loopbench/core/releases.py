"""Lightning releases other than the installed one, installed on first use, hash-checked, into a cache.

A run whose `lightning` is set imports that release first on its path (a fresh or forked process
with the release's folder at the front of PYTHONPATH); every result records the version it really
imported. Releases install with `pip install --no-deps --require-hashes --target DIR` against the
installed torch, only from the list below, each with the sha256 of its wheel as PyPI serves it. 2.6.2
and 2.6.3 were malicious uploads (April 2026), withdrawn from PyPI: never installed.
"""

from __future__ import annotations

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


def check(version: str, flag: str = "--lightning") -> None:
    """A release loopbench may install (or the installed one); UsageError in one line otherwise."""
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


def path_env(version: str | None, env: dict[str, str]) -> dict[str, str]:
    """`env` with the release's folder first on PYTHONPATH (unchanged for the installed release)."""
    folder = site(version)
    if folder is None:
        return env
    out = env | {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), env.get("PYTHONPATH")) if p)}
    if version in PKG_RESOURCES:  # their import of pkg_resources warns in every process: the note above says why
        out["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), QUIET) if w)
    return out
