"""What a run records about itself: the digest of its weights, and the machine, versions and commit it ran on."""

from __future__ import annotations

import datetime
import functools
import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of every tensor: equal digests = bitwise-equal weights."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# The instruction-set features that decide how fast (and in which kernels) float16/bfloat16 run on a CPU.
NUMBER_FORMAT_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_fp16",
    "amx_int8",
)


def code_digest(root: Path, paths: tuple[str, ...]) -> str:
    """SHA-256 (first 16 hex digits) over the Python files at `paths` under `root` (files, or folders' *.py)."""
    h = hashlib.sha256()
    for p in paths:
        for f in sorted((root / p).rglob("*.py")) if (root / p).is_dir() else [root / p]:
            h.update(f"{f.relative_to(root)}|".encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _cpuinfo(key: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_number_formats() -> list[str]:
    """Which of NUMBER_FORMAT_FLAGS this CPU has (from /proc/cpuinfo), in that order."""
    flags = set((_cpuinfo("flags") or "").split())
    return [f for f in NUMBER_FORMAT_FLAGS if f in flags]


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def commit() -> str:
    """The commit of the code that ran, with '-dirty' when the tree had uncommitted changes."""
    head, dirty = _tree()
    sha = os.environ.get("LOOPBENCH_COMMIT") or head
    if not sha:
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


CODE = (":/loopbench", ":/implementations")  # the measured code's folders, from the top of the checkout


@functools.cache
def _tree() -> tuple[str | None, bool]:
    """HEAD and whether the code's folders differ from it, asked of git once a process (the code it loaded)."""
    status = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE)
    return _git("rev-parse", "--short=12", "HEAD"), bool(status)


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def default_progress_bar() -> str:
    """The progress bar a default Trainer shows, with its version: rich's where rich (>= 10.2.2) is installed, else
    tqdm's (Lightning's own choice). It runs every step, so it decides part of the default Trainer's cost."""
    rich = _version("rich")
    if rich and tuple(int(p) for p in re.findall(r"\d+", rich)[:3]) >= (10, 2, 2):
        return f"rich {rich}"
    return f"tqdm {_version('tqdm')}"


def lightning_version() -> str | None:
    """The Lightning this process imported (its own __version__), else the one it would import."""
    module = sys.modules.get("pytorch_lightning")
    return getattr(module, "__version__", None) if module else _version("pytorch-lightning")


def environment(device: torch.device) -> dict[str, Any]:
    """Machine, versions and commit: recorded beside every number.

    Versions come from package metadata, not imports: a plain-PyTorch run must not load Lightning
    (its memory would be charged to the wrong side).
    """
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "pytorch_lightning": lightning_version(),
        "lightning_commit": os.environ.get("LOOPBENCH_LIGHTNING_COMMIT"),  # a Lightning of one's own (--lightning PATH)
        "progress_bar": default_progress_bar(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_number_formats(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the kernels torch dispatches to
        "torch_threads": torch.get_num_threads(),
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),  # the allocator's settings (RunConfig.allocator)
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "gpu": None,
        "cuda": torch.version.cuda,
    }
    if device.type == "cuda":
        env |= cuda_environment(device)
    return env


def cuda_environment(device: torch.device) -> dict[str, Any]:
    """What places a GPU number: the GPU, its driver and libraries, and the settings that change which kernels run
    (TF32 for float32 matrix products and convolutions, cuDNN's autotuner, deterministic algorithms)."""
    props = torch.cuda.get_device_properties(device)
    return {
        "gpu": props.name,
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "gpu_capability": f"{props.major}.{props.minor}",
        "gpu_driver": _driver(),
        "cudnn": torch.backends.cudnn.version(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


@functools.cache
def _driver() -> str | None:
    """The NVIDIA driver's version, as nvidia-smi reports it (None where it is not there)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def machine_name(env: dict[str, Any]) -> str:
    """A folder name for reports: the GPU if one was used, else the CPU, its cores and best number format.

    Two CPUs of one brand name can differ in what matters here (an Intel Xeon with AVX-512 FP16 and one
    without), so the CPU's best float16/bfloat16 feature is part of the name.
    """
    if env.get("gpu"):
        raw = env["gpu"]
    else:
        model = env.get("cpu", "cpu")
        for noise in ("(R)", "(TM)", "(tm)", "Processor", "CPU"):
            model = model.replace(noise, " ")
        model = model.split("@")[0]
        flags = env.get("cpu_flags") or []
        best = next(
            (f for f in ("amx_fp16", "avx512_fp16", "amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags), ""
        )
        raw = f"{model}-{env.get('cpu_count')}c-{best.replace('_', '')}"
    slug = "".join(c if c.isalnum() else "-" for c in raw.lower())
    return "-".join(part for part in slug.split("-") if part)
