"""Root conftest: every test runs under the strict schema plugin (telemetry findings fail the test),
and tests that read other projects' reference data find it through one setting (`reference`).

`bounded_cli` runs `knhk-otel` as a user does (a separate process) under a time and memory bound, and
reports the wall time and the peak RSS of exactly that process: the bad-input tests assert both.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from knhk_otel.harness.reference import ABSENT_PREFIX, SEMCONV_MODEL, ReferenceData

pytest_plugins = ["knhk_otel.harness.pytest_plugin", "pytester"]

REPO_ROOT = Path(__file__).resolve().parents[1]

#: A hard ceiling on the address space of a CLI under test, so a runaway cannot take the machine.
_ADDRESS_SPACE_LIMIT = 4 * 1024**3

#: Runs the CLI and, at exit, writes its peak RSS (VmHWM of its own memory map) to a file. The kernel's
#: ru_maxrss would not do: it keeps the high-water mark of the forked pytest process the child was
#: before exec, so it reports the test runner's size, not the CLI's.
_LAUNCHER = """
import atexit, os, runpy, sys

def _peak() -> None:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                with open(os.environ["KNHK_PEAK_RSS_FILE"], "w") as out:
                    out.write(line.split()[1])

atexit.register(_peak)
sys.argv[0] = "knhk-otel"
runpy.run_module("knhk_otel.cli", run_name="__main__")
"""


@dataclass(frozen=True)
class Bounded:
    code: int
    out: str
    err: str
    seconds: float
    max_rss_mib: float
    timed_out: bool

    def one_line(self) -> str:
        """The single line of stderr (asserting there is exactly one, and no traceback)."""
        assert "Traceback" not in self.err + self.out, self.err
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


BoundedCli = Callable[..., Bounded]


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_ADDRESS_SPACE_LIMIT, _ADDRESS_SPACE_LIMIT))


@pytest.fixture
def bounded_cli() -> BoundedCli:
    def run(
        *args: str, timeout: float = 60.0, cwd: Path | None = None, stdin: bytes | None = None
    ) -> Bounded:
        with (
            tempfile.TemporaryFile() as out,
            tempfile.TemporaryFile() as err,
            tempfile.TemporaryFile() as inp,
        ):
            if stdin is not None:
                inp.write(stdin)
                inp.seek(0)
            peak_file = Path(tempfile.mkdtemp()) / "peak_rss_kib"
            start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, *args],
                cwd=cwd,
                env={**os.environ, "KNHK_PEAK_RSS_FILE": str(peak_file)},
                stdin=inp,
                stdout=out,
                stderr=err,
                preexec_fn=_limit_address_space,
            )
            killed = threading.Event()

            def kill() -> None:
                killed.set()
                proc.kill()

            timer = threading.Timer(timeout, kill)
            timer.start()
            try:
                proc.wait()
            finally:
                timer.cancel()
            seconds = time.monotonic() - start
            # killed before exit: no figure, and the timeout assertion says why
            peak_kib = float(peak_file.read_text()) if peak_file.exists() else 0.0
            peak_file.unlink(missing_ok=True)
            peak_file.parent.rmdir()
            out.seek(0)
            err.seek(0)
            return Bounded(
                proc.returncode,
                out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"),
                seconds,
                peak_kib / 1024,
                killed.is_set(),
            )

    return run


@pytest.fixture(scope="session")
def reference() -> ReferenceData:
    """`reference.require(piece, what)`: the path, or a skip naming what did not run (CI: a failure)."""
    return ReferenceData.from_env(REPO_ROOT)


@pytest.fixture(scope="session")
def semconv_model(reference: ReferenceData) -> Path:
    """The OpenTelemetry semantic-conventions model v1.44.0: the toolchain's conformance input."""
    return reference.require(SEMCONV_MODEL, "tests on the OpenTelemetry semconv v1.44.0 model")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One loud line per absent piece of reference data, so a green run shows what it did not run."""
    skipped: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        if ABSENT_PREFIX in reason:
            skipped[reason[reason.index(ABSENT_PREFIX) :]] += 1
    if not skipped:
        return
    terminalreporter.section("reference suites skipped", sep="=", yellow=True, bold=True)
    for reason, count in sorted(skipped.items()):
        terminalreporter.line(f"{count} test(s): {reason}", yellow=True)
