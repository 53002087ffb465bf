"""The one-call GPU check's CPU side: its plan and budget, each CUDA step up to where it needs the GPU, and what it
keeps of a step that overruns its limit; the steps themselves need a GPU."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from loopbench import gpucheck

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "cifar_cnn_smoke_results.json"


def test_plan_fits_the_checks_eight_minutes_and_eight_files():
    gpucheck.check_plan()
    assert sum(s.limit_s + gpucheck.GRACE_S for s in gpucheck.STEPS) <= gpucheck.BUDGET_S == 480
    files = [*gpucheck.ALWAYS, *(f for s in gpucheck.STEPS for f in s.keeps)]
    assert len(files) <= gpucheck.MAX_FILES == 8
    more = gpucheck.Step("more", "one step too many", 60, ("more.json",), lambda out, work: [])
    with pytest.raises(AssertionError):
        gpucheck.check_plan((*gpucheck.STEPS, more))


def test_plan_runs_every_cuda_path_on_cuda(tmp_path):
    cmds = {s.name: s.argv(tmp_path, tmp_path) for s in gpucheck.STEPS}
    assert {(t, p) for t, p in gpucheck.PARITY} == {
        (t, p) for t in ("mnist_gan", "efficientnet_binary", "cifar_cnn") for p in ("bf16-mixed", "16-mixed")
    }
    assert "--parity" in cmds["parity"][0] and "--clock" in cmds["clock"][0]
    probe = cmds["probe"][0]
    assert probe[probe.index("--device") + 1] == "cuda"
    bench = cmds["bench"][0]
    assert bench[bench.index("--lb-devices") + 1] == "cuda" and "--lb-probe-repeats" in bench


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="here the steps would run on the GPU")
def test_every_cuda_step_runs_here_up_to_the_gpu_and_stops_in_one_line(tmp_path):
    """Each step's own processes, as the check starts them: all the way to the first need of a GPU, then a
    refusal in one line (exit 2; pytest's usage error, 4, for the bench), never a traceback."""
    for step in gpucheck.STEPS:
        for cmd in step.argv(tmp_path, tmp_path):
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            assert done.returncode in (2, 4) and len(lines) == 1, (step.name, done.returncode, done.stderr[-2000:])
            assert "no CUDA device" in lines[0], (step.name, lines)


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
    if not torch.cuda.is_available():
        no_gpu = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True)
        assert no_gpu.returncode == 2 and len(no_gpu.stderr.strip().splitlines()) == 1, no_gpu.stderr


# A bench stand-in: it logs finished runs as the bench does, starts a grandchild in its group, then outlives its
# limit; with `deaf` it ignores SIGTERM too, and only SIGKILL ends it.
OVERRUN = """
import json, pathlib, signal, subprocess, sys, time
folder, deaf = pathlib.Path(sys.argv[1]), sys.argv[2] == "deaf"
folder.mkdir(parents=True, exist_ok=True)
runs = json.loads(pathlib.Path(sys.argv[3]).read_text())
(folder / "results.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in runs))
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print("grandchild", child.pid, flush=True)
if deaf:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(300)
"""


@pytest.mark.parametrize("deaf", [False, True])
def test_a_step_past_its_limit_is_stopped_with_its_group_and_leaves_a_rendered_report(tmp_path, deaf):
    def argv(out, work):
        return [[sys.executable, "-c", OVERRUN, str(work / "bench"), "deaf" if deaf else "hears", str(FIXTURE)]]

    step = gpucheck.Step("bench", "an overrunning stand-in", 4, ("REPORT.md", "results.json"), argv)
    out = tmp_path / "out"
    assert gpucheck.run(out, (step,), grace_s=2) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"][0]["codes"] == ["timeout"] and summary["steps"][0]["seconds"] < 30
    assert "## Parity" in (out / "REPORT.md").read_text() and (out / "results.json").is_file()
    pid = next(line.split()[1] for line in (out / "log.txt").read_text().splitlines() if line.startswith("grandchild"))
    status = Path(f"/proc/{pid}/status")  # the stand-in's own child went with its group
    assert not status.exists() or "zombie" in status.read_text().lower()
