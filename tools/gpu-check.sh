#!/usr/bin/env bash
# The one command for a GPU machine: every CUDA path of the suite once, in at most 8 minutes, into OUTDIR
# (at most 8 files; summary.json says what each step did). Needs torch, Lightning and the test tools
# installed, and no network: wheels missing there travel in the repository's .whl/ folder and install
# from it with --no-index. A copy without .git names its commit in LOOPBENCH_COMMIT (docs/gpu.md).
#
#   LOOPBENCH_COMMIT=<sha> tools/gpu-check.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 1 ]; then
  echo "usage: tools/gpu-check.sh OUTDIR" >&2
  exit 2
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/loopbench-site .whl/*.whl
  export PYTHONPATH="/tmp/loopbench-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 LOOPBENCH_INSTRUCTIONS=off
if ! python3 -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('torch') and u.find_spec('pytorch_lightning')))"; then
  echo "gpu-check: $(command -v python3) cannot import torch and pytorch_lightning: run it where they are installed" >&2
  exit 2
fi
if [ -z "${LOOPBENCH_COMMIT:-}" ] && ! git rev-parse HEAD >/dev/null 2>&1; then
  echo "gpu-check: no .git here and LOOPBENCH_COMMIT unset: every result will say commit 'unknown'" >&2
fi
exec python3 -m loopbench.gpucheck "$1"
