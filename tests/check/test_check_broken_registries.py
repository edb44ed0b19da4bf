"""Every broken registry under broken/ fails `knhk-otel check` with exactly the diagnostics it expects.

Each case folder holds a small registry, `expected.txt` (one `id file:line:col message-fragment`
per expected error, `#` comments allowed) and optionally `args.txt` (extra CLI arguments, e.g. a
policy file or a baseline registry, relative to the case folder).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BROKEN = Path(__file__).resolve().parent / "broken"
CliRunner = Callable[..., Any]  # the `cli` / `cli_process` fixtures of conftest.py

LINE_RE = re.compile(
    r"^(?P<where>[^\s:]+:\d+:\d+): (?P<severity>error|warning|info)\[(?P<id>[a-z_]+)\]: (?P<msg>.+)$"
)
SUMMARY_RE = re.compile(r"^[✔✘] \S+: \d+ files, \d+ groups, \d+ errors, \d+ warnings$")


@dataclass(frozen=True)
class Expected:
    id: str
    where: str
    fragment: str


def _expected(case: Path) -> list[Expected]:
    out = []
    for raw in (case / "expected.txt").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        diag_id, where, *rest = line.split(" ", 2)
        out.append(Expected(diag_id, where, rest[0] if rest else ""))
    return out


def _args(case: Path) -> list[str]:
    args_file = case / "args.txt"
    return args_file.read_text(encoding="utf-8").split() if args_file.is_file() else []


CASES = sorted(p for p in BROKEN.iterdir() if (p / "expected.txt").is_file())


def test_there_are_at_least_25_distinct_broken_registries() -> None:
    assert len(CASES) >= 25
    faults = {tuple(_expected(c)) for c in CASES}
    assert len(faults) == len(CASES), "two cases expect the very same diagnostics"
    assert all(_expected(c) for c in CASES), "a case expects no error at all"


def _errors(out: str) -> list[tuple[str, str, str]]:
    lines = out.splitlines()
    assert lines, "check printed nothing"
    assert SUMMARY_RE.match(lines[-1]), f"last line is not the summary: {lines[-1]!r}"
    found = []
    for line in lines[:-1]:
        m = LINE_RE.match(line)
        assert m, f"not a one-line diagnostic: {line!r}"
        if m["severity"] == "error":
            found.append((m["id"], m["where"], m["msg"]))
    return found


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_registry_fails_with_exact_diagnostics(case: Path, cli: CliRunner) -> None:
    result = cli("check", "-r", ".", *_args(case), cwd=case)
    assert "Traceback" not in result.out + result.err
    assert result.out == ""  # diagnostics and summary go to stderr
    assert result.code == 1
    errors = _errors(result.err)
    expected = _expected(case)
    assert [(e, w) for e, w, _ in errors] == [(x.id, x.where) for x in expected]
    for (_, _, message), want in zip(errors, expected, strict=True):
        assert want.fragment in message


@pytest.mark.parametrize(
    "name", ["yaml_syntax_error", "broken_policy_file", "baseline_removed", "policy_raises"]
)
def test_broken_registry_as_a_separate_process(name: str, cli_process: CliRunner) -> None:
    case = BROKEN / name
    result = cli_process("check", "-r", ".", *_args(case), cwd=case)
    assert "Traceback" not in result.out + result.err
    assert result.code == 1
    assert [(e, w) for e, w, _ in _errors(result.err)] == [(x.id, x.where) for x in _expected(case)]
