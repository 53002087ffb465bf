"""REPORT.md's first screen: a verdict line, a machine line, one table of the cells timed here, the cells run for
parity alone in one line, and the one figure that answers "what will I pay?". The detail follows it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from loopbench.core.trainers import DEFAULTS, FABRIC, LEAN, PLAIN, is_lightning
from loopbench.core.types import RunResult

# the frameworks as the first screen names them, in its column order
COLUMNS = {
    LEAN: "lean Trainer",
    DEFAULTS: "default Trainer",
    FABRIC: "Fabric",
    "lightning-barebones": "Trainer(barebones=True)",
}
SAME = {"bitwise", "within_tolerance"}  # the verdicts that say "the same model"


def machine_line(envs: list[dict[str, Any]]) -> str:
    """Where and with what it ran, in one line (the full list is the report's last section)."""
    env = envs[0] if envs else {}
    formats = env.get("cpu_capability") or "?"
    gpu = f"; {env['gpu']}" if env.get("gpu") else ""
    releases = ", ".join(sorted({str(e.get("pytorch_lightning")) for e in envs if e.get("pytorch_lightning")})) or "?"
    return (
        f"{env.get('cpu', '?')}, {env.get('cpu_count', '?')} cores ({formats}){gpu}; Python {env.get('python', '?')}, "
        f"torch {str(env.get('torch', '?')).split('+')[0]}, Lightning {releases}; "
        f"commit {str(env.get('commit', '?'))[:7]}, {str(env.get('date', '?'))[:10]}"
    )


def _name(key: tuple[str, str, str], several_places: bool) -> str:
    """A cell as the first screen names it: task and precision, and where it ran if cells ran in several places."""
    task, where, precision = key
    return f"{task} {precision}" + (f" ({where})" if several_places else "")


def timed_cells(ov: pd.DataFrame) -> set[tuple[str, str, str]]:
    """Cells with a timed comparison: rounds, or at least two fresh runs a side (else parity alone)."""
    timed = ov[(ov["from"] == "rounds") | (ov["pairs"] > 1)] if len(ov) else ov
    return {(r["task"], r["device"], r["precision"]) for _, r in timed.iterrows()}


def _ratio_text(o: pd.Series) -> str:
    """One figure per framework and cell: the step-time ratio with its interval, and its own time as a share of
    the step where the in-place split took it."""
    if o["low"] is None or pd.isna(o["low"]):
        faster = is_lightning(o["impl"]) and o["ratio"] < 1  # a Trainer does more work: reading faster is noise
        text = f"{o['ratio']:.2f}x, not resolved" + (" (faster: noise)" if faster else "")
    else:
        text = f"{o['ratio']:.3f}x [{o['low']:.3f}, {o['high']:.3f}]"
    share = o.get("own share %")
    if share is not None and not pd.isna(share):
        text += f"; own {share:.1f}%"
    return text


def cells_table(table: pd.DataFrame, ov: pd.DataFrame, par: pd.DataFrame) -> pd.DataFrame:
    """The timed cells, one row each: the plain step, each framework's ratio (own share), the parity verdicts."""
    timed = timed_cells(ov)
    several = len({d for _, d, _ in timed}) > 1
    rows: dict[tuple, dict[str, str]] = {}
    for _, o in ov.iterrows():
        key = (o["task"], o["device"], o["precision"])
        if key not in timed or o["impl"] not in COLUMNS:
            continue
        row = rows.setdefault(key, {"cell": _name(key, several)})
        ratio = o.rename({"step-time ratio": "ratio", "95% CI low": "low", "95% CI high": "high"})
        row[COLUMNS[o["impl"]]] = _ratio_text(ratio)
    for key, row in rows.items():
        plain = table[_in(table, key) & (table["impl"] == PLAIN)]
        step = plain["median step ms"].iloc[0] if len(plain) and "median step ms" in plain else None
        row["plain step"] = "–" if step is None or pd.isna(step) else f"{step:.3g} ms"
        verdicts = par[_in(par, key)]["verdict"] if len(par) else []
        row["parity"] = ", ".join(sorted(set(verdicts))) or "–"
    order = ["cell", "plain step", *[c for c in COLUMNS.values() if any(c in r for r in rows.values())], "parity"]
    return pd.DataFrame(list(rows.values()), columns=order).fillna("–")


def parity_only_line(ov: pd.DataFrame, par: pd.DataFrame) -> str | None:
    """The cells that ran one step a side for parity alone, in one line."""
    timed = timed_cells(ov)
    cells = dict.fromkeys((r["task"], r["device"], r["precision"]) for _, r in par.iterrows()) if len(par) else {}
    alone = [c for c in cells if c not in timed]
    if not alone:
        return None
    same = [c for c in alone if set(par[_in(par, c)]["verdict"]) <= SAME]
    several = len({w for _, w, _ in cells}) > 1
    names = ", ".join(_name(c, several) for c in alone)
    verdict = "all the same model" if len(same) == len(alone) else f"{len(same)} of {len(alone)} the same model"
    return (
        f"Run one step a side, for parity alone (why: under Every cell): {names}; {verdict}. Their times are not "
        "compared."
    )


def _in(df: pd.DataFrame, cell: tuple[str, str, str]) -> pd.Series:
    return (df["task"] == cell[0]) & (df["device"] == cell[1]) & (df["precision"] == cell[2])


def verdict_line(par: pd.DataFrame, ov: pd.DataFrame, floors: dict[str, str]) -> str:
    """Parity over the cells; each framework's extra time per step (the probe's floor where it ran); the cells
    where a Trainer's cost is resolved, with its share of the step."""
    parts = []
    if len(par):
        cells = dict.fromkeys((r["task"], r["device"], r["precision"]) for _, r in par.iterrows())
        same = [c for c in cells if set(par[_in(par, c)]["verdict"]) <= SAME and par[_in(par, c)]["holds"].all()]
        kinds = sorted({v if v not in SAME or h is not False else f"{v} weights; logs or validation differ"
                        for v, h in zip(par["verdict"], par["holds"], strict=True)})  # fmt: skip
        parts.append(f"**Same model:** {len(same)} of {len(cells)} cells ({', '.join(kinds)}).")
    if floors:
        parts.append(
            "**Extra time per step** (the overhead probe, after a near-zero step): "
            + ", ".join(f"{COLUMNS[i]} {v}" for i, v in floors.items())
            + "."
        )
    slower = ov[ov["verdict"] == "slower"] if len(ov) else ov
    several = len(set(ov["device"])) > 1 if len(ov) else False
    if len(slower):
        found = [
            f"{COLUMNS.get(o['impl'], o['impl'])} on {_name((o['task'], o['device'], o['precision']), several)} "
            f"{o['step-time ratio']:.3f}x"
            + ("" if pd.isna(o.get("own share %", float("nan"))) else f" (own {o['own share %']:.1f}% of the step)")
            for _, o in slower.iterrows()
        ]
        parts.append(f"**Slower beyond noise:** {'; '.join(found)}. Every other timed cell: within noise.")
    elif len(ov) and ov["95% CI low"].notna().any():
        parts.append("**Slower beyond noise:** no cell; every resolved ratio's interval holds 1.")
    elif len(ov):
        parts.append("**Slower beyond noise:** not resolved: too few pairs for an interval.")
    return " ".join(parts)


def screen(results: list[RunResult], envs: list[dict], tables: dict[str, pd.DataFrame], floors: dict[str, str],
           figure: str | None, markdown) -> list[str]:  # fmt: skip
    """The first screen's lines. `tables`: the report's summary, overheads and parities."""
    table, ov, par = tables["summary"], tables["overheads"], tables["parities"]
    out = [verdict_line(par, ov, floors), "", machine_line(envs), ""]
    cells = cells_table(table, ov, par) if len(ov) else pd.DataFrame()
    if len(cells):
        out += [markdown(cells), ""]
    alone = parity_only_line(ov, par) if len(ov) else None
    out += [alone, ""] if alone else []
    if figure:
        out += [f"![What will I pay? The Trainer's cost against the plain step]({figure})", ""]
    return out


def reading(with_probe: bool) -> str:
    """How to read the first screen's table: where each figure comes from."""
    text = (
        "A cell is one task in one precision. Each ratio is a framework's step time over the plain loop's, from "
        "rounds: one process per round runs short time-only segments P L P Ld P F P, and each framework's "
        "segment is divided by the plain segments beside it; the median over rounds, with a distribution-free "
        "95% interval (docs/method.md). An interval that holds 1 is noise; one below 1 is also noise, since every "
        "Trainer does strictly more work than the plain loop. `own`: the framework's time per step outside the "
        "model's forward, backward and optimizer update, measured in place, as a percentage of the plain step "
        "(docs/own-module.md). Parity and peak memory come from fresh-process runs of the whole job "
        "(docs/parity.md)."
    )
    if with_probe:
        text += (
            " The probe's extra time per step is the floor; `probe predicts` in the detail is (T + delta) / T for "
            "the cell's plain step T, and `agrees` means the measured and predicted intervals overlap."
        )
    return text
