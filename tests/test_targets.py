"""The probe's targets, in time and in instructions, on hand-made answers."""

from loopbench.analysis import targets
from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN


def timed(lean=(500.0, 480.0, 520.0), defaults=(1200.0, 1150.0, 1250.0)) -> dict:
    def entry(d, lo, hi):
        return {"delta_us": d, "delta_low_us": lo, "delta_high_us": hi, "half_width": (hi - lo) / 2 / d}

    return {PLAIN: {"us_per_step": 300.0}, LEAN: entry(*lean), DEFAULTS: entry(*defaults)}


def counted(plain=(0.88e6, 0.881e6), lean=(2.68e6, 2.69e6), defaults=(6.0e6, 6.01e6)) -> dict:
    out = {}
    for impl, n in ((PLAIN, plain), (LEAN, lean), (DEFAULTS, defaults)):
        out[impl] = {"per_step": sum(n) / len(n), "counts": list(n)}
    for c in out.values():
        c["delta"] = c["per_step"] - out[PLAIN]["per_step"]
    return out


def test_time_meets_the_targets_where_the_lean_interval_is_narrow_and_the_default_lies_above():
    t = targets.verdict({"shapes": {"auto": timed()}, "instructions": {"shapes": {"auto": counted()}}})
    assert t["met_in"] == "time" and t["time"]["auto"]["lean_half_width"] == 0.04
    assert "met in time" in targets.line(t)


def test_a_noisy_machine_falls_back_to_instructions_and_says_so():
    wide = timed(lean=(500.0, 300.0, 800.0))  # +-50%
    t = targets.verdict({"shapes": {"auto": wide}, "instructions": {"shapes": {"auto": counted()}}})
    assert not t["time"]["auto"]["met"] and t["met_in"] == "instructions"
    counts = t["instructions"]["auto"]
    assert counts["lean_uncertainty"] == 0.01e6 + 0.001e6 and counts["lean_half_width"] < 0.01
    assert "met in instructions" in targets.line(t) and "time auto 50.0%" in targets.line(t)


def test_overlapping_intervals_or_one_count_per_variant_meet_nothing():
    overlap = timed(defaults=(530.0, 505.0, 560.0))
    once = counted(plain=(0.88e6,), lean=(2.68e6,), defaults=(6.0e6,))
    t = targets.verdict({"shapes": {"auto": overlap}, "instructions": {"shapes": {"auto": once}}})
    assert t["time"]["auto"]["default_above_lean"] is False and t["met_in"] is None
    assert "counted once" in t["instructions"]["auto"]["why"] and "NOT met" in targets.line(t)


def test_counts_that_move_more_than_the_limit_do_not_meet_it():
    shaky = counted(lean=(2.5e6, 2.9e6))  # the lean count moves by 0.4 M of a 1.8 M delta
    t = targets.verdict(
        {"shapes": {"auto": timed(lean=(500.0, 300.0, 800.0))}, "instructions": {"shapes": {"auto": shaky}}}
    )
    assert not t["instructions"]["auto"]["met"] and t["met_in"] is None
