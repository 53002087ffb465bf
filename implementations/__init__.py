"""The code under comparison. The harness knows tasks only through this registry.

A task is a package `implementations/<task>/` with
  spec.py            Config (frozen dataclass), PRESETS, build_data(cfg, source), the models, loss,
                     optimizer/scheduler factories and evaluate(): everything both loops share;
  pytorch_loop.py    def train(cfg, run) -> RunResult, a plain PyTorch loop;
  lightning_loop.py  def train(cfg, run) -> RunResult, a LightningModule + Trainer;
  fabric_loop.py     optional: def train(cfg, run) -> RunResult, the plain loop with Lightning Fabric's plumbing.
A task from outside this package has the same three files: named by its folder's path (`--task path/to/task`,
its loops importing their spec as `from . import spec`), or by a name an installed distribution registers in
the entry-point group `loopbench.tasks` (the value: the importable package holding the three files).
Imports are lazy so that the CLI answers --help and bad input without loading Lightning.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from loopbench.core.trainers import FABRIC, TRAINERS

TASKS = ("mnist_gan", "efficientnet_binary", "cifar_cnn")  # the default matrix
PROBES = ("overhead_probe",)  # jobs that measure the framework itself; runnable by name, not in the matrix
OWN = ("module",)  # a user's own LightningModule, named by its factory (`loopbench module PKG.MOD:FACTORY`)
RUNNABLE = TASKS + PROBES + OWN
IMPLS = {  # the default matrix
    "pytorch": "pytorch_loop",
    "lightning": "lightning_loop",  # lean Trainer: the fair comparison
    "lightning-defaults": "lightning_loop",  # the Trainer as a new user gets it, with self.log
    FABRIC: "fabric_loop",  # the plain loop on Fabric: optional, so a task without one runs the others
}
# Every Trainer of loopbench.core.trainers runs the same LightningModule: the ladder's variants too, by name.
ALL_IMPLS = IMPLS | {name: "lightning_loop" for name in TRAINERS}


ENTRY_POINTS = "loopbench.tasks"
FILES = ("spec.py", "pytorch_loop.py", "lightning_loop.py")


def is_folder(task: str) -> bool:
    """Is `task` a folder's path (it names a separator or starts with a dot), not a task's name?"""
    return os.sep in task or task.startswith(".")


def task_name(text: str) -> str:
    """A task as given on the command line: a name as it is, a folder as its absolute path (so that the runs'
    processes and a later report find it wherever they start)."""
    return str(Path(text).expanduser().resolve()) if is_folder(text) else text


def short_name(task: str) -> str:
    """A task's name in file names: a folder's own name, else the task's."""
    return Path(task).name if is_folder(task) else task


def _registered() -> dict[str, str]:
    return {e.name: e.value for e in importlib.metadata.entry_points(group=ENTRY_POINTS)}


def problem(task: str) -> str | None:
    """Why `task` names no task (one line), or None."""
    if is_folder(task):
        missing = [f for f in FILES if not (Path(task) / f).is_file()]
        if not Path(task).is_dir():
            return f"--task {task}: no such folder"
        if missing:
            return f"--task {task}: a task folder holds {', '.join(FILES)}; missing {', '.join(missing)}"
        return None
    if task in RUNNABLE or task in _registered():
        return None
    return f"unknown task {task!r}; choose from {', '.join([*RUNNABLE, *_registered()])}, or name a task's folder"


def _package(task: str) -> str:
    """The importable package of a task: ours, a registered one, or a folder loaded as a package of its own."""
    if task in RUNNABLE:
        return f"implementations.{task}"
    if not is_folder(task):
        return _registered()[task]
    folder = Path(task).resolve()
    name = f"loopbench_task_{folder.name}_{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}"
    if name not in sys.modules:  # a package without __init__.py: its loops import `from . import spec`
        found = importlib.util.spec_from_loader(name, loader=None, is_package=True)
        found.submodule_search_locations = [str(folder)]
        sys.modules[name] = importlib.util.module_from_spec(found)
    return name


def spec(task: str) -> ModuleType:
    reason = problem(task)
    if reason:
        raise KeyError(reason)
    return importlib.import_module(f"{_package(task)}.spec")


def train_fn(task: str, impl: str) -> Callable:
    spec(task)
    if reason := impl_problem(task, impl):
        raise KeyError(reason)
    return importlib.import_module(f"{_package(task)}.{ALL_IMPLS[impl]}").train


def impl_problem(task: str, impl: str) -> str | None:
    """Why `task` cannot run `impl` (one line), or None. An optional loop (Fabric's) may be missing."""
    if impl not in ALL_IMPLS:
        return f"unknown implementation {impl!r}; choose from {', '.join(ALL_IMPLS)}"
    if importlib.util.find_spec(f"{_package(task)}.{ALL_IMPLS[impl]}") is None:
        return f"task {short_name(task)} has no {impl} implementation ({ALL_IMPLS[impl]}.py)"
    return None
