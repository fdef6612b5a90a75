"""docs/compliance.md, the duty table, cannot drift from the code: every file it names exists, every test it names
exists in its file, every enforced or partial duty names a test; the README links it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATUSES = ("enforced", "partial", "absent", "outside")


def _rows() -> list[dict[str, str]]:
    lines = [ln for ln in (ROOT / "docs" / "compliance.md").read_text().splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["duty", "clause", "status", "where enforced", "tests"], header
    return [dict(zip(header, (c.strip() for c in ln.strip("|").split("|")), strict=True)) for ln in lines[2:]]


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_the_duty_table_names_code_and_tests_that_exist() -> None:
    rows = _rows()
    assert len(rows) >= 30
    problems = []
    for row in rows:
        status = row["status"].split(":", 1)[0]
        assert status in STATUSES, row
        for path in re.findall(r"`([^`:]+\.(?:py|yml|md))`", row["where enforced"]):
            if not (ROOT / path).is_file():
                problems.append(f"{row['duty']}: no file {path}")
        tests = re.findall(r"`(tests/[^`]+?\.py)::(\w+)`", row["tests"])
        if status in ("enforced", "partial") and not tests:
            problems.append(f"{row['duty']}: {status} but no test named")
        if status in ("enforced", "partial") and not row["where enforced"]:
            problems.append(f"{row['duty']}: {status} but no code named")
        for path, name in tests:
            file = ROOT / path
            if not file.is_file() or name not in _tests_in(file):
                problems.append(f"{row['duty']}: no test {path}::{name}")
    assert not problems, "\n".join(problems)


def test_the_readme_links_the_duty_table() -> None:
    assert "(docs/compliance.md)" in (ROOT / "README.md").read_text()
