"""The README's first screen answers, and its numbers are the committed report's."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
NUMBER = r"[+\-]?[\d,.]+"


def test_the_readme_is_short_and_answers_on_its_first_screen():
    lines = README.splitlines()
    first = "\n".join(lines[:40])
    assert len(lines) < 200
    assert "tox -e bench" in first and "tox " in first and "Lightning" in first
    assert "delta / T" in first or "delta/T" in first


def test_the_readme_headline_numbers_are_the_committed_reports():
    source = re.search(r"<!-- headline from (reports/\S+/REPORT\.md) -->", README)
    assert source, "the README names the report its headline comes from"
    report = (ROOT / source.group(1)).read_text()
    sentence = re.search(
        rf"the lean Trainer ({NUMBER}) \[({NUMBER}), ({NUMBER})\] us and the default Trainer \(with `self.log` "
        rf"every step\) ({NUMBER}) \[({NUMBER}), ({NUMBER})\] us\*\* over the plain loop's ({NUMBER}) us",
        report,
    )
    assert sentence, "the committed report has its headline sentence"
    first = "\n".join(README.splitlines()[:40])
    for value in sentence.groups():
        assert value in first, f"{value} (from {source.group(1)}) is not on the README's first screen"
    counted = re.search(rf"counted, the two cost ({NUMBER}) M and ({NUMBER}) M instructions", report)
    if counted:
        assert all(f"{v} M" in first for v in counted.groups())
    commit = re.search(r"\*\*Commit:\*\* (\w+)", report).group(1)
    assert commit in first
