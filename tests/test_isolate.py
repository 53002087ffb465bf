import dataclasses

import pytest

from loopbench.core.types import RunConfig
from loopbench.launch.isolate import run_isolated
from tests.helpers import train


@pytest.mark.slow
def test_isolated_run_gives_the_in_process_result_and_a_task_segment_forked_from_the_server_too():
    from loopbench.launch.forked import run_forked

    config = RunConfig("cifar_cnn", "lightning", steps=6, warmup_steps=2)
    isolated = run_isolated(config, timeout_s=300)  # a process of its own, as the suite's fresh runs
    assert isolated.ok, isolated.message
    in_process = train("cifar_cnn", "lightning", steps=6, warmup_steps=2)
    assert isolated.losses == in_process.losses
    assert isolated.weights_digest == in_process.weights_digest
    assert isolated.env["torch"] and isolated.peak_rss_bytes > isolated.rss_at_start_bytes > 0
    segment = run_forked(dataclasses.replace(config, slot=2), timeout_s=300)  # a round's segment: steps only
    assert segment.ok and segment.losses == isolated.losses and segment.weights_digest == isolated.weights_digest
    assert set(isolated.metrics) == {"test_loss", "test_accuracy"} and segment.metrics == {}


def test_a_hung_cell_is_recorded_as_a_timeout():
    result = run_isolated(RunConfig("cifar_cnn", "pytorch"), timeout_s=0.05)
    assert result.status == "timeout" and "killed" in result.message


def test_a_failing_cell_is_recorded_as_an_error():
    result = run_isolated(RunConfig("cifar_cnn", "pytorch", preset="nope"), timeout_s=300)
    assert result.status == "error" and "unknown preset 'nope'" in result.message


def test_an_unsupported_cell_is_recorded_as_unsupported(monkeypatch):
    from loopbench.core import checks
    from loopbench.launch import cell as harness

    monkeypatch.setattr(checks, "cpu_autocast_works", lambda dtype: False)  # a build without CPU float16
    result = harness.run_cell(RunConfig("cifar_cnn", "lightning", precision="16-mixed"))
    assert result.status == "unsupported" and "cannot autocast to float16" in result.message


@pytest.mark.slow
def test_a_plain_pytorch_run_never_imports_lightning():
    """Its memory and start-up must be its own: Lightning is loaded only by the Lightning cells."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from loopbench.launch.cell import run_cell\n"
        "from loopbench.core.types import RunConfig\n"
        "for task in ('mnist_gan', 'efficientnet_binary', 'cifar_cnn'):\n"
        "    assert run_cell(RunConfig(task, 'pytorch', steps=3)).ok\n"
        "print(sorted(m for m in sys.modules if 'lightning' in m and 'utilities' not in m))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
