"""`loopbench compare`: a known change is found and gates CI; no change is no change; unlike results are refused."""

import json

from loopbench.cli import main
from loopbench.core.store import save_results
from loopbench.core.trainers import LEAN
from tests.test_probe_report import probe_runs


def _saved(tmp_path, name, extra_us=0.0, cpu="test cpu"):
    runs = probe_runs()
    for r in runs:
        r.env = dict(r.env, cpu=cpu, torch="2.14.1")
        if r.config["impl"] == LEAN:
            r.step_time_median_s += extra_us * 1e-6
    return save_results(runs, tmp_path / name / "results.json").parent


def test_a_known_change_is_resolved_and_fails_the_gate(tmp_path, capsys):
    old, new = _saved(tmp_path, "old"), _saved(tmp_path, "new", extra_us=100)
    assert main(["compare", str(old), str(new), "--fail-above", "10"]) == 1
    out = capsys.readouterr().out
    lean = next(line for line in out.splitlines() if line.startswith(f"probe auto {LEAN} "))
    assert "+100.000 [+100.000, +100.000]" in lean and "changed" in lean
    assert f"FAIL: probe auto {LEAN} rose by 24.4%" in out
    assert "probe auto lightning-defaults" in out and out.count(": changed") == 2  # lean (auto and manual)


def test_no_change_passes_the_gate(tmp_path, capsys):
    old, new = _saved(tmp_path, "old"), _saved(tmp_path, "new")
    assert main(["compare", str(old), str(new), "--fail-above", "1"]) == 0
    assert "changed" not in capsys.readouterr().out.replace("no resolved change", "")


def test_results_from_another_machine_are_refused_in_one_line(tmp_path, capsys):
    old, new = _saved(tmp_path, "old"), _saved(tmp_path, "new", cpu="another cpu")
    assert main(["compare", str(old), str(new)]) == 2
    err = capsys.readouterr().err
    assert "cpu: test cpu vs another cpu" in err and len(err.strip().splitlines()) == 1


def test_results_of_an_unknown_schema_are_refused_in_one_line(tmp_path, capsys):
    old = _saved(tmp_path, "old")
    data = json.loads((old / "results.json").read_text())
    data[0]["schema_version"] = 99
    (old / "results.json").write_text(json.dumps(data))
    assert main(["report", str(old), "--out", str(tmp_path / "r")]) == 2
    assert "schema version 99, written by a newer loopbench" in capsys.readouterr().err
