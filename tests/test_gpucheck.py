"""The one-call GPU check's CPU side: its arguments, its plan, its budget; the steps themselves need a GPU."""

import subprocess
from pathlib import Path

import pytest

from loopbench import gpucheck

ROOT = Path(__file__).resolve().parent.parent


def test_plan_fits_the_checks_eight_minutes_and_eight_files():
    gpucheck.check_plan()
    assert sum(s.limit_s for s in gpucheck.STEPS) <= gpucheck.BUDGET_S == 480
    files = [*gpucheck.ALWAYS, *(f for s in gpucheck.STEPS for f in s.keeps)]
    assert len(files) <= gpucheck.MAX_FILES == 8
    with pytest.raises(AssertionError):
        gpucheck.check_plan((*gpucheck.STEPS, gpucheck.Step("more", "one step too many", 60, ("more.json",))))


def test_plan_runs_every_cuda_path_on_cuda(tmp_path):
    cmds = {s.name: gpucheck.commands(s, tmp_path, tmp_path) for s in gpucheck.STEPS}
    tests = cmds["tests"][0]
    assert tests[tests.index("-m", 2) + 1] == "gpu"  # pytest's marker selection: the gpu-marked tests
    assert {(c[c.index("--task") + 1], c[c.index("--precision") + 1]) for c in cmds["parity"]} == {
        (t, p) for t in ("mnist_gan", "efficientnet_binary", "cifar_cnn") for p in ("bf16-mixed", "16-mixed")
    }
    assert all(c[c.index("--device") + 1] == "cuda" for c in cmds["parity"] + cmds["probe"])
    bench = cmds["bench"][0]
    assert bench[bench.index("--lb-devices") + 1] == "cuda" and "--lb-probe-repeats" in bench
    assert "--clock" in cmds["clock"][0]


def test_plan_is_printed_and_bad_arguments_exit_2(tmp_path, capsys):
    assert gpucheck.main([str(tmp_path / "out"), "--plan"]) == 0
    shown = capsys.readouterr().out
    assert all(s.name in shown for s in gpucheck.STEPS) and "480" in shown
    assert gpucheck.main([]) == 2
    file = tmp_path / "a-file"
    file.write_text("")
    assert gpucheck.main([str(file)]) == 2 and "not a file" in capsys.readouterr().err


def test_the_script_refuses_in_one_line_without_a_folder_or_a_gpu(tmp_path):
    script = ROOT / "tools" / "gpu-check.sh"
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage" in usage.stderr
    import torch

    if not torch.cuda.is_available():
        no_gpu = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True)
        assert no_gpu.returncode == 2 and len(no_gpu.stderr.strip().splitlines()) == 1, no_gpu.stderr
