"""The docs tell one truth with the code: every setting the code reads is in docs/settings.md, and every `alpr`
command that README.md and docs/ show parses against the CLI."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from alpr.cli import build_parser
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Where `ALPR_*` variables are read: the code, the compose file, the Makefile, the fuzz and bench harnesses.
READERS = [
    *(p for d in ("alpr", "services", "shared", "bench", "tests/fuzz") for p in (ROOT / d).rglob("*.py")),
    ROOT / "docker-compose.yml",
    ROOT / "Makefile",
]
PLACEHOLDERS = {"ALPR_NAME"}  # `ALPR_NAME='value'`: how alpr.env's lines look, not a variable


def test_every_setting_the_code_reads_is_in_docs_settings() -> None:
    documented = (ROOT / "docs" / "settings.md").read_text()
    read = {f"ALPR_{name.upper()}" for name in Settings.model_fields}
    for path in READERS:
        read |= set(re.findall(r"ALPR_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    missing = sorted(
        v for v in read - PLACEHOLDERS if not re.search(rf"`{v}(`|_<)|{v}[`,]", documented) and v not in documented
    )
    assert missing == []


def _shown_commands() -> list[tuple[str, str, bool]]:
    """`alpr …` as the docs show it: in code blocks (one per line; `make alpr ARGS="…"` too) and inline code. The
    flag says whether it was inline: there the docs also name a command without its arguments (`alpr eval-ocr`)."""
    found = []
    for path in DOCS:
        text = path.read_text()
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
        lines = [(line, False) for block in blocks for line in block.splitlines()]
        inline = [(c, True) for c in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))]
        for snippet, is_inline in lines + inline:
            snippet = snippet.split(" #")[0].strip()
            make = re.search(r'make alpr ARGS="([^"]*)"', snippet)
            if make:
                found.append((path.name, "alpr " + make.group(1), is_inline))
                continue
            match = re.search(r"(?:^|[\s(])(?:\.venv/bin/)?alpr ([a-z].*)$", snippet)
            if match:
                found.append((path.name, "alpr " + match.group(1), is_inline))
    return found


def _argv(command: str) -> list[list[str]]:
    """The command's words as a reader types them: `<value>` and a metavar (`N`) filled in, `$(date +%F)` a date,
    `[--stage …]` left out, `[--json]` kept; a doc's `a | b` or `a / b` shorthand (`alpr agents list | rotate
    pole-12`) is several commands under the same group."""
    command = re.sub(r"\$\(\(\$\(date \+%Y\)\+1\)\)", "2027", command)
    command = re.sub(r"\$\(date \+%F\)", "2026-12-07", command)
    command = re.sub(r"\[[^\[\]]*(…|\.\.\.)[^\[\]]*\]", "", command)
    command = re.sub(r"\[([^\[\]]*)\]", r"\1", command).replace("…", "").replace("...", "")
    command = re.sub(r"\s*[|/]\s*(?=[a-z-]+(\s|$))", " | ", command)
    words = [re.sub(r"<[^>]*>", "X", w) for w in shlex.split(command, posix=True)[1:]]
    words = ["1" if re.fullmatch(r"[A-Z]+", w) else w for w in words]
    out: list[list[str]] = [[]]
    for word in words:
        if word == "|":
            out.append(out[0][:1])  # `alpr agents list | rotate pole-12`: `agents rotate pole-12`
        else:
            out[-1].append(word)
    return [argv for argv in out if argv]


class _Refused(Exception):
    pass


def test_every_alpr_command_shown_in_the_docs_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    def error(self: argparse.ArgumentParser, message: str) -> None:
        raise _Refused(message)

    monkeypatch.setattr(argparse.ArgumentParser, "error", error)
    monkeypatch.setattr(argparse.ArgumentParser, "print_help", lambda self, file=None: None)
    parser = build_parser()
    shown = _shown_commands()
    assert len(shown) > 20  # the extraction finds the docs' commands (a change of format must not make this empty)
    refused = []
    for where, command, is_inline in shown:
        for argv in _argv(command):
            try:
                parser.parse_args(argv)
            except _Refused as exc:
                # Inline, a command named without its arguments is a reference to it: it must exist, that is all.
                if not (is_inline and str(exc).startswith("the following arguments are required")):
                    refused.append(f"{where}: {command!r} -> {argv}: {exc}")
            except SystemExit as exc:  # `--help`: shown, and answered
                assert exc.code == 0
    assert refused == [], "\n".join(refused)
