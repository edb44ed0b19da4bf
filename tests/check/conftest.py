"""Fixtures for the checker's tests: where things are, and the real CLI run in-process or as a process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from knhk_otel.cli import main
from knhk_otel.harness.reference import WEAVER_SCHEMAS, ReferenceData

REPO_ROOT = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).resolve().parent / "broken"


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


CliRunner = Callable[..., CliResult]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """`knhk-otel ARGS...` in-process through the real dispatcher, from `cwd` when given."""

    def run(*args: str, cwd: Path | None = None) -> CliResult:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli_process() -> CliRunner:
    """`python -m knhk_otel.cli ARGS...` as a separate process (what a user or CI runs)."""

    def run(*args: str, cwd: Path | None = None) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "knhk_otel.cli", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="session")
def weaver_schemas(reference: ReferenceData) -> Path:
    """Weaver's published JSON Schemas for the v1 and v2 registry syntax."""
    return reference.require(WEAVER_SCHEMAS, "cross-checks against Weaver's JSON Schemas")
