"""Root conftest: every test runs under the strict schema plugin (telemetry findings fail the test).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["knhk_otel.validate.pytest_plugin", "pytester"]

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
