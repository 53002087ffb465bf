"""Data parallel: plain DistributedDataParallel against Trainer(strategy="ddp"), two processes with gloo.

Both must train the same model bitwise on every process (per-step losses and final weights, each
process on its own shard), a nudged learning rate must come out a mismatch, and a run in which one
process dies or the parent is interrupted must leave no process behind. The GAN and CIFAR run again as a job of
two torchrun agents on 127.0.0.1 (two "nodes"): the same bits on every rank.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from pathlib import Path

import pytest
import torch

from implementations.settings import validate
from loopbench.analysis.parity import compare_cell
from loopbench.core.types import RunConfig, RunResult, UsageError
from loopbench.launch import agents, distributed
from loopbench.launch.distributed import merge, run_ranks, run_ranks_batch
from loopbench.report import collectives as collectives_report

needs_two_cores = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPU cores")
needs_torchrun = pytest.mark.skipif(agents.torchrun() is None, reason="torchrun not installed")


CELLS = [("cifar_cnn", "32-true", 6), ("mnist_gan", "bf16-mixed", 6), ("efficientnet_binary", "32-true", 3)]
TWO_NODES = ("mnist_gan", "cifar_cnn")  # the tasks also run as two torchrun nodes
NUDGED = {"lr": 0.2 * 1.001}  # CIFAR's plain loop with a nudged learning rate: the comparison is blind to who trained


@pytest.mark.heavy
@pytest.mark.slow
@needs_two_cores
def test_plain_lightning_and_fabric_ddp_train_the_same_model_on_every_process_on_one_node_and_two_not_a_nudged_lr():
    """Every task's plain, Lightning and Fabric cells, and the control, in one batch: two processes that start once.
    Then the GAN's and CIFAR's plain and Lightning cells as a job of two torchrun agents ("nodes"): the same bits."""
    plain = [RunConfig(t, "pytorch", precision=p, steps=n, processes=2, collectives=True) for t, p, n in CELLS]
    nudged = dataclasses.replace(plain[0], overrides=NUDGED)
    others = [dataclasses.replace(c, impl=impl) for impl in ("lightning", "fabric") for c in plain]
    # the control last: a plain cell after Lightning's, whose teardown edits the environment
    results = run_ranks_batch([*plain, *others, nudged], timeout_s=600)
    assert all(r.ok for r in results), [r.message for r in results if not r.ok]
    for config, candidate in zip(others, results[len(plain) : -1], strict=True):
        reference = results[[c.task for c in plain].index(config.task)]
        report = compare_cell(reference, candidate)
        assert report.verdict == "bitwise" and report.holds, (config.task, config.impl, report.line())
        assert report.details == {"processes": 2} and "on each of 2 processes" in report.line()
        assert [r["rank"] for r in reference.ranks] == [0, 1]
        assert reference.ranks[0]["losses"] != reference.ranks[1]["losses"]  # each process trains on its own shard
        timed = config.steps - reference.warmup_steps
        assert reference.samples_per_s == pytest.approx(2 * reference.batch_size * timed / reference.window_s)
    control = compare_cell(results[0], results[-1])
    assert control.verdict == "mismatch" and not control.holds
    if needs_torchrun.args[0]:
        pytest.skip("torchrun is not installed: the two-node half did not run")
    local = {(r.config["task"], r.config["impl"]): r for r in results[:-1]}
    cells = [
        dataclasses.replace(local[t, i].run_config, processes=1) for t in TWO_NODES for i in ("pytorch", "lightning")
    ]
    _two_torchrun_nodes_train_the_local_bits(cells, local)


def _two_torchrun_nodes_train_the_local_bits(cells: list[RunConfig], local: dict[tuple[str, str], RunResult]) -> None:
    results = agents.run_local_agents(cells, 300)
    assert all(r.ok for r in results), [r.message for r in results]
    for plain, lightning in zip(results[::2], results[1::2], strict=True):
        assert (plain.run_config.nodes, plain.run_config.processes, plain.run_config.launcher) == (2, 1, "torchrun")
        report = compare_cell(plain, lightning)
        assert report.verdict == "bitwise" and "on each of 2 processes" in report.line(), report.line()
    for two_nodes in results:
        one_node = local[two_nodes.config["task"], two_nodes.config["impl"]]
        assert [r["weights_digest"] for r in two_nodes.ranks] == [r["weights_digest"] for r in one_node.ranks]
        assert [r["losses"] for r in two_nodes.ranks] == [r["losses"] for r in one_node.ranks]
        assert two_nodes.collectives["calls_per_step"] == one_node.collectives["calls_per_step"]
    # the process group's own record: the GAN's one DDP around both nets reduces both nets' gradients in each of
    # its two backwards, where the plain loop's two DDPs reduce one net's each; and Lightning's flag broadcast per batch
    gan = {r.config["impl"]: r.collectives["calls_per_step"] for r in results if r.config["task"] == "mnist_gan"}
    assert gan == {"pytorch": {"gloo:all_reduce": 2.0}, "lightning": {"gloo:all_reduce": 4.0, "gloo:broadcast": 1.0}}
    report = collectives_report.table([*results, *local.values()])
    two = report[(report["task"] == "mnist_gan") & (report["nodes x processes"] == "2 x 1")]
    row = two[two["implementation"] == "lightning"].iloc[0]
    assert (row["collectives per step"], row["vs one node"], row["parity vs plain"]) == (
        "all_reduce 4, broadcast 1", "bitwise", "bitwise")  # fmt: skip


def test_a_batch_runs_cells_of_one_process_count_and_release():
    with pytest.raises(ValueError, match="one process count and one Lightning release"):
        run_ranks_batch([RunConfig("cifar_cnn", "pytorch", processes=2), RunConfig("cifar_cnn", "pytorch")], 10)


def _session_members(sid: int) -> list[int]:
    """The processes still alive in session `sid` (each rank runs in its own)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@pytest.mark.slow
@needs_two_cores
def test_a_killed_process_fails_the_run_with_its_reason_and_leaves_no_process(monkeypatch):
    monkeypatch.setattr(distributed, "GRACE_S", 1.0)
    started: list = []

    def kill_rank_1(procs):
        started.extend(procs)
        threading.Timer(4.0, lambda: os.kill(procs[1].pid, signal.SIGKILL)).start()

    result = run_ranks(RunConfig("cifar_cnn", "pytorch", processes=2, steps=100_000), 300, on_start=kill_rank_1)
    assert result.status == "oom" and result.message.startswith("rank 1: oom: killed by SIGKILL"), result.message
    assert "; rank 0: error: " in result.message  # its collective broke, or the launcher stopped it
    assert [r["status"] for r in result.ranks] == ["error", "oom"]
    for proc in started:
        assert proc.poll() is not None and not _session_members(proc.pid)


@pytest.mark.slow
@needs_two_cores
def test_a_hung_process_times_the_run_out_and_leaves_no_process():
    """Rank 1 stopped before it joins: rank 0 waits for it in the rendezvous until the run's time is up."""
    started: list = []

    def stop_rank_1(procs):
        started.extend(procs)
        os.kill(procs[1].pid, signal.SIGSTOP)

    result = run_ranks(RunConfig("cifar_cnn", "pytorch", processes=2, steps=100_000), 4, on_start=stop_rank_1)
    assert result.status == "timeout" and result.message.startswith("rank 0: timeout: no result after 4 s")
    assert [r["status"] for r in result.ranks] == ["timeout", "timeout"]
    for proc in started:
        assert proc.poll() is not None and not _session_members(proc.pid)


@needs_two_cores
def test_an_interrupted_parent_stops_every_process():
    started: list = []

    def interrupt(procs):
        started.extend(procs)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_ranks(RunConfig("cifar_cnn", "pytorch", processes=2, steps=100_000), 300, on_start=interrupt)
    for proc in started:
        assert proc.poll() is not None and not _session_members(proc.pid)


def _rank(times: list[float], losses: list[float], rss: int, status: str = "ok", message: str = "") -> RunResult:
    config = RunConfig("cifar_cnn", "pytorch", processes=2)
    return RunResult(
        config=config.to_dict(),
        status=status,
        message=message,
        losses={"loss": losses},
        step_times_s=times,
        warmup_steps=1,
        batch_size=8,
        window_s=sum(times[1:]),
        end_to_end_s=5.0 + rss,
        job_s=5.0,
        host_step_time_median_s=0.1,
        cpu_share=0.9,
        peak_rss_bytes=rss,
        weights_digest=f"w{rss}",
    )


def test_merge_takes_the_slowest_process_per_step_global_throughput_and_the_largest_memory():
    config = RunConfig("cifar_cnn", "pytorch", processes=2)
    merged = merge(config, [_rank([9, 1, 3, 1], [0.5] * 4, 10), _rank([9, 2, 1, 1], [0.7] * 4, 20)])
    assert merged.ok and merged.step_times_s == [9, 2, 3, 1] and merged.step_time_median_s == 2
    assert merged.window_s == 5 and merged.samples_per_s == pytest.approx(2 * 8 * 3 / 5)
    assert merged.peak_rss_bytes == 20 and merged.end_to_end_s == 25
    assert [r["weights_digest"] for r in merged.ranks] == ["w10", "w20"]
    assert merged.losses == {"loss": [0.5] * 4}  # rank 0's; every rank's in `ranks`


def test_merge_names_the_process_that_failed_first():
    config = RunConfig("cifar_cnn", "pytorch", processes=2)
    stopped = RunResult.failed(config, "error", "stopped: another process of the run had failed")
    merged = merge(config, [stopped, RunResult.failed(config, "oom", "CUDA out of memory")], ended=[1, 0])
    assert merged.status == "oom"
    assert (
        merged.message
        == "rank 1: oom: CUDA out of memory; rank 0: error: stopped: another process of the run had failed"
    )


two_gpus = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA devices"
)


@pytest.mark.gpu
@two_gpus
@pytest.mark.parametrize("task", ["cifar_cnn", "mnist_gan", "efficientnet_binary"])
def test_on_two_gpus_plain_ddp_and_lightning_ddp_agree_within_the_cuda_tolerance(task):
    runs = [
        run_ranks(RunConfig(task, impl, device="cuda", precision="bf16-mixed", steps=6, processes=2), 600)
        for impl in ("pytorch", "lightning")
    ]
    assert all(r.ok for r in runs), [r.message for r in runs]
    assert compare_cell(*runs).holds, compare_cell(*runs).line()
    assert all(r["peak_cuda_allocated_bytes"] for r in runs[0].ranks)  # each process measured its own GPU


@pytest.mark.gpu
@two_gpus
def test_on_two_gpus_the_trainers_flag_broadcast_is_one_host_device_sync_more_each_batch():
    """Lightning's per-batch "SIGTERM received" flag is read on the host (`.item()`): a sync the plain loop lacks."""
    plain, lightning = (
        run_ranks(RunConfig("mnist_gan", impl, device="cuda", steps=12, processes=2, collectives=True), 600)
        for impl in ("pytorch", "lightning")
    )
    assert plain.ok and lightning.ok, (plain.message, lightning.message)
    broadcasts = [n for name, n in lightning.collectives["calls_per_step"].items() if name.endswith("broadcast")]
    assert broadcasts == [1.0], lightning.collectives
    assert lightning.collectives["syncs_per_step"] >= plain.collectives["syncs_per_step"] + 1, (
        plain.collectives,
        lightning.collectives,
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() != 1, reason="needs exactly 1 GPU")
def test_with_one_gpu_two_processes_are_refused():
    with pytest.raises(UsageError, match="1 GPU\\(s\\) visible, and each process needs its own"):
        validate(RunConfig("cifar_cnn", "pytorch", device="cuda", processes=2))
