"""Another Lightning release: installed hash-checked into the cache, imported first, recorded as imported,
and bitwise equal to the plain loop on the probe (both shapes) and a task."""

import pytest

from loopbench import releases
from loopbench.types import RunConfig, UsageError

OLD = "2.4.0"


def test_withdrawn_and_unlisted_releases_are_refused_and_every_listed_one_has_a_hash():
    for version in releases.WITHDRAWN:
        with pytest.raises(UsageError, match="malicious upload"):
            releases.check(version)
        assert version not in releases.RELEASES
    with pytest.raises(UsageError, match="not a release on loopbench's list"):
        releases.check("9.9")
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in releases.RELEASES.values())


@pytest.fixture(scope="module")
def old_release():
    try:
        return releases.site(OLD)
    except UsageError as e:  # no network and nothing cached: nothing to test here
        pytest.skip(f"pytorch-lightning {OLD} could not be installed: {e}")


@pytest.mark.slow
@pytest.mark.parametrize(("task", "shape"), [("overhead_probe", "manual"), ("cifar_cnn", None)])
def test_an_old_release_trains_the_plain_loops_bits_and_says_which_release_ran(old_release, task, shape):
    from loopbench.launch.forked import run_forked_batch
    from loopbench.parity import compare_cell

    overrides = {"shape": shape} if shape else {}
    plain, lean = run_forked_batch(  # one process of the old release, forked from its own server
        [RunConfig(task, impl, steps=6, overrides=overrides, lightning=OLD) for impl in ("pytorch", "lightning")]
    )
    assert plain.ok and lean.ok, (plain.message, lean.message)
    assert lean.env["pytorch_lightning"] == OLD  # read from the module the run imported
    assert compare_cell(plain, lean).verdict == "bitwise"
