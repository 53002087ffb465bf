"""The Trainer's own time per step, from the in-place split (loopbench.measure.split) of a comparison's rounds.

Each segment's steps are split into the model's own work and the rest. Per round, the Trainer's own time is
the rest of its segment less the mean rest of the plain segments beside it, and its share is that over the
plain segments' step; the median over rounds has an order-statistic interval (stats.robust_difference).
The noise of a rest scales with the rest (a few hundred microseconds), not with the step, so the share
resolves where the whole-step ratio cannot. What the split leaves out is named beside it: the model's own
work may run slower on the Trainer's side (its code evicts the model's from the caches); `work` gives that
difference, and own + work is the whole-step delta.
"""

from __future__ import annotations

from typing import Any

from loopbench.analysis import rounds
from loopbench.analysis.stats import MIN_MEDIAN_PAIRS, Difference, robust_difference

TARGET_POINTS = 2.0  # a cell's share is pinned when its interval's half-width is at most 2 points of the step


def _rest(r) -> float | None:
    return r.rest_time_median_s


def _work(r) -> float:
    return r.step_time_median_s - r.rest_time_median_s


def per_round(pairs: list[rounds.Pair]) -> list[tuple[float, float, float]]:
    """(own s, share of the plain step, work difference s) of every pair whose segments all took the split."""
    out = []
    for p in pairs:
        if _rest(p.mine) is None or any(_rest(q) is None for q in p.plain):
            continue
        step = rounds.of_plain(p, lambda r: r.step_time_median_s)
        own = _rest(p.mine) - rounds.of_plain(p, _rest)
        out.append((own, own / step, _work(p.mine) - rounds.of_plain(p, _work)))
    return out


def _interval(values: list[float]) -> Difference | None:
    return robust_difference(values) if len(values) >= MIN_MEDIAN_PAIRS else None


def trainer_time(pairs: list[rounds.Pair]) -> dict[str, Any] | None:
    """{own_s, own_low_s, own_high_s, share, share_low, share_high, work_s, work_low_s, work_high_s, pairs,
    pinned} (low/high None below MIN_MEDIAN_PAIRS pairs); None where no pair took the split."""
    values = per_round(pairs)
    if not values:
        return None
    out: dict[str, Any] = {"pairs": len(values)}
    for i, (name, unit) in enumerate((("own", "_s"), ("share", ""), ("work", "_s"))):
        column = [v[i] for v in values]
        d = _interval(column)
        middle = d.delta if d else sorted(column)[len(column) // 2]
        out |= {f"{name}{unit}": middle, f"{name}_low{unit}": d and d.low, f"{name}_high{unit}": d and d.high}
    half = (out["share_high"] - out["share_low"]) / 2 if out["share_low"] is not None else None
    out["pinned"] = half is not None and half * 100 <= TARGET_POINTS
    return out


def label(t: dict[str, Any] | None) -> str:
    """'0.41 ms [0.35, 0.47], 0.6% [0.5, 0.7] of the step', or why there is no figure."""
    if t is None:
        return "–"
    if t["own_low_s"] is None:
        return f"{t['own_s'] * 1e3:.2f} ms, not resolved ({t['pairs']} pairs; {MIN_MEDIAN_PAIRS} needed)"
    ms = f"{t['own_s'] * 1e3:.2f} ms [{t['own_low_s'] * 1e3:.2f}, {t['own_high_s'] * 1e3:.2f}]"
    share = f"{t['share']:.1%} [{t['share_low'] * 100:.1f}, {t['share_high'] * 100:.1f}]"
    return f"{ms}, {share} of the step"
