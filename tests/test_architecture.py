"""The instrument's import graph, read from its source: no circle between its modules, no private name taken
from another package, and each task's loops import only the harness's contract. `tox -e lint` checks the
layers themselves (lint-imports, contracts in pyproject.toml); this holds where that tool is not installed."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "loopbench"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, [names]) of every import in the file, in functions too; relative imports resolved."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        targets = set()
        for imported, names in _imports(path):
            for target in [f"{imported}.{n}" for n in names] + [imported]:
                if target in files and target != mod:
                    targets.add(target)
                    break
        graph[mod] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_circle_of_imports_between_the_instruments_modules():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_circle_finder_finds_a_circle():  # its positive control
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


OURS = ("loopbench", "implementations", "experiments", "benchmarks", "examples", "tests")


def test_no_private_name_is_imported_from_another_module_anywhere():
    crossing = []
    for path in (p for top in OURS for p in (ROOT / top).rglob("*.py")):
        for imported, names in _imports(path):
            if imported.split(".")[0] in OURS and imported != _module(path):
                crossing += [f"{_module(path)}: {imported}.{n}" for n in names if n.startswith("_") and n[1] != "_"]
    assert not crossing


def test_nothing_in_the_instrument_imports_the_experiments_or_the_bench():
    """The experiments and the benchmark entry sit above the instrument: nothing in loopbench imports them."""
    upward = [f"{_module(p)}: {i}" for p in PACKAGE.rglob("*.py") for i, _ in _imports(p)
              if i.split(".")[0] in ("experiments", "benchmarks")]  # fmt: skip
    assert not upward


def test_the_shared_core_knows_no_task():
    """`core` is below everything, the tasks included: a task's checks live with the registry (implementations)."""
    upward = [f"{_module(p)}: {i}" for p in (PACKAGE / "core").rglob("*.py") for i, _ in _imports(p)
              if i.split(".")[0] == "implementations"]  # fmt: skip
    assert not upward


def test_a_tasks_loops_import_only_the_contract_from_the_instrument():
    allowed = {"loopbench.harness.run", "loopbench.core.trainers", "loopbench.core.types"}
    seen = {
        imported
        for path in (ROOT / "implementations").rglob("*_loop.py")
        for imported, _ in _imports(path)
        if imported.startswith("loopbench")
    }
    assert seen and seen <= allowed, seen - allowed


TRACKED_LIMIT_BYTES = 40 * 2**20  # the device tool carries a working tree of at most 64 MiB: room to spare


def test_the_tracked_tree_stays_small_enough_to_carry_to_a_gpu_machine():
    import shutil
    import subprocess

    import pytest

    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no tracked tree to measure")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    sizes = {n.decode(): (ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file()}
    largest = sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    assert sum(sizes.values()) <= TRACKED_LIMIT_BYTES, (
        f"{sum(sizes.values()) / 2**20:.1f} MiB tracked; largest {largest}"
    )


def test_no_module_of_the_instrument_is_over_300_lines():
    long = {_module(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long
