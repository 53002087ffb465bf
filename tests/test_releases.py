"""Another Lightning release: installed hash-checked into the cache, imported first, recorded as imported,
and bitwise equal to the plain loop on the probe and a task, at both ends of the supported lines."""

from pathlib import Path

import pytest

from loopbench.core import releases
from loopbench.core.types import RunConfig, UsageError


def test_withdrawn_and_unlisted_releases_are_refused_and_every_listed_one_has_a_hash():
    for version in releases.WITHDRAWN:
        with pytest.raises(UsageError, match="malicious upload"):
            releases.check(version)
        assert version not in releases.RELEASES
    with pytest.raises(UsageError, match="not a release on loopbench's list"):
        releases.check("9.9")
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in releases.RELEASES.values())


# the oldest line, the last that imports pkg_resources, and the last line before the installed one (whose parity
# every other test proves); `loopbench history` trains every listed release and reports its parity (docs/releases.md)
FAMILIES = ("2.0.9.post0", "2.3.3", "2.5.6")


def _site(version: str):
    try:
        return releases.site(version)
    except UsageError as e:  # no network and nothing cached: nothing to test here
        pytest.skip(f"pytorch-lightning {version} could not be installed: {e}")


@pytest.mark.slow
@pytest.mark.parametrize("version", FAMILIES)
def test_every_release_family_trains_the_plain_loops_bits_and_says_which_release_ran(version):
    """The probe (manual shape: two optimizers) and CIFAR, plain and lean, in one process of that release (forked
    from that release's server: each test starts its own, so that the test runners never start one twice)."""
    from loopbench.analysis.parity import compare_cell
    from loopbench.launch.forked import run_forked_batch

    _site(version)
    cells = [
        RunConfig(task, impl, steps=6, overrides=overrides, lightning=version)
        for task, overrides in (("overhead_probe", {"shape": "manual"}), ("cifar_cnn", {}))
        for impl in ("pytorch", "lightning")
    ]
    probe_plain, probe_lean, task_plain, task_lean = run_forked_batch(cells)
    for plain, lean in ((probe_plain, probe_lean), (task_plain, task_lean)):
        assert plain.ok and lean.ok, (plain.message, lean.message)
        assert lean.env["pytorch_lightning"] == version  # read from the module the run imported
        assert compare_cell(plain, lean).verdict == "bitwise", plain.config["task"]


def test_a_suite_runs_every_cell_on_each_release_alternating_and_keeps_them_apart():
    from loopbench.analysis.grouping import group_key, group_words
    from loopbench.studies.suite import Matrix

    matrix = Matrix(tasks=("cifar_cnn",), precisions=("32-true",), processes=(1, 2), lightning=("2.5.6", None))
    cells = matrix.cells()
    assert {c.lightning for c in cells} == {"2.5.6", None}
    firsts = [c.lightning for i, c in enumerate(cells) if i == 0 or group_key(c) != group_key(cells[i - 1])]
    assert firsts == ["2.5.6", None, None, "2.5.6"]  # the releases' order reversed from one group to the next
    assert "Lightning 2.5.6" in group_words(group_key(cells[0]))
    from loopbench.analysis.grouping import placement

    assert placement("cpu", 2, "2.5.6") == "cpu x2, pl 2.5.6" and placement("cpu", 1, None) == "cpu"


def test_a_suite_refuses_a_withdrawn_release_in_one_line(capsys):
    from loopbench.cli import main

    assert main(["suite", "--lightning", "2.6.2", "--tasks", "cifar_cnn"]) == 2
    err = capsys.readouterr().err
    assert "--lightning 2.6.2: refused: a malicious upload" in err and len(err.strip().splitlines()) == 1


def test_a_lightning_of_ones_own_runs_from_its_folder_and_records_its_version_and_commit(tmp_path, capsys):
    import json
    import shutil
    import subprocess

    import pytorch_lightning

    from loopbench.cli import main

    own = tmp_path / "branch"
    shutil.copytree(Path(pytorch_lightning.__file__).parent, own / "pytorch_lightning")
    (own / "pytorch_lightning" / "version.info").write_text("2.6.6.dev0+mybranch\n")
    git = ["git", "-C", str(own), "-c", "user.email=t@t", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "my branch"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = tmp_path / "run.json"
    argv = ["run", "--task", "overhead_probe", "--impl", "lightning", "--steps", "8", "--lightning", str(own)]
    assert main([*argv, "--json", str(out)]) == 0
    env = json.loads(out.read_text())["env"]
    assert (env["pytorch_lightning"], env["lightning_commit"]) == ("2.6.6.dev0+mybranch", head)
    assert main(["run", "--task", "overhead_probe", "--impl", "lightning", "--lightning", str(tmp_path / "none/")]) == 2
    assert "not a release, nor a wheel, nor a folder" in capsys.readouterr().err
