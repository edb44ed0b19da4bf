"""The self-test emitter's exit code says whether its telemetry left: the SDK alone only logs a failure."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from knhk_otel.harness.pytest_plugin import project_registry
from knhk_otel.harness.selftest import EXIT_EXPORT_FAILED
from knhk_otel.validate.server import LiveCheck, LiveCheckOptions

REPO_ROOT = Path(__file__).resolve().parents[2]


def _selftest(endpoint: str, protocol: str, timeout_s: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_TIMEOUT": str(timeout_s),  # bounds each export and its retries
    }
    return subprocess.run(
        [sys.executable, "-m", "knhk_otel.harness.selftest", "--validation", "off"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Live = tuple[LiveCheck, dict[str, int]]


@pytest.fixture
def live() -> Iterator[Live]:
    registry = project_registry(str(REPO_ROOT / "schema"))
    check = LiveCheck(registry, LiveCheckOptions(grpc_port=0, http_port=0, admin_port=None))
    ports = check.start()
    yield check, ports
    check.stop()
    check.close()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_an_export_to_nowhere_exits_non_zero_and_says_which(protocol: str) -> None:
    proc = _selftest(f"http://127.0.0.1:{_unused_port()}", protocol, timeout_s=1)
    assert proc.returncode == EXIT_EXPORT_FAILED, proc.stderr
    assert "selftest: exports failed (batches per signal): event 1, metric 1, span 1" in proc.stderr


@pytest.mark.parametrize(("protocol", "port"), [("http/protobuf", "http"), ("grpc", "grpc")])
def test_exports_that_arrive_exit_zero(live: Live, protocol: str, port: str) -> None:
    check, ports = live
    # a busy machine must not turn a slow answer into a failed export
    proc = _selftest(f"http://127.0.0.1:{ports[port]}", protocol, timeout_s=30)
    assert proc.returncode == 0, proc.stderr
    assert "exports failed" not in proc.stderr
    stats = check.stop()["statistics"]
    assert stats["samples_by_type"]["span"] > 0 and stats["samples_by_type"]["metric"] > 0
