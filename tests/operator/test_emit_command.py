"""`knhk-otel emit -r schema --endpoint URL`: one sample of every span, metric and event, over OTLP,
received by a real `knhk-otel live-check` that finds every one of them and no violation."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from knhk_otel.schema import load_and_resolve

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def live_check(tmp_path: Path) -> Iterator[dict[str, int]]:
    ports_file = tmp_path / "ports.json"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "knhk_otel.cli", "live-check", "-r", str(REPO / "schema"),
            "--otlp-grpc-port", "0", "--otlp-http-port", "0", "--admin-port", "0",
            "--ports-file", str(ports_file), "--format", "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        for _ in range(600):
            if ports_file.exists() and ports_file.read_text().endswith("\n"):
                break
            assert proc.poll() is None, proc.communicate(timeout=10)
            time.sleep(0.05)
        yield json.loads(ports_file.read_text())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _emit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knhk_otel.cli", "emit", "-r", str(REPO / "schema"), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def _stop(ports: dict[str, int]) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{ports['admin']}/stop", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_emit_sends_one_of_everything_and_it_conforms(live_check: dict[str, int], protocol: str) -> None:
    port = live_check["grpc"] if protocol == "grpc" else live_check["http"]
    done = _emit("--endpoint", f"http://127.0.0.1:{port}", "--protocol", protocol)
    assert done.returncode == 0, done.stderr
    registry, _ = load_and_resolve(REPO / "schema")
    assert registry is not None
    own = [g for g in registry.groups if g.id in registry.own]
    counts = {t: sum(g.type == t for g in own) for t in ("span", "metric", "event")}
    assert f"{counts['span']} spans, {counts['metric']} metrics, {counts['event']} events" in done.stderr
    stats = _stop(live_check)["statistics"]
    # every span, metric, event and attribute of the registry arrived, and none broke the schema
    assert {kind: cov["never_seen"] for kind, cov in stats["coverage"].items()} == {
        "attributes": [],
        "spans": [],
        "metrics": [],
        "events": [],
    }
    assert stats["samples_by_type"] == {
        "span": counts["span"],
        "metric": counts["metric"],
        "event": counts["event"],
        "resource": 1,
    }
    assert stats["findings_by_level"]["violation"] == 0
    assert stats["findings_by_level"]["improvement"] == 0


def test_emit_to_nobody_fails_with_one_line() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        done = _emit("--endpoint", f"http://127.0.0.1:{port}", "--protocol", "http/protobuf")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert f"export to http://127.0.0.1:{port} (http/protobuf) failed" in line


def test_emit_refuses_an_endpoint_that_is_not_a_url() -> None:
    done = _emit("--endpoint", "notaurl")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "knhk-otel emit: error: --endpoint 'notaurl': expected a URL like http://HOST:4317"
    ]
