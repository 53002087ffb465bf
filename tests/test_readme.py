"""The README's first screen answers in a table, and every number on it, and in docs/results.md (the detail the
README links), is computed here from the committed JSON.

Each fact below is a string the page must contain, formatted from a committed result file by the suite's own
analysis; then every number on the page must be part of one of them, or be one of the few named constants (the
commands' budgets, precision names) that no run measures.
"""

import json
import re
import statistics
from pathlib import Path

from loopbench.analysis.inplace import TARGET_POINTS
from loopbench.analysis.paycurve import analyse
from loopbench.analysis.stats import sign_test
from loopbench.core.store import load_results
from loopbench.core.trainers import DEFAULTS, FABRIC, LEAN, PLAIN
from loopbench.report import probe as probe_report
from loopbench.report import tasks_only
from loopbench.report.job import PHASES
from loopbench.report.tables import fresh, headline, overheads, parities

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
FIRST = "\n".join(README.splitlines()[:40])
RESULTS = (ROOT / "docs" / "results.md").read_text()
NUMBER = re.compile(r"[+\-]?\d(?:[\d,]*\d)?(?:\.\d+)*(?:\.post\d+)?")  # 1,204 and 2.0.9.post0 are one number


def _source(name: str) -> Path:
    found = re.search(rf"<!-- {name} from (reports/\S+) -->", README + RESULTS)
    assert found, f"the README names the folder its {name} comes from"
    return ROOT / found.group(1)


def _us(x: float) -> str:
    return f"{x:+,.0f}"


def _interval(v: dict, key: str = "delta") -> str:
    return f"{_us(v[f'{key}_us'])} [{_us(v[f'{key}_low_us'])}, {_us(v[f'{key}_high_us'])}]"


def headline_facts() -> list[str]:
    """The bench's report: the probe's deltas, counts and plain step; the commit and versions; the task cells."""
    folder = _source("headline")
    results = load_results(folder)
    a = probe_report.answers(results)["cpu"]
    auto, counts = a["shapes"]["auto"], a["instructions"]["shapes"]["auto"]
    env = next(r.env for r in tasks_only(results) if r.env)
    lean_us = auto[LEAN]["delta_us"]
    facts = [
        f"`{env['commit'][:12]}`",
        f"torch {env['torch'].split('+')[0]}",
        f"Lightning {env['pytorch_lightning']}",
        f"{_interval(auto[LEAN])} us per optimizer step",
        f"{auto[PLAIN]['us_per_step']:,.0f} us",
        f"{_interval(auto[DEFAULTS])} us",
        f"**Fabric {_interval(auto[FABRIC])} us**",
        f"+{counts[LEAN]['delta'] / 1e6:.2f} M, +{counts[DEFAULTS]['delta'] / 1e6:.2f} M and "
        f"+{counts[FABRIC]['delta'] / 1e6:.2f} M instructions",
        f"a 1 ms step pays +{lean_us / 1e3:.0%}, a 100 ms step +{lean_us / 1e5:.1%}",
        f"{a['rounds']} rounds",
    ]
    ov = overheads(tasks_only(results))
    resolved = ov[ov["95% CI low"].notna()]
    half = (resolved["95% CI high"] - resolved["95% CI low"]) / 2 / resolved["step-time ratio"]
    facts.append(f"+-{half.min():.0%}-{half.max():.0%}")
    placed = ov[ov["own pinned"].notna()] if "own pinned" in ov else ov.iloc[:0]
    facts.append(f"{int(placed['own pinned'].sum())} of {len(placed)} within +-{TARGET_POINTS:g} points of the step")
    for _, o in ov.iterrows():  # the lean Trainer's own time in place (and Fabric's on the GAN), a share of the step
        named = (o["impl"] == LEAN and o["task"] in ("cifar_cnn", "mnist_gan")) or (o["impl"], o["task"]) == (
            FABRIC,
            "mnist_gan",
        )
        if named and "of the step" in str(o.get("own time")):
            facts.append(o["own time"].split("], ")[1].removesuffix(" of the step"))
    table = headline(tasks_only(results), probe_report.predictors(results))
    column = next(c for c in table.columns if c.startswith("measured vs predicted"))
    verdicts = [v for cell in table[column] for v in cell.split(" / ") if v != "–"]
    facts.append(f"{len(resolved)} (cell, implementation) ratios, {verdicts.count('agrees')} of them agreeing")
    runs = {(r.config["task"], r.config["precision"], r.config["impl"]): r for r in fresh(tasks_only(results)) if r.ok}
    gaps = [abs(r.peak_rss_bytes - runs[(t, p, PLAIN)].peak_rss_bytes) for (t, p, i), r in runs.items() if i != PLAIN]
    rss = [r.peak_rss_bytes / 2**30 for r in runs.values()]
    facts.append(f"within {max(gaps) / 2**20:.0f} MiB of the plain loop's ({min(rss):.1f}-{max(rss):.1f} GiB)")
    return facts


def overhead_facts() -> list[str]:
    """Two `loopbench overhead` invocations: how far their counts and their times lay apart, and how long each took."""
    folder = _source("two invocations")
    first, second = (json.loads((folder / f"{k}.json").read_text()) for k in ("first", "second"))
    counts = [x["instructions"]["shapes"]["auto"][LEAN]["delta"] for x in (first, second)]
    times = [x["shapes"]["auto"][LEAN]["delta_us"] for x in (first, second)]
    minutes = [divmod(round(x["elapsed_s"]), 60) for x in (first, second)]
    return [
        f"agree to {abs(counts[0] - counts[1]) / min(counts):.3%}",
        f"lay {abs(times[0] - times[1]) / min(times):.0%} apart",
        " and ".join(f"{m} min {s} s" for m, s in minutes),
    ]


def paycurve_facts() -> list[str]:
    folder = _source("pay curve")
    a = analyse(load_results(folder / "results.json.gz"))
    steps = [p["step_ms"] for p in a["points"]]
    judged = [p for p in a["points"] if p["low"] is not None and "agrees_t1" in p]
    gan = [p for p in a["points"] if p["task"] == "mnist_gan" and p["impl"] == LEAN]
    above = sum(p["ratio"] > p["predicted_t1"] for p in gan)
    counts = json.loads((folder / "gan-counts.json").read_text())
    lean = counts[LEAN]
    share = lean["difference"] / counts["plain"]["mnist_gan"]
    return [
        f"{len({p['point'] for p in a['points']})} sizes",
        f"from {min(steps):.1f} ms to {max(steps) / 1e3:.1f} s",
        f"{sum(p['agrees_t1'] for p in judged)} of {len(judged)} measured ratios",
        f"each of its {len(gan)} points" if above == len(gan) else f"{above} of its {len(gan)} points",
        f"p = {sign_test(above, len(gan)):.2f}",
        f"+{lean['gan_delta'] / 1e6:.2f} M instructions against +{lean['probe_delta'] / 1e6:.2f} M",
        f"{share:.2%} of its step",
    ]


def history_facts() -> list[str]:
    folder = _source("history")
    h = json.loads((folder / "history.json").read_text())
    versions = list(h["releases"])
    lean = [h["releases"][v]["instructions"]["shapes"]["auto"][LEAN]["delta"] for v in (versions[0], versions[-1])]
    # the largest change in the default Trainer's count, and what one logged value cost before and after it
    defaults = [c for c in h["changes"] if (c["shape"], c["impl"]) == ("auto", DEFAULTS)]
    auto = max(defaults, key=lambda c: c["count_percent"])
    old, new = auto["old"], auto["new"]
    manual = next(c for c in h["changes"] if (c["shape"], c["impl"], c["old"]) == ("manual", DEFAULTS, old))
    rung = {
        v: (s := h["releases"][v]["instructions"]["shapes"]["auto"])["lightning+log"]["per_step"] - s[LEAN]["per_step"]
        for v in (old, new)
    }
    return [
        f"{len(versions)} releases from {versions[0]} to {versions[-1]}",
        f"+{lean[0] / 1e6:.2f} M instructions per step on {versions[0]} and +{lean[1] / 1e6:.2f} M on {versions[-1]}",
        f"Lightning {new} made `self.log` {rung[new] / rung[old]:.0f} times dearer",
        f"+{(rung[new] - rung[old]) / 1e6:.2f} M instructions per logged value",
        f"+{auto['count_percent']:.0f}% (+{auto['count_change'] / 1e6:.2f} M instructions, "
        f"{_us(auto['time_us'])} [{_us(auto['time_low_us'])}, {_us(auto['time_high_us'])}] us",
        f"+{manual['count_percent']:.0f}%",
    ]


def paycurve_in_place_facts() -> list[str]:
    """The pay curve measured in place: the one value that fits every task point of the lean Trainer, against the
    probe's own time, and its counted instructions over the points counted."""
    a = json.loads((_source("pay curve in place") / "paycurve.json").read_text())
    m = a["models"][LEAN]
    own, low, high = m["probe_own_us"]
    first, last = m["tasks_step_ms"]
    common = m["common_us"]
    counted = [p for p in a["points"] if p["impl"] == LEAN and p.get("instructions_delta") is not None]
    steps = [p["step_ms"] for p in counted]
    probe = next(p["instructions_delta"] for p in counted if p["task"] == "overhead_probe")
    deltas = [p["instructions_delta"] / 1e6 for p in counted if abs(p["instructions_delta"] / probe - 1) <= 0.2]
    return [
        f"{m['tasks']} points from {first:.1f} ms to {last:.0f} ms",
        f"one value, {common[0]:,.0f}-{common[1]:,.0f} us, lies inside all {m['tasks']} intervals, "
        f"{(common[0] + common[1]) / 2 / own:.1f} times",
        f"the probe's {own:,.0f} [{low:,.0f}, {high:,.0f}] us",
        f"counted at {len(counted)} points from {min(steps):.2f} ms to {max(steps):.0f} ms: within 20% of the "
        f"probe's +{probe / 1e6:.2f} M instructions per step at {len(deltas)} of them (+{min(deltas):.2f} M to "
        f"+{max(deltas):.2f} M)",
    ]


def probe_after_work_facts() -> list[str]:
    """One invocation: every task at three sizes in place, against the probe after a read and as measured."""
    a = json.loads((_source("probe after work") / "probe-after-work.json").read_text())
    read = next(k for k in a["probes"]["auto"] if "read" in k)
    models = [a["models"][impl] for impl in (LEAN, DEFAULTS)]
    steps = [p["step_ms"] for p in a["points"]]
    mib = re.search(r"(\d+) MiB", read).group(1)
    predicted, points = sum(m[f"probe {read}"] for m in models), sum(m["points"] for m in models)
    return [
        f"reads {mib} MiB",
        f"it predicted {predicted} of {points} in-place figures",
        f"from {min(steps):.1f} ms to {max(steps):.0f} ms, the probe as measured "
        f"{sum(m['probe as measured'] for m in models)}",
    ]


def own_module_facts() -> list[str]:
    """`loopbench module` on Lightning's demo Transformer: the whole-step ratio against the in-place figure."""
    folder = _source("own module")
    o = overheads(tasks_only(load_results(folder))).set_index("impl").loc[LEAN]
    return [o["label"].split(" (")[0], o["own time"].split("], ")[1].removesuffix(" of the step")]


def test_the_guides_state_each_committed_demo_report_and_what_the_split_costs():
    doc = (ROOT / "docs" / "real-modules.md").read_text()
    folders = sorted((ROOT / "reports" / "amd-epyc-2c-avx2" / "own-module").glob("*/"))
    assert len(folders) == 5
    for folder in folders:
        results = tasks_only(load_results(folder))
        verdicts = {p["impl"]: p["verdict"] for _, p in parities(results).iterrows()}
        for _, o in overheads(results).iterrows():
            row = f"| {o['impl']} | "
            line = next(x for x in doc.splitlines() if f"{folder.name}/REPORT.md" in x and row in x)
            assert o["label"].split(" (")[0] in line and o["own time"] in line
            assert line.endswith(f"| {verdicts[o['impl']]} |")
    cost = json.loads((ROOT / "reports" / "amd-epyc-2c-avx2" / "own-module" / "split-cost.json").read_text())
    for fact in (f"{cost[PLAIN]['instructions_delta']:+,.0f}", f"{cost[LEAN]['instructions_delta']:+,.0f}",
                 f"{cost['trainer_minus_plain_instructions']:+,.0f}"):  # fmt: skip
        assert fact in (ROOT / "docs" / "own-module.md").read_text()


def job_rows(parity_json: Path) -> list[str]:
    """docs/real-modules.md's table of the jobs in examples/jobs, one row each, from the runner's JSON."""
    rows = []
    for job in json.loads(parity_json.read_text())["jobs"]:
        module, name = job["factory"].removeprefix("examples.jobs.").split(":")
        first = f"| [`{module}:{name}`](../examples/jobs/{module}.py) | "
        if "refused" in job:
            rows.append(first + "– | – | – | refused: the Trainer cannot train it | – |")
            continue
        lean, default = job[LEAN], job[DEFAULTS]
        steps = lean["steps"] or "manual"
        rows.append(first + f"{steps} | {lean['epochs'] or '–'} | {lean['logged_values']} | {lean['verdict']} | "
                    f"{default['verdict']} |")  # fmt: skip
    return rows


def _seconds(x: float) -> str:
    return f"{x:.2f} s" if x >= 1 else f"{x * 1e3:.3g} ms"


def job_time_rows(parity_json: Path) -> list[str]:
    """docs/real-modules.md's table of where each job's time went, one row a job the sides ran, from the same JSON."""
    rows = []
    for job in json.loads(parity_json.read_text())["jobs"]:
        time = job.get("time", {})
        if PLAIN not in time:
            continue
        plain, cells = time[PLAIN], []
        for impl in (LEAN, DEFAULTS):
            mine = time[impl]
            extra = {p: mine[p] - plain[p] for p in PHASES[:-1]}  # every phase but the whole job
            most = max(extra, key=extra.get)
            ratios = [mine[k] / plain[k] for k in ("whole job", "median step")]
            sign = "+" if extra[most] >= 0 else "-"
            cells += [f"{ratios[0]:.2f}x, {ratios[1]:.2f}x", f"{most} {sign}{_seconds(abs(extra[most]))}"]
        module, name = job["factory"].removeprefix("examples.jobs.").split(":")
        rows.append(f"| `{module}:{name}` | {_seconds(plain['whole job'])} ({_seconds(plain['median step'])}) | "
                    + " | ".join(cells) + " |")  # fmt: skip
    return rows


def test_the_real_modules_page_gives_each_jobs_verdict_and_time_as_the_runner_wrote_them():
    doc = (ROOT / "docs" / "real-modules.md").read_text()
    folder = ROOT / "reports" / "amd-epyc-2c-avx2" / "jobs"
    rows = job_rows(folder / "parity.json") + job_time_rows(folder / "parity.json")
    missing = [row for row in rows if row not in doc]
    assert not missing, f"docs/real-modules.md lacks these rows of {folder}/parity.json: {missing}"
    assert len(job_time_rows(folder / "parity.json")) >= 20  # every job the sides ran has its time


# numbers that no run measures: budgets the commands are held to, names of precisions, the probe's own size
CONSTANTS = {"2", "15", "5", "3", "32", "16", "-8", "8", "1", "100", "3.10", "95", "10"}


def _facts() -> list[str]:
    facts = headline_facts() + overhead_facts() + benchmark_table_facts() + paycurve_facts() + history_facts()
    return facts + own_module_facts() + paycurve_in_place_facts() + probe_after_work_facts()


def test_the_readme_answers_in_a_table_within_its_first_forty_lines():
    words = len(re.sub(r"<!--.*?-->", "", FIRST).split())
    prose = re.sub(r"\]\([^)]*\)|<!--.*?-->", "", FIRST)
    numbers = {n.lstrip("+-") for n in NUMBER.findall(prose)}
    assert words <= 350 and len(numbers) <= 20, (words, sorted(numbers))
    assert "| lean Trainer" in FIRST and "| default Trainer" in FIRST and "| Fabric" in FIRST
    for command in ("loopbench module", "loopbench compare", "assert_same_training", "tox -e bench"):
        assert command in FIRST
    assert "[glossary](docs/glossary.md)" in FIRST


def table_facts() -> list[str]:
    """The first screen's table: each framework's extra time per step after a near-zero step (the bench's probe)
    and on real jobs (the probe after a read, in place), what that is at a 10, 60 and 100 ms step, parity, memory."""
    results = load_results(_source("headline"))
    auto = probe_report.answers(results)["cpu"]["shapes"]["auto"]
    after = json.loads((_source("probe after work") / "probe-after-work.json").read_text())["probes"]["auto"]
    read = next(v for k, v in after.items() if "read" in k)
    env = next(r.env for r in tasks_only(results) if r.env)
    par = parities(tasks_only(results))
    assert set(par["verdict"]) == {"bitwise"} and set(par["impl"]) == {LEAN, DEFAULTS, FABRIC}
    runs = {(r.config["task"], r.config["precision"], r.config["impl"]): r for r in fresh(tasks_only(results)) if r.ok}
    gaps = [abs(r.peak_rss_bytes - runs[(t, p, PLAIN)].peak_rss_bytes) for (t, p, i), r in runs.items() if i != PLAIN]
    facts = [f"torch {env['torch'].split('+')[0]}", f"Lightning {env['pytorch_lightning']}", "bitwise, every cell",
             f"±{max(gaps) / 2**20:.0f} MiB", f"| +{auto[FABRIC]['delta_us']:,.0f} us / – |"]  # fmt: skip
    assert auto[FABRIC]["delta_us"] / 10e3 < 0.01  # Fabric's floor is under 1% of a 10 ms step: "under 1%"
    for impl in (LEAN, DEFAULTS):
        real = read[impl]["own_us"]
        facts.append(f"+{auto[impl]['delta_us']:,.0f} / +{real:,.0f} us")
        facts.append(" / ".join(f"+{100 * real / (t * 1e3):.2g}%" for t in (10, 60, 100)))
    return facts


def test_every_fact_of_the_table_is_computed_from_the_committed_json():
    missing = [f for f in table_facts() if f not in FIRST]
    assert not missing, f"not in the README's table as the committed JSON gives them: {missing}"


def _unexplained(page: str, facts: list[str], constants: set[str]) -> list[str]:
    prose = re.sub(r"```.*?```", "", page, flags=re.S)  # the commands' own text is not a claim
    prose = re.sub(r"\]\([^)]*\)|`[0-9a-f]{12}`|<!--.*?-->", "", prose)  # links, commits (a fact above), sources
    prose = re.sub(r"\b(?:bf16|fp16|fp32|x86-64|AVX-?\d+\w*|B0|CIFAR-10|MNIST|PR|\d+-mixed|\d+-true)\b", "", prose)
    prose = re.sub(r"#\d+", "", prose)  # a pull request's or an issue's number
    return sorted(
        {n for n in NUMBER.findall(prose) if n not in constants and not any(n in f for f in facts)},
        key=lambda n: prose.index(n),
    )


def test_every_number_on_the_first_screen_is_one_of_its_facts_or_a_named_constant():
    unexplained = _unexplained(FIRST, table_facts(), {"10", "60", "100", "1", "5"})  # the step lengths, the gate's %
    assert not unexplained, f"numbers on the README's first screen that no committed JSON gives: {unexplained}"


def test_every_fact_of_the_detail_page_is_computed_from_the_committed_json():
    missing = [f for f in _facts() if f not in RESULTS]
    assert not missing, f"not in docs/results.md as the committed JSON gives them: {missing}"


def test_every_number_on_the_detail_page_is_one_of_its_facts_or_a_named_constant():
    unexplained = _unexplained(RESULTS, _facts(), CONSTANTS)
    assert not unexplained, f"numbers in docs/results.md that no committed JSON gives: {unexplained}"


def test_the_median_of_a_list_is_what_the_facts_assume():  # the facts' own arithmetic, on known values
    assert statistics.median([3, 1, 2]) == 2 and _interval(
        {"delta_us": 438.2, "delta_low_us": 266, "delta_high_us": 763}
    )


def benchmark_table_facts() -> list[str]:
    """pytest-benchmark's own JSON beside the headline report: in how many of the report's intervals the ratio of its
    medians (each implementation's seconds per step, one sample per round) lies."""
    runs = json.loads((_source("headline") / "pytest-benchmark.json").read_text())["benchmarks"]
    impl = {b["name"]: b["params"]["cell"][1] for b in runs}  # the parameter is (cell, implementation)
    median = {(b["group"], impl[b["name"]]): b["stats"]["median"] for b in runs}
    judged = inside = 0
    for b in runs:
        r = b["extra_info"].get("ratio_vs_plain") or {}
        if r.get("low") is None:
            continue
        ratio = median[(b["group"], impl[b["name"]])] / median[(b["group"], PLAIN)]
        inside += r["low"] <= ratio <= r["high"]
        judged += 1
    assert judged >= 6
    return [f"the ratio of its medians lies inside {inside} of {judged} intervals"]
