"""Bad input: one readable line naming the valid choices, exit code 2, no traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loopbench.cli import main
from loopbench.studies.overhead import PROBE_IMPLS

BAD_INPUT = [
    (["run", "--task", "nope", "--impl", "pytorch"], "unknown task 'nope'; choose from mnist_gan, efficientnet_binary"),
    (["suite", "--tasks", "./nope"], "no such folder"),
    (["run", "--task", "cifar_cnn", "--impl", "keras"], "choose from 'pytorch', 'lightning', 'lightning-defaults'"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--precision", "fp8"], "'32-true', '16-mixed', 'bf16-mixed'"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--preset", "huge"], "'smoke', 'quick', 'full'"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--device", "tpu"], "cpu, cuda, cuda:N"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--data", "real"], "--data real needs --data-dir"),
    (
        ["run", "--task", "cifar_cnn", "--impl", "pytorch", "--data", "real", "--data-dir", "/no/such/dir"],
        "no such folder",
    ),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "lr0.1"], "expected KEY=VALUE"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "depth=3"], "unknown cifar_cnn setting(s) depth"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--pretrained"], "unknown cifar_cnn setting(s) pretrained"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--steps", "3", "--warmup-steps", "3"], "--warmup-steps"),
    (["suite", "--repeats", "0"], "--repeats and --fresh-runs must be at least 1"),
    (["parity", "--task", "cifar_cnn", "--metric", "test_accuracy"], "--metric needs several --seeds"),
    (["report", "/no/such.json", "--out", "x"], "no such results file"),
    (["collectives", "--processes", "1"], "collectives need at least 2 processes"),
    (["report", __file__, "--out", "x"], "not JSON"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--batch-size", "4096"], "larger than the training set"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "lr=fast"], "lr must be float, e.g. lr=0.2"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "steps=2.5"], "steps must be int"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "widths=8"], "widths must be a tuple of int"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "lr=-1"], "must not be negative"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "lr=0"], "cifar_cnn: lr must be positive, got 0"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "label_smoothing=1.5"], "label_smoothing must be"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "widths=(8,0,16,32)"], "widths must be in"),
    (["run", "--task", "efficientnet_binary", "--impl", "pytorch", "--set", "image_size=8"], "image_size must be"),
    (["run", "--task", "mnist_gan", "--impl", "pytorch", "--set", "eval_samples=10000"], "eval_samples must be"),
    (["run", "--task", "mnist_gan", "--impl", "pytorch", "--set", "beta1=1"], "beta1 must be in"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--seed", "-1"], "--seed must be 0 or more"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--isolate", "--timeout", "0"], "--timeout must be"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--json", "/tmp"], "is a folder"),
    (["parity", "--task", "cifar_cnn", "--seeds", "1", "1"], "each seed once"),
    (["parity", "--task", "cifar_cnn", "--seeds", "1", "2", "--margin", "0"], "--margin must be"),
    (["suite", "--precisions", "32-true", "--timeout", "-5"], "--timeout must be"),
    (["suite", "--precisions", "32-true", "--out", __file__], "is not a folder"),
    (["suite", "--precisions", "32-true", "--tasks", "cifar_cnn", "--batch-size", "4096"], "larger than the training"),
    (["suite", "--precisions", "32-true", "--tasks", "cifar_cnn", "--set", "lr=fast"], "lr must be float"),
    (["suite", "--devices", "tpu"], "cpu, cuda, cuda:N"),
    (["overhead", "--repeats", "1"], "--repeats must be at least 2"),
    (["overhead", "--processes", "3"], "--processes is data parallelism, which the overhead probe does not measure"),
    (["overhead", "--budget", "0"], "--budget must be a positive number"),
    (["overhead", "--steps", "4"], "--steps must be at least 8"),
    (["suite", "--probe-repeats", "1"], "--probe-repeats must be 0 (no probe) or at least 2"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--processes", "0"], "--processes must be at least 1"),
    (["parity", "--task", "cifar_cnn", "--processes", "999"], "CPU cores; one process per core at most"),
    (["run", "--task", "overhead_probe", "--impl", "lightning", "--processes", "2"], "use --processes 1"),
    (["suite", "--tasks", "cifar_cnn", "--precisions", "32-true", "--processes", "1", "999"], "CPU cores"),
    (["overhead", "--shape", "diagonal"], "'auto', 'manual', 'both'"),
    (["overhead", "--after", "lunch"], "'nothing', 'read'"),
    (["overhead", "--lightning", "2.6.3"], "refused: a malicious upload (April 2026)"),
    (["overhead", "--lightning", "9.9"], "not a release on loopbench's list"),
    (["parity", "--task", "cifar_cnn", "--lightning", "2.6.2"], "refused: a malicious upload"),
    (["overhead", "--steps", "0"], "--steps must be at least 8"),
    (["run", "--task", "overhead_probe", "--impl", "pytorch", "--set", "shape='both'"], "shape must be one of"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "patience=2"], "needs validate_every_epoch=True"),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--set", "val_batch_size=0"], "val_batch_size must be"),
    (["run", "--task", "overhead_probe", "--impl", "pytorch", "--data", "real", "--data-dir", "/tmp"], "no real data"),
    (
        ["parity", "--task", "mnist_gan", "--seeds", "1", "2", "--metric", "acc"],
        "mnist_gan reports mmd, mmd_real_floor",
    ),
    (["run", "--task", "cifar_cnn", "--impl", "pytorch", "--data-dir", "/tmp"], "add --data real"),
    (["run", "--task", "overhead_probe", "--impl", "pytorch", "--compile", "max"], "'off', 'on', 'inner'"),
    (["compile", "--compile", "off"], "'on', 'inner'"),
    (["compile", "--fresh-runs", "0"], "--fresh-runs must be at least 1"),
    (["compile", "--tasks", "no_such_task"], "unknown task 'no_such_task'"),
]
# the suite's rows plan on the CPU wherever they run (with a GPU visible the default devices are CUDA)
BAD_INPUT = [([*argv, "--devices", "cpu"] if argv[0] == "suite" and "--devices" not in argv else argv, expected)
             for argv, expected in BAD_INPUT]  # fmt: skip
if not __import__("torch").cuda.is_available():
    BAD_INPUT.append((["run", "--task", "cifar_cnn", "--impl", "pytorch", "--device", "cuda"], "no CUDA device"))


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUT, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_input_exits_2_with_one_line(argv, expected, capsys):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err and "Traceback" not in err


@pytest.mark.slow
def test_parity_command_end_to_end(tmp_path):
    """As a user types it: a fresh interpreter, the verdict printed, JSON written, exit 0."""
    out = tmp_path / "parity.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loopbench",
            "parity",
            "--task",
            "cifar_cnn",
            "--device",
            "cpu",
            "--precision",
            "32-true",
            "--preset",
            "smoke",
            "--seed",
            "4",
            "--steps",
            "7",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "bitwise" in proc.stdout
    data = json.loads(out.read_text())
    assert data["verdict"] == "bitwise" and data["losses_equal"] and data["weights_equal"]
    assert data["max_abs_loss_diff"] == 0.0 and data["steps"] == 7


def test_run_writes_a_complete_result(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", "--task", "cifar_cnn", "--impl", "pytorch", "--steps", "3", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["status"] == "ok" and len(r["losses"]["loss"]) == 3 and len(r["step_times_s"]) == 3
    assert r["task_config"]["steps"] == 3 and r["data"]["source"] == "synthetic"
    assert r["env"]["commit"] and r["env"]["torch"] and r["weights_digest"]
    assert "samples/s" in capsys.readouterr().out


def test_parity_over_seeds_gives_a_verdict_per_seed_and_an_equivalence_test(tmp_path, capsys):
    out = tmp_path / "seeds.json"
    argv = [
        "parity",
        "--task",
        "cifar_cnn",
        "--seeds",
        "0",
        "1",
        "2",
        "--steps",
        "4",
        "--metric",
        "test_accuracy",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["verdict"] == "bitwise" and data["holds"] and set(data["seeds"]) == {"0", "1", "2"}
    eq = data["equivalence"]
    assert eq["metric"] == "test_accuracy" and eq["equivalent"] and eq["difference"] == 0.0
    assert eq["reference_values"] == eq["candidate_values"]
    assert "TOST" in capsys.readouterr().out


@pytest.mark.parametrize("task", ["mnist_gan", "efficientnet_binary", "cifar_cnn", "overhead_probe"])
def test_each_task_declares_the_metrics_its_evaluation_returns(task):
    import implementations
    from tests.helpers import train

    assert tuple(train(task, "pytorch", steps=2).metrics) == implementations.spec(task).METRICS


@pytest.mark.slow
def test_overhead_command_answers_in_its_documented_json(tmp_path, capsys):
    out = tmp_path / "o.json"
    argv = ["overhead", "--shape", "manual", "--repeats", "2", "--budget", "1", "--steps", "24", "--after", "read"]
    assert main([*argv, "--counts", "off", "--json", str(out)]) == 0
    answer = json.loads(out.read_text())
    impls = answer["shapes"]["manual"]
    assert answer["device"] == "cpu" and answer["threads"] == 1 and answer["steps"] == 24
    assert answer["after"] == "read"
    assert answer["method"] == "rounds" and answer["rounds"] == 2 and answer["stopped"] == "time budget spent"
    assert answer["elapsed_s"] >= answer["timed_s"] > 0  # the whole measurement, its rounds within it
    assert set(impls) == set(PROBE_IMPLS["manual"]) and impls["pytorch"]["us_per_step"] > 0
    assert 1 <= impls["pytorch"]["runs"] <= 2 * len(impls)  # P V1 P V2 ... P, twice (less a segment kept off the CPU)
    assert answer["instructions"]["shapes"] == {} and answer["failed"] == []
    text = capsys.readouterr().out
    assert "round   2:" in text and "us/step" in text and "instruction counts: off" in text
    assert "each step after a read of 64 MiB" in text and "--after nothing gives the floor" in text


def test_the_probe_after_a_read_reads_64_mib_in_every_step_of_shorter_segments():
    from loopbench.studies.overhead import count_plan, plan
    from loopbench.studies.protocol import AFTER, SEGMENT_STEPS

    floor, read = plan("cpu", "auto", 1), plan("cpu", "auto", 1, after="read")
    assert [c.steps for c in floor] == [SEGMENT_STEPS] * len(floor) and "ballast_mib" not in floor[0].overrides
    assert {c.steps for c in read} == {AFTER["read"][1]} and {c.overrides["ballast_mib"] for c in read} == {64}
    assert {c.overrides["ballast_mib"] for c in count_plan("cpu", "auto", after="read")} == {64}


def test_every_verb_shows_its_defaults_and_an_example(capsys):
    from loopbench.cli import VERBS

    for verb in VERBS:
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        text = capsys.readouterr().out
        assert "example:" in text and ("(default:" in text or verb == "report"), verb
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "loopbench" in (out := capsys.readouterr().out) and "torch" in out and "pytorch-lightning" in out


def test_the_bench_takes_every_suite_option_as_lb_option():
    from loopbench import options

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "--help", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for o in options.for_verb("suite"):
        assert f"--lb-{o.name}" in proc.stdout, o.name


def test_the_command_line_guide_names_every_option_and_no_other():
    """docs/cli.md against the parser's one table: every option is in the guide, and the guide names no option
    that no verb has (the bench's --lb-*, pytest-benchmark's and pip's own aside)."""
    import re

    from loopbench.options import OPTIONS

    doc = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    named = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", doc))
    known = {o.name for o in OPTIONS} | {"help", "version"}
    assert known - named == set(), "options docs/cli.md does not name"
    others = {n for n in named - known if not n.startswith(("lb-", "benchmark"))}
    assert others == {"no-deps", "require-hashes"}, "docs/cli.md names options no verb has"
