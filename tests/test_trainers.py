"""The Trainer variants are data; the ladder's rungs each turn on exactly one thing."""

import dataclasses

import implementations
from loopbench.core.trainers import LADDER, LADDER_IMPLS, LEAN, TRAINERS, TrainerSetup


def _differences(a: TrainerSetup, b: TrainerSetup) -> set[str]:
    args = {k for k in a.args.keys() | b.args.keys() if a.args.get(k) != b.args.get(k)}
    flags = {
        f.name
        for f in dataclasses.fields(TrainerSetup)
        if f.name != "args" and getattr(a, f.name) != getattr(b, f.name)
    }
    return args | (flags - {"writes_files"})  # a temporary folder is housekeeping, not a feature


def test_each_rung_on_the_lean_trainer_turns_on_one_thing():
    for rung in LADDER:
        if rung.base == LEAN:
            assert len(_differences(TRAINERS[rung.impl], TRAINERS[LEAN])) == 1, rung


def test_the_ladder_starts_at_the_plain_loop_and_every_rung_stands_on_a_measured_implementation():
    assert LADDER[0].base == "pytorch"
    for rung in LADDER:
        assert rung.base in LADDER_IMPLS and rung.impl in LADDER_IMPLS
    assert set(LADDER_IMPLS) <= set(implementations.ALL_IMPLS)


def test_every_trainer_that_writes_files_gets_a_temporary_folder(tmp_path):
    from loopbench.core.types import RunConfig
    from loopbench.harness.run import Run

    class Cfg:
        warmup_steps = 0
        batch_size = 8

    for impl, setup in TRAINERS.items():
        run = Run(RunConfig("overhead_probe", impl), Cfg(), data=None)
        kwargs = run.trainer_kwargs()
        assert ("default_root_dir" in kwargs) == setup.writes_files, impl
        logger = kwargs.get("logger")
        assert {k: kwargs[k] for k in setup.args if k != "logger" or not setup.csv_logger} == {
            k: v for k, v in setup.args.items() if k != "logger" or not setup.csv_logger
        }
        # one logger class on every machine (TensorBoard's where it is installed is Lightning's own default)
        assert (type(logger).__name__ == "CSVLogger") == setup.csv_logger, impl
        assert not setup.csv_logger or logger.save_dir == kwargs["default_root_dir"]
        run.cleanup()
