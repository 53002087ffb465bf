"""The suite's plan on CPU: how many rounds each task cell gets, and of what length, from the task's own HARNESS."""

import implementations
from loopbench.studies.suite import FRESH_RUNS, Matrix


def _rounds(matrix: Matrix) -> dict[str, set]:
    out: dict[str, set] = {}
    for c in matrix.cells():
        if c.slot > 0:
            out.setdefault(c.task, set()).add(c.repeat)
    return {task: len(repeats) for task, repeats in out.items()}


def test_each_task_cell_gets_its_own_rounds_of_its_own_segments_unless_repeats_says():
    matrix = Matrix(devices=("cpu",), precisions=("32-true",), probe_repeats=0)
    own = {t: implementations.spec(t).HARNESS for t in implementations.TASKS}
    assert _rounds(matrix) == {t: h.rounds for t, h in own.items()}
    assert own["mnist_gan"].rounds == 12 and {h.rounds for t, h in own.items() if t != "mnist_gan"} == {6}
    for c in matrix.cells():
        if c.slot > 0:
            assert (c.steps, c.warmup_steps) == own[c.task].segment
    assert _rounds(Matrix(devices=("cpu",), precisions=("32-true",), repeats=3)) == dict.fromkeys(own, 3)


def test_a_cell_without_rounds_runs_its_fresh_runs_and_repeats_means_rounds_only():
    ddp = Matrix(("mnist_gan",), ("pytorch", "lightning"), ("cpu",), ("32-true",), processes=(2,))
    assert len(ddp.cells()) == 2 * FRESH_RUNS and not [c for c in ddp.cells() if c.slot]
    one = (("mnist_gan",), ("pytorch",), ("cpu",), ("32-true",))
    assert len(Matrix(*one, fresh_runs=3, processes=(2,)).cells()) == 3
    assert len(Matrix(*one, repeats=3, processes=(2,)).cells()) == FRESH_RUNS  # rounds, and a DDP cell has none
