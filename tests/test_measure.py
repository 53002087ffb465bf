import time

import numpy as np
import pytest
import torch

from loopbench.measure import clock as measure
from loopbench.measure.clock import StepClock, percentile
from loopbench.measure.env import machine_name, weights_digest


def test_step_clock_on_cpu_excludes_warmup_from_the_window():
    clock = StepClock(torch.device("cpu"), warmup_steps=2)
    for _ in range(5):
        torch.ones(100, 100) @ torch.ones(100, 100)
        clock.tick()
    clock.stop()
    s = clock.summary(batch_size=8)
    assert len(s["step_times_s"]) == 5 and all(t > 0 for t in s["step_times_s"])
    assert s["window_s"] <= s["end_to_end_s"]
    assert s["samples_per_s"] == 8 * 3 / s["window_s"]


def test_percentile_matches_numpy():
    values = list(np.random.default_rng(1).random(37))
    assert abs(percentile(values, 90) - np.percentile(values, 90)) < 1e-12


def test_weights_digest_sees_one_bit():
    state = {"a": torch.zeros(3), "b": torch.ones(2, 2)}
    flipped = {"a": torch.zeros(3), "b": torch.ones(2, 2)}
    flipped["b"].view(torch.int32)[0, 0] ^= 1
    assert weights_digest(state) == weights_digest({k: v.clone() for k, v in state.items()})
    assert weights_digest(state) != weights_digest(flipped)


def test_machine_name_is_a_folder_name():
    assert machine_name({"cpu": "AMD EPYC 9B14", "cpu_count": 2}) == "amd-epyc-9b14-2c"
    assert machine_name({"gpu": "NVIDIA H100 80GB HBM3"}) == "nvidia-h100-80gb-hbm3"


def test_peak_rss_can_be_reset_to_the_training_window():
    from loopbench.measure.memory import peak_rss_bytes, reset_peak_rss, rss_bytes

    blob = bytearray(200 * 2**20)  # a transient 200 MiB peak, as data generation makes
    del blob
    if not reset_peak_rss():
        pytest.skip("this kernel does not let a process reset its VmHWM")
    assert peak_rss_bytes() < rss_bytes() + 50 * 2**20


def test_steal_fraction_is_the_stolen_share_of_all_cpu_time_between_readings():
    assert measure.steal_fraction((10, 1_000), (60, 2_000)) == 0.05
    assert measure.steal_fraction(None, (60, 2_000)) is None
    assert measure.steal_fraction((10, 1_000), (10, 1_000)) is None  # no time passed: no share
    now = measure.cpu_times()
    assert now is None or 0 <= now[0] <= now[1]


def test_step_clock_records_host_time_and_steal_across_the_window():
    clock = measure.StepClock(torch.device("cpu"), warmup_steps=1)
    for _ in range(4):
        time.sleep(0.002)
        clock.tick()
    clock.stop()
    s = clock.summary(batch_size=1)
    # on CPU both read perf_counter at each step's end: each at least the step's sleep (a busy machine adds, never
    # takes away; a timed comparison of the two would fail on a loaded machine)
    assert s["host_step_time_median_s"] >= 0.002 and s["step_time_median_s"] >= 0.002
    assert len(s["step_times_s"]) == 4
    assert s["cpu_steal_fraction"] is None or 0 <= s["cpu_steal_fraction"] <= 1


def test_the_dirty_mark_asks_git_about_the_measured_code_folders():
    from loopbench.measure import env

    tracked = env._git("ls-files", "--full-name", "--", *env.CODE)
    if tracked is None:
        pytest.skip("not a git checkout")
    # the pathspecs that `git status` is given name the code's folders (git runs inside loopbench/)
    assert "loopbench/measure/env.py" in tracked and "implementations/common.py" in tracked.splitlines()
