"""What a first GPU run will do, tested here with CUDA reported visible: the plan, the launchers, the verdicts.

No GPU is needed: each test says in its name that it tests the plan (or a verdict on made-up results); the
`gpu`-marked tests and tools/gpu-check.sh run the same paths on a real device.
"""

import dataclasses

import pytest
import torch

from loopbench.analysis import parity
from loopbench.core.store import run_key
from loopbench.core.types import RunConfig, RunResult
from loopbench.harness.placement import rank_device
from loopbench.launch import forked
from loopbench.launch import valgrind as instructions
from loopbench.studies import batches
from loopbench.studies.suite import MAX_SEGMENT_STEPS, SEGMENT_S, Matrix, default_devices, size_segments

CUDA = Matrix(("mnist_gan", "cifar_cnn"), devices=("cuda",), repeats=2, probe_repeats=2, probe_count=True,
              task_counts=True)  # fmt: skip


@pytest.fixture
def cuda_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_plan_defaults_to_cuda_when_a_gpu_is_reported(cuda_visible):
    assert default_devices() == ("cuda",)


@pytest.mark.parametrize(("device", "index"), [("cuda", 0), ("cuda:1", 1)])
def test_plan_sets_a_single_gpu_cells_device_through_torchs_own_index_check(monkeypatch, device, index):
    chosen = []  # torch.cuda.set_device's index check runs for real; only the driver call is replaced
    monkeypatch.setattr(torch._C, "_cuda_setDevice", chosen.append, raising=False)
    torch.cuda.set_device(rank_device(RunConfig("cifar_cnn", "pytorch", device)))
    assert chosen == [index]


def test_plan_puts_no_instruction_count_on_a_cuda_cell():
    cells = CUDA.cells()
    assert any(c.task == "overhead_probe" for c in cells) and any(c.slot > 0 for c in cells)
    assert not [c for c in cells if c.clock == "instructions"]
    both = dataclasses.replace(CUDA, devices=("cpu", "cuda"))
    counted = {c.device for c in both.cells() if c.clock == "instructions"}
    assert counted == {"cpu"}  # the CPU's cells are still counted beside a GPU's


def test_plan_refuses_a_cuda_count_without_starting_valgrind():
    config = RunConfig("overhead_probe", "pytorch", "cuda", clock="instructions")
    [result] = instructions.count([config], 10)
    assert result.status == "unsupported" and result.message == instructions.CPU_ONLY


def test_plan_sizes_cuda_segments_by_time_and_cpu_segments_by_steps():
    segments = [c for c in CUDA.cells() if c.slot > 0 and c.task == "cifar_cnn"]
    assert segments and all(c.segment_s == SEGMENT_S for c in segments)
    cpu = dataclasses.replace(CUDA, devices=("cpu",))
    assert all(c.segment_s is None for c in cpu.cells() if c.slot > 0)
    c = segments[0]
    warmup, least = c.warmup_steps, c.steps - c.warmup_steps
    assert size_segments([c], 1e-3)[0].steps == warmup + round(SEGMENT_S / 1e-3)  # 1 ms steps: 500 timed
    assert size_segments([c], 10.0)[0].steps == c.steps  # a slow step: the planned steps, at least
    assert size_segments([c], 1e-7)[0].steps == warmup + MAX_SEGMENT_STEPS
    assert size_segments([c], None)[0] == c and least >= 1
    assert run_key(size_segments([c], 1e-3)[0].to_dict()) == run_key(c.to_dict())  # resume finds it done


def test_a_users_job_is_never_timed_past_its_own_length():
    """Segments sized by time stop at the length its plain fresh run trained, where the task says so (a user's
    module, which may diverge or end its schedule past it); the suite's tasks go on to MAX_SEGMENT_STEPS."""
    c = RunConfig("module", "pytorch", steps=15, warmup_steps=5, slot=1, segment_s=SEGMENT_S)
    assert size_segments([c], 1e-4)[0].steps == 5 + MAX_SEGMENT_STEPS
    assert size_segments([c], 1e-4, job_steps=200)[0].steps == 200
    fresh = {"task": "module", "overrides": {"factory": "examples.demos.factories:boring"}}
    runs = [RunResult(config=RunConfig(impl=i, **fresh).to_dict(), steps_run=200) for i in ("pytorch", "lightning")]
    gan = RunResult(config=RunConfig("mnist_gan", "pytorch").to_dict(), steps_run=120)
    assert list(batches.job_lengths([*runs, gan]).values()) == [200]


def test_plan_reads_the_plain_step_of_each_cell_from_its_fresh_run():
    fresh = RunResult(config=RunConfig("cifar_cnn", "pytorch", "cuda").to_dict(), step_time_median_s=0.002)
    segment = RunResult(config=RunConfig("cifar_cnn", "pytorch", "cuda", slot=1).to_dict(), step_time_median_s=9.0)
    found = batches.plain_step_times([fresh, segment])
    assert list(found.values()) == [0.002]


def test_plan_starts_cuda_rounds_in_a_fresh_process_never_forked(monkeypatch):
    started = []
    monkeypatch.setattr(forked, "run_isolated_batch", lambda configs, timeout_s: started.append(configs) or [])
    monkeypatch.setattr(forked, "_run_batch", lambda *a: pytest.fail("a CUDA round was sent to the fork server"))
    round_ = [RunConfig("cifar_cnn", impl, "cuda:0", slot=i) for i, impl in enumerate(("pytorch", "lightning"), 1)]
    forked.run_forked_batch(round_)
    assert started == [round_]
    assert forked.forkable([RunConfig("cifar_cnn", "pytorch", "cpu", slot=1)])


def _job(impl: str, device: str, val: list[dict], best: int, loss: float = 1.0) -> RunResult:
    return RunResult(
        config=RunConfig("cifar_cnn", impl, device, "bf16-mixed").to_dict(),
        losses={"loss": [loss, loss / 2]},
        val_metrics=val,
        best_epoch=best,
        best_weights_digest=f"{impl}-best",
        weights_digest=f"{impl}-final",
    )


VAL = [{"val_loss": 0.50, "val_acc": 0.80}, {"val_loss": 0.40, "val_acc": 0.85}, {"val_loss": 0.40001, "val_acc": 0.85}]


def test_verdict_cuda_whole_job_holds_within_the_tolerance():
    plain = _job("pytorch", "cuda", VAL, best=2)
    near = [{k: v * (1 + 1e-3) for k, v in epoch.items()} for epoch in VAL]  # last bits of atomics, amplified
    # the last two epochs tie within the tolerance: keeping either one is the same choice
    p = parity.compare_cell(plain, _job("lightning", "cuda", near, best=3, loss=1.0 + 1e-4))
    assert p.expected == "within_tolerance" and p.verdict == "within_tolerance" and p.holds, p.line()


def test_verdict_cuda_whole_job_fails_outside_the_tolerance():
    plain = _job("pytorch", "cuda", VAL, best=2)
    off = [dict(epoch, val_acc=epoch["val_acc"] * 1.2) for epoch in VAL]  # positive control: other metrics
    assert not parity.compare_cell(plain, _job("lightning", "cuda", off, best=2)).holds
    # and a best epoch that is not a tie: epoch 1 is far from epoch 2
    assert not parity.compare_cell(plain, _job("lightning", "cuda", VAL, best=1)).holds


def test_verdict_cpu_whole_job_still_needs_equal_metrics_and_best_epoch():
    plain = _job("pytorch", "cpu", VAL, best=2)
    same_bits = _job("lightning", "cpu", VAL, best=3)
    same_bits.best_weights_digest = plain.best_weights_digest = "same"
    same_bits.weights_digest = plain.weights_digest = "same"
    assert not parity.compare_cell(plain, same_bits).holds  # a tie within 1e-4 is not bitwise
    same_bits.best_epoch = 2
    assert parity.compare_cell(plain, same_bits).holds


def _cuda(losses, weights=(1.0, 2.0), impl="pytorch"):
    w = {"w": torch.tensor(weights)}
    config = RunConfig("cifar_cnn", impl, "cuda", "bf16-mixed").to_dict()
    return RunResult(config=config, losses={"loss": list(losses)}, weights=w, weights_digest=str(weights),
                     task_config={"lr": 0.1})  # fmt: skip


def test_verdict_cuda_a_tolerance_blind_to_a_nudged_job_does_not_hold():
    ref, cand = _cuda([2.0, 1.0]), _cuda([2.0, 1.0001], impl="lightning")
    blind = parity.with_control(parity.compare_cell(ref, cand), parity.compare_cell(ref, _cuda([2.0, 1.0002])),
                                parity.compare_cell(ref, _cuda([2.0, 1.00001])))  # fmt: skip
    assert blind.verdict == "within_tolerance" and not blind.holds and "NOT RESOLVED" in blind.line()
    assert blind.control["noise_max_rel_loss_diff"] == pytest.approx(1e-5)
    caught = parity.with_control(parity.compare_cell(ref, cand), parity.compare_cell(ref, _cuda([2.0, 1.1])),
                                 parity.compare_cell(ref, ref))  # fmt: skip
    assert caught.holds and caught.control["caught"] and "as it must be" in caught.line()


def test_verdict_cuda_weights_count_under_the_tolerance_too():
    ref = _cuda([2.0, 1.0])
    assert parity.compare_cell(ref, _cuda([2.0, 1.0], (1.0, 2.001), impl="lightning")).holds  # 5e-4 of 2.0
    off = parity.compare_cell(ref, _cuda([2.0, 1.0], (1.0, 2.2), impl="lightning"))  # a tenth of the largest weight
    assert off.verdict == "mismatch" and off.max_rel_weight_diff == pytest.approx(0.1) and not off.holds


def test_plan_parity_control_reruns_the_reference_and_nudges_the_candidates_learning_rate():
    from loopbench.commands.cells import controlled

    asked = []

    def run(config):
        asked.append(config)
        return _cuda([2.0, 1.5], impl=config.impl)

    ref, cand = _cuda([2.0, 1.0]), _cuda([2.0, 1.0], impl="lightning")
    controlled(parity.compare_cell(ref, cand), run, ref, cand)
    nudged, again = asked
    assert nudged.impl == "lightning" and nudged.overrides["lr"] == pytest.approx(0.1 * parity.CONTROL_LR)
    assert again.impl == "pytorch" and not again.overrides


def test_plan_counts_one_warm_up_steps_flops_on_a_fresh_cuda_run_only():
    from loopbench.harness.placement import counts_device_work
    from loopbench.measure.device_work import OneStep, peak_flops

    class Cfg:
        warmup_steps = 2

    assert counts_device_work(RunConfig("cifar_cnn", "pytorch", "cuda"), Cfg)
    assert not counts_device_work(RunConfig("cifar_cnn", "pytorch", "cuda", slot=1), Cfg)
    assert not counts_device_work(RunConfig("cifar_cnn", "pytorch", "cpu"), Cfg)
    one = OneStep(torch.device("cpu"))  # the counting itself, on the CPU: a 64x32 @ 32x16 product
    one.start()
    torch.randn(64, 32) @ torch.randn(32, 16)
    assert one.stop() == {"flops_per_step": 2 * 64 * 32 * 16, "kernel_s_per_step": None}
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16-mixed", False) == ("bf16", 989.4e12)
    assert peak_flops("NVIDIA H100 80GB HBM3", "32-true", False)[0] == "fp32"
    assert peak_flops("a GPU nobody listed", "bf16-mixed", False) is None


def test_verdict_cuda_report_gives_flops_mfu_and_flags_a_host_bound_cell():
    from loopbench.report.gpu import gpu_notes
    from loopbench.report.tables import summary

    def run(impl, kernel_s):
        config = RunConfig("cifar_cnn", impl, "cuda", "bf16-mixed").to_dict()
        work = {"flops_per_step": 2e12, "kernel_s_per_step": kernel_s, "peak_format": "bf16", "peak_flops": 1e15}
        return RunResult(config=config, step_time_median_s=0.01, device_work=work)

    table = summary([run("pytorch", 0.009), run("lightning", 0.005)])
    assert list(table["TFLOP/s"]) == [pytest.approx(200.0)] * 2
    assert list(table["MFU % (of bf16 peak)"]) == [pytest.approx(20.0)] * 2
    notes = gpu_notes(table)
    assert any("host-bound (GPU busy 50% of the step)" in n and "lightning" in n for n in notes)
    assert not any("host-bound" in n and "pytorch" in n for n in notes)


def test_plan_counting_a_warm_up_steps_flops_changes_no_bit_of_the_training(monkeypatch):
    from tests.helpers import train

    plain = train("cifar_cnn", "lightning", steps=4, warmup_steps=2)
    monkeypatch.setattr("loopbench.harness.run.counts_device_work", lambda config, cfg: True)  # as on CUDA
    counted = train("cifar_cnn", "lightning", steps=4, warmup_steps=2)
    assert counted.device_work["flops_per_step"] > 1e6 and counted.device_work["kernel_s_per_step"] is None
    assert counted.losses == plain.losses and counted.weights_digest == plain.weights_digest
