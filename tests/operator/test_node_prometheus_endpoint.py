"""A node's own Prometheus endpoint (OTel Prometheus exporter) and its export-failure counting."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from knhk_otel.runtime.config import ConfigError, TelemetryConfig
from knhk_otel.runtime.providers import build_providers
from knhk_otel.semconv import attributes as A
from knhk_otel.semconv import metrics as M


def _scrape(host: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as resp:
        return str(resp.read().decode("utf-8"))


def test_otel_metrics_exporter_prometheus_serves_schema_names_and_the_resource() -> None:
    env = {
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": "0",
        "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=a1b2c3d4e5f60718,knhk.mesh.node.id=a1b2c3d4e5f60718",
    }
    config = TelemetryConfig.from_env(env, export=False, validation="strict")
    assert config.metrics_exporters == ("prometheus",)
    telemetry = build_providers(config)
    try:
        assert telemetry.prometheus_address is not None
        host, port = telemetry.prometheus_address
        meter = telemetry.meter_provider.get_meter("knhk_mesh")
        M.GossipRounds(meter).add(3)
        M.TickUsage(meter).record(2, tick_operation=A.TickOperation.MERGE)
        body = _scrape(host, port)
    finally:
        telemetry.shutdown()
    assert "knhk_mesh_gossip_rounds_total" in body
    assert 'knhk_mesh_tick_usage_bucket{knhk_mesh_tick_operation="merge"' in body
    # node identity once, on target_info (the resource), not on every point
    (target_info,) = [line for line in body.splitlines() if line.startswith("target_info{")]
    assert 'service_instance_id="a1b2c3d4e5f60718"' in target_info
    assert 'knhk_mesh_node_id="a1b2c3d4e5f60718"' in target_info
    assert "node_id" not in "".join(line for line in body.splitlines() if line.startswith("knhk_mesh_"))


def test_a_taken_prometheus_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = TelemetryConfig(
            export=False,
            validation="off",
            metrics_exporters=("prometheus",),
            prometheus_host="127.0.0.1",
            prometheus_port=port,
        )
        with pytest.raises(ConfigError, match=f"prometheus endpoint 127.0.0.1:{port}"):
            build_providers(config)


@pytest.mark.parametrize("raw", ["prom", "otlp,zipkin"])
def test_unknown_metrics_exporters_are_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="OTEL_METRICS_EXPORTER"):
        TelemetryConfig.from_env({"OTEL_METRICS_EXPORTER": raw})


def test_failed_otlp_exports_are_counted_by_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        config = TelemetryConfig(
            export=True,
            validation="off",
            otlp_protocol="http/protobuf",
            otlp_endpoint=f"http://127.0.0.1:{port}",
        )
        telemetry = build_providers(config)
        seen: list[str] = []
        telemetry.exports.listener = seen.append
        telemetry.tracer_provider.get_tracer("t").start_span("knhk.mesh.gossip.round").end()
        start = time.monotonic()
        telemetry.tracer_provider.force_flush(timeout_millis=30_000)
        telemetry.shutdown()
    assert telemetry.exports.counts.get("span", 0) >= 1
    assert "span" in seen
    assert time.monotonic() - start < 60


def _knhk_mesh() -> str:
    return str(Path(sys.executable).with_name("knhk-mesh"))


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--prometheus-port=9464", "--prometheus-port 9464 with --transport quic: every node process"),
        ("--prometheus-host=0.0.0.0", "--prometheus-host 0.0.0.0 with --transport quic: the node processes"),
    ],
)
def test_up_over_quic_refuses_one_fixed_endpoint_for_many_processes(flag: str, message: str) -> None:
    done = subprocess.run(
        [_knhk_mesh(), "up", "--transport=quic", "--nodes=2", flag],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.slow
def test_up_over_quic_serves_one_prometheus_endpoint_per_node_process(tmp_path: Path) -> None:
    """`knhk-mesh up --transport quic --prometheus-port 0`: each node prints its own endpoint, which
    serves the node's metrics while the mesh runs; the summary keeps the addresses."""
    summary = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [
            _knhk_mesh(),
            "up",
            "--transport=quic",
            "--nodes=2",
            "--duration=4",
            "--prometheus-port=0",
            f"--workdir={tmp_path / 'mesh'}",
            f"--summary={summary}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        endpoints: dict[str, str] = {}
        seen: list[str] = []
        deadline = time.monotonic() + 120
        while len(endpoints) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.match(r"metrics for Prometheus: (node-\d+) http://(127\.0\.0\.1:\d+)/metrics", line)
            if found:
                endpoints[found.group(1)] = found.group(2)
        assert sorted(endpoints) == ["node-00", "node-01"], "".join(seen)
        for address in endpoints.values():
            host, port = address.split(":")
            body = _scrape(host, int(port))
            (target_info,) = [line for line in body.splitlines() if line.startswith("target_info{")]
            assert "knhk_mesh_node_id=" in target_info
            # the node's own figures (every agent is reported healthy from its start)
            assert 'knhk_mesh_partition_status{knhk_mesh_partition_status="healthy"' in body, body
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed early: `up` stops its node processes on SIGINT
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    assert proc.returncode == 0, "".join(seen) + rest
    doc = json.loads(summary.read_text())
    assert doc["prometheus_targets"] == endpoints
