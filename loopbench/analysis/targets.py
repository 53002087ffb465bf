"""The probe's precision targets, checked in time and in instructions: the overhead command's JSON says which met them.

The targets: the lean Trainer's delta known to within LIMIT (its 95% interval's half-width at most 10% of
the delta), two invocations within AGREE (15%) of each other, and the default Trainer's delta above the
lean one's. In time they hold on a quiet machine; on a VM whose speed drifts by tens of percent within
seconds they may not, within the command's few minutes. Instructions per step do not drift: every
headline variant (and the plain loop) is counted twice, and the largest difference between two counts
of the same code bounds how far a delta moves by itself. A delta's uncertainty in instructions is then
its variant's spread plus the plain loop's, which is also how far two invocations can differ (same
code, same versions: the count does not depend on the machine's load).
"""

from __future__ import annotations

from typing import Any

from loopbench.core.trainers import DEFAULTS, LEAN, PLAIN

LIMIT = 0.10  # the lean delta's half-width, as a fraction of the delta, at most
AGREE = 0.15  # two invocations' lean deltas apart, as a fraction, at most


def in_time(shapes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per shape: the lean delta's half-width, whether the default Trainer's interval lies above the lean one's."""
    out: dict[str, Any] = {}
    for shape, v in shapes.items():
        lean, defaults = v.get(LEAN, {}), v.get(DEFAULTS, {})
        if lean.get("half_width") is None:
            out[shape] = {"met": False, "why": "no interval for the lean Trainer"}
            continue
        above = defaults.get("delta_low_us") is not None and defaults["delta_low_us"] > lean["delta_high_us"]
        out[shape] = {
            "lean_half_width": lean["half_width"],
            "default_above_lean": above,
            "met": lean["half_width"] <= LIMIT and above,
        }
    return out


def in_instructions(shapes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per shape: the lean delta in instructions, its uncertainty (two counts of each of the three variants: the
    lean Trainer's spread plus the plain loop's) as a fraction of it, and whether the default Trainer's delta
    lies above the lean one's by more than both their uncertainties."""
    out: dict[str, Any] = {}
    for shape, counts in shapes.items():
        if not all(i in counts for i in (PLAIN, LEAN, DEFAULTS)):
            out[shape] = {"met": False, "why": "not every headline variant was counted"}
            continue
        spread = {i: _spread(counts[i]) for i in (PLAIN, LEAN, DEFAULTS)}
        if None in spread.values():
            out[shape] = {"met": False, "why": "each variant counted once: how far a count moves is unknown"}
            continue
        lean, defaults = counts[LEAN]["delta"], counts[DEFAULTS]["delta"]
        lean_u, defaults_u = spread[LEAN] + spread[PLAIN], spread[DEFAULTS] + spread[PLAIN]
        relative = lean_u / abs(lean) if lean else float("inf")
        out[shape] = {
            "lean_delta": lean,
            "lean_uncertainty": lean_u,
            "lean_half_width": relative,
            "default_above_lean": defaults - defaults_u > lean + lean_u,
            "met": relative <= min(LIMIT, AGREE) and defaults - defaults_u > lean + lean_u,
        }
    return out


def _spread(c: dict[str, Any]) -> float | None:
    n = c.get("counts") or []
    return max(n) - min(n) if len(n) >= 2 else None


def verdict(a: dict[str, Any]) -> dict[str, Any]:
    """The targets block of one release's answer: in time, in instructions, and `met_in` (time where it is met,
    else instructions where they are, else None)."""
    time = in_time(a.get("shapes", {}))
    counted = in_instructions(a.get("instructions", {}).get("shapes", {}))
    met = {
        "time": bool(time) and all(v["met"] for v in time.values()),
        "instructions": bool(counted) and all(v["met"] for v in counted.values()),
    }
    return {
        "limit": LIMIT,
        "agree": AGREE,
        "time": time,
        "instructions": counted,
        "met_in": "time" if met["time"] else "instructions" if met["instructions"] else None,
    }


def line(t: dict[str, Any]) -> str:
    """One line: where the targets were met, and each measure's lean half-width per shape."""

    def part(name: str, by_shape: dict[str, Any]) -> str:
        widths = ", ".join(
            f"{s} {v['lean_half_width']:.1%}" if "lean_half_width" in v else f"{s}: {v['why']}"
            for s, v in by_shape.items()
        )
        return f"{name} {widths or 'not measured'}"

    head = f"met in {t['met_in']}" if t["met_in"] else "NOT met"
    return (
        f"targets (lean half-width <= {t['limit']:.0%}, default above lean): {head}; lean half-width: "
        f"{part('time', t['time'])}; {part('instructions', t['instructions'])}"
    )
