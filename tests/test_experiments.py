"""The GAN's DDP-wrapping experiment: the wrappings it times differ in cost only, never in what they train."""

from __future__ import annotations

import json

import pytest
import torch
import torch.distributed as dist

from experiments import gan_ddp_wrapping as experiment
from implementations.mnist_gan import spec
from loopbench.launch.distributed import free_port
from loopbench.measure.env import weights_digest
from loopbench.studies.paycurve import point_cells


@pytest.fixture
def one_process_group(monkeypatch):
    """A gloo group of this process alone: DDP's reducer, its graph walk and its buckets all run."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _trained(variant: str) -> str:
    cfg = spec.PRESETS["smoke"]
    torch.manual_seed(0)
    nets = spec.build_nets(cfg)
    opt_g, opt_d = spec.build_optimizers(nets, cfg)
    step = experiment._step(variant, nets, opt_d, opt_g)
    noise = spec.noise_generator(0, torch.device("cpu"))
    images = spec.synthetic_digits(4 * cfg.batch_size, cfg.data_seed).tensors[0]
    for real in images.split(cfg.batch_size):
        step(real, spec.sample_noise(len(real), cfg, noise))
    return weights_digest(nets.state_dict())


def test_every_wrapping_trains_the_same_weights(one_process_group):
    digests = {variant: _trained(variant) for variant in experiment.VARIANTS}
    assert len(set(digests.values())) == 1, digests


@pytest.mark.slow
def test_the_thread_count_changes_what_a_step_costs_never_what_it_trains():
    """experiments/gan_threads.py: at one thread the lean Trainer's GAN is still the plain loop's, bit for bit."""
    from experiments import gan_threads
    from loopbench.analysis.parity import compare_cell
    from loopbench.core.types import RunConfig
    from loopbench.launch.forked import run_forked_batch

    task, probe = gan_threads.round_cells(1, 0)
    assert {c.threads for c in task} == {1} and {c.overrides["threads"] for c in probe} == {1}
    plain, lean = run_forked_batch(
        [RunConfig("mnist_gan", impl, steps=6, threads=1) for impl in ("pytorch", "lightning")]
    )
    assert plain.ok and lean.ok, (plain.message, lean.message)
    assert plain.env["torch_threads"] == lean.env["torch_threads"] == 1
    assert compare_cell(plain, lean).verdict == "bitwise"


def test_the_short_circuit_leaves_a_logged_metric_as_the_full_move_does():
    """experiments/log_to_device.py compares two calls that must end in the same state."""
    from experiments import log_to_device

    full, short = log_to_device.logged_metric(), log_to_device.logged_metric()
    full.to(torch.device("cpu"))
    assert log_to_device.short_circuit(short, torch.device("cpu")) is short
    assert full.value == short.value and full.cumulated_batch_size == short.cumulated_batch_size
    assert full.value.device == short.value.device == torch.device("cpu")


def test_the_gan_count_experiment_sets_each_delta_beside_the_probes_and_checks_the_bits():
    """experiments/gan_counts.py's analysis, on hand-made counts: deltas, the per-tensor term, bitwise per job."""
    from experiments import gan_counts
    from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN
    from loopbench.core.types import RunConfig, RunResult

    def runs(task: str, counts: dict[str, float], losses: dict[str, list[float]]) -> list[RunResult]:
        out = []
        for impl, n in counts.items():
            r = RunResult(config=RunConfig(task, impl, clock="instructions").to_dict(), instructions_per_step=n)
            r.losses, r.weights_digest = {"loss": losses.get(impl, [1.0, 0.5])}, "same"
            out.append(r)
        return out

    task = runs("mnist_gan", {PLAIN: 150e6, LEAN: 151.9e6, DEFAULTS: 157.3e6}, {DEFAULTS: [1.0, 0.4]})
    probe = runs("overhead_probe", {PLAIN: 1.5e6, LEAN: 3.25e6, DEFAULTS: 8.8e6}, {})
    a = gan_counts.analyse(task, probe, {"mnist_gan": 22, "overhead_probe": 4})
    assert a[LEAN]["difference"] == pytest.approx(0.15e6) and a[LEAN]["per_extra_tensor"] == pytest.approx(0.15e6 / 18)
    assert a[LEAN]["predicted_ratio"] == pytest.approx(151.75 / 150)
    assert a["same_bits"]["mnist_gan"] == {LEAN: True, DEFAULTS: False}  # the hand-made losses differ
    assert "NOT bitwise" in "\n".join(gan_counts.lines(a))
    assert gan_counts.tensors()["overhead_probe"] == 4  # two Linear(8, 1): weight and bias each


def test_the_split_cost_experiment_pairs_each_split_segment_with_its_unsplit_twin():
    """experiments/split_cost.py: its rounds alternate P+ P- L+ L-, and its analysis, on hand-made times and counts."""
    from experiments import split_cost
    from loopbench.core.trainers import LEAN, PLAIN
    from loopbench.core.types import RunResult

    first, second = split_cost.round_cells(0), split_cost.round_cells(1)
    assert [(c.impl, c.split) for c in first] == [(PLAIN, True), (PLAIN, False), (LEAN, True), (LEAN, False)]
    assert [(c.impl, c.split) for c in second] == [(c.impl, c.split) for c in first][::-1]
    assert [c.slot for c in first] == [1, 2, 3, 4] and {c.repeat for c in second} == {1}

    def result(c, step_us: float, counted: float | None = None) -> RunResult:
        return RunResult(config=c.to_dict(), step_time_median_s=step_us * 1e-6, instructions_per_step=counted)

    cost_us = {PLAIN: 20.0, LEAN: 30.0}
    timed = [result(c, 500 + (700 if c.impl == LEAN else 0) + (cost_us[c.impl] if c.split else 0))
             for k in range(6) for c in split_cost.round_cells(k)]  # fmt: skip
    counted = [result(c, 0, 1e6 + (5e4 if c.split else 0) * (2 if c.impl == LEAN else 1)) for c in first]
    a = split_cost.analyse(timed, counted)
    assert a[PLAIN]["split_us"] == pytest.approx(20) and a[LEAN]["split_us"] == pytest.approx(30)
    assert a[LEAN]["rounds"] == 6 and a[PLAIN]["step_unsplit_us"] == pytest.approx(500)
    assert a["trainer_minus_plain_us"] == pytest.approx(10)
    assert a["trainer_minus_plain_instructions"] == pytest.approx(5e4)
    assert "what it adds to the Trainer's own time" in "\n".join(split_cost.lines(a))


def test_the_cache_experiment_loads_the_models_work_without_changing_what_it_trains():
    """experiments/trainer_cache.py: the ballast and the matmuls make the probe's forward longer, never different;
    its rounds are P L P per variant, and its counts pair plain and lean per variant."""
    from experiments import trainer_cache
    from loopbench.analysis.parity import compare_cell
    from loopbench.core.types import RunConfig, RunResult
    from loopbench.launch.cell import run_cell

    def run(impl: str, **load) -> object:
        return run_cell(RunConfig("overhead_probe", impl, preset="smoke", overrides=load))

    load = {"ballast_mib": 1, "spin": 3, "busy_ms": 0.1, "idle_ms": 0.1}
    plain, loaded = run("pytorch"), run("pytorch", **load)
    assert plain.ok and loaded.ok and plain.weights_digest == loaded.weights_digest
    assert compare_cell(loaded, run("lightning", **load)).verdict == "bitwise"
    first = trainer_cache.round_cells(0)
    assert len(first) == len(trainer_cache.VARIANTS) and [c.impl for c in first[0]] == [
        "pytorch",
        "lightning",
        "pytorch",
    ]
    assert {trainer_cache._variant(RunResult(config=c.to_dict())) for b in first for c in b} == set(
        trainer_cache.VARIANTS
    )
    counts = trainer_cache.count_cells()
    assert {c.clock for c in counts} == {"instructions"} and len(counts) == 2 * len(trainer_cache.VARIANTS)


def test_the_probe_after_work_experiment_runs_the_benchs_cells_and_both_probes_in_every_round():
    """experiments/probe_after_work.py: each task's bench cell (its quick preset, validation off) among its points,
    every run a valid config, and the probe in both shapes, as measured and after model work, in every round."""
    import dataclasses

    import implementations
    from experiments import probe_after_work as e
    from implementations.settings import task_config, validate

    batches = e.round_cells(1)
    for c in (c for b in batches for c in b):
        validate(c)
    cells = [p for p in e.POINTS_HERE if p.name in e.CELLS]
    assert {p.task for p in cells} == {p.task for p in e.POINTS_HERE} and len(cells) == 3
    for p in cells:  # the preset itself, but for the segment's length and validation
        run = dataclasses.replace(task_config(point_cells(p, 0)[0]), steps=0, warmup_steps=0, validate_every_epoch=True)
        assert run == dataclasses.replace(implementations.spec(p.task).PRESETS["quick"], steps=0, warmup_steps=0)
    probes = [b[0].overrides for b in batches if b[0].task == "overhead_probe"]
    loads = sorted((o["shape"], o.get("spin", 0), o.get("ballast_mib", 0)) for o in probes)
    assert loads == [(s, *load) for s in ("auto", "manual") for load in ((0, 0), (0, 64), (200, 0))]


def test_an_experiment_analyses_its_saved_runs_again_without_running_any(tmp_path, capsys):
    """experiments/measured.py --from: the runs an earlier --json saved, split into timed and counted, analysed
    again with the machine's facts beside the answer; a missing file is one line, exit 2."""
    from experiments import measured
    from loopbench.core.store import save_results
    from loopbench.core.types import RunConfig, RunResult

    timed = RunResult(config=RunConfig("overhead_probe", "pytorch").to_dict(), env={"commit": "abc"})
    counted = RunResult(config=RunConfig("overhead_probe", "pytorch", clock="instructions").to_dict())
    save_results([timed, counted], tmp_path / "a.runs.json.gz")

    def never(k: int) -> list:
        raise AssertionError("--from runs nothing")

    def analyse(t: list, c: list) -> dict:
        return {"timed": len(t), "counted": len(c)}

    out = tmp_path / "b.json"
    args = ["--from", str(tmp_path / "a.runs.json.gz"), "--json", str(out)]
    assert measured.main(args, "x", "doc", 6, never, [], analyse, lambda a: ["done"]) == 0
    assert json.loads(out.read_text()) == {"timed": 1, "counted": 1, "env": {"commit": "abc"}}
    assert not (tmp_path / "b.runs.json.gz").exists()
    with pytest.raises(SystemExit) as e:
        measured.main(["--from", str(tmp_path / "none.gz")], "x", "doc", 6, never, [], analyse, lambda a: [])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err


def test_the_first_segment_experiment_pairs_nothing_with_its_warm_up_segment():
    """experiments/first_segment.py: the second arm's round starts with a short plain segment, and the pairing takes
    each Lightning segment's neighbours from the paired segments alone."""
    from experiments import first_segment as e
    from loopbench.analysis import rounds
    from loopbench.core.types import RunResult

    bench, warm = e.round_cells(0)
    assert [c.impl for c in warm[1:]] == [c.impl for c in bench] and warm[0].steps == e.WARM_STEPS
    runs = [RunResult(config=c.to_dict(), step_time_median_s=1e-3) for c in warm]
    found, _ = rounds.pairs([r for r in runs if r.config["steps"] != e.WARM_STEPS], "x")
    assert {p.plain[0].config["slot"] for ps in found.values() for p in ps} == {2, 4}
    assert {e._arm(RunResult(config=c.to_dict())) for c in bench + warm} == set(e.ARMS)
