"""Real SDK telemetry over OTLP gRPC and HTTP into a live-check on 127.0.0.1: exact findings."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.server import LiveCheck, LiveCheckOptions

Expected = list[tuple[str, str | None, int, tuple[tuple[str, str, str | None], ...]]]


def summarize(
    report: dict[str, Any],
) -> Expected:
    """The report's samples reduced to what the crafted set's expectations state."""
    out = []
    for s in report["samples"]:
        found = tuple((f["id"], f["level"], f.get("attribute")) for f in s["findings"])
        out.append((s["signal_type"], s["signal_name"], s["count"], found))
    return out


@pytest.fixture
def live(shop: ResolvedRegistry) -> Iterator[LiveCheck]:
    lc = LiveCheck(shop, LiveCheckOptions(grpc_port=0, http_port=0, admin_port=0))
    lc.start()
    yield lc
    lc.stop()
    lc.close()


def _exporters(protocol: str, port: int, gzip: bool) -> tuple[Any, Any, Any]:
    if protocol == "grpc":
        from grpc import Compression
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = f"http://127.0.0.1:{port}"
        c = Compression.Gzip if gzip else Compression.NoCompression
        return (
            OTLPSpanExporter(endpoint=endpoint, insecure=True, compression=c),
            OTLPMetricExporter(endpoint=endpoint, insecure=True, compression=c),
            OTLPLogExporter(endpoint=endpoint, insecure=True, compression=c),
        )
    from opentelemetry.exporter.otlp.proto.http import Compression as HC
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HL
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HM
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HS

    base = f"http://127.0.0.1:{port}"
    hc = HC.Gzip if gzip else HC.NoCompression
    return (
        HS(endpoint=f"{base}/v1/traces", compression=hc),
        HM(endpoint=f"{base}/v1/metrics", compression=hc),
        HL(endpoint=f"{base}/v1/logs", compression=hc),
    )


def _send_over_otlp(crafted: Any, protocol: str, port: int, gzip: bool) -> None:
    span_exporter, metric_exporter, log_exporter = _exporters(protocol, port, gzip)
    tracer_provider = TracerProvider(resource=crafted.resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=crafted.resource, metric_readers=[reader])
    logger_provider = LoggerProvider(resource=crafted.resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    crafted.emit(tracer_provider, meter_provider, logger_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()


def _admin(port: int, method: str, path: str) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


@pytest.mark.parametrize(
    ("protocol", "gzip"), [("grpc", False), ("grpc", True), ("http", False), ("http", True)]
)
def test_sdk_telemetry_over_otlp_gets_the_exact_findings(
    live: LiveCheck, crafted: Any, protocol: str, gzip: bool
) -> None:
    _send_over_otlp(crafted, protocol, live.ports[protocol], gzip)
    status, report = _admin(live.ports["admin"], "POST", "/stop")
    assert status == 200
    assert summarize(report) == crafted.expected
    st = report["statistics"]
    assert st["samples_by_type"] == {"event": 2, "metric": 4, "resource": 1, "span": 5}
    # the orders counter and the good event; the good checkout span carries a template key, which
    # Weaver's built-in advice reports as information (template_attribute)
    assert st["samples_without_findings"] == 2
    assert st["log_records_without_event"] == 1
    assert st["findings_by_level"] == {"violation": 13, "improvement": 3, "information": 3}
    assert st["highest_level"] == "violation"


def test_coverage_counts_what_was_seen_and_what_never_was(live: LiveCheck, crafted: Any) -> None:
    _send_over_otlp(crafted, "http", live.ports["http"], False)
    cov = live.stop()["statistics"]["coverage"]
    assert cov["spans"] == {
        "total": 2,
        "seen": ["shop.checkout", "shop.refund"],
        "never_seen": [],
        "ratio": 1.0,
    }
    assert cov["metrics"]["seen"] == ["shop.order.duration", "shop.orders", "shop.stock"]
    assert cov["metrics"]["never_seen"] == ["shop.queue.depth"]
    assert cov["metrics"]["ratio"] == 0.75
    assert cov["events"]["ratio"] == 1.0
    # 12 registry attributes (template shop.header counts once); shop.discount never emitted.
    assert cov["attributes"]["total"] == 12
    assert cov["attributes"]["never_seen"] == ["network.peer.address", "shop.discount"]
    assert cov["attributes"]["ratio"] == round(10 / 12, 4)


def test_health_answers_while_receiving(live: LiveCheck) -> None:
    assert _admin(live.ports["admin"], "GET", "/health") == (200, {"status": "ok"})


def _otlp_json_lines(crafted: Any) -> str:
    """The same crafted set as OTLP JSON requests (hex ids, as the OTLP JSON mapping writes them)."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=crafted.resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=crafted.resource, metric_readers=[reader])
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=crafted.resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    crafted.emit(tracer_provider, meter_provider, logger_provider)
    requests = [
        encode_spans(spans.get_finished_spans()),
        encode_metrics(reader.get_metrics_data()),
        encode_logs(logs.get_finished_logs()),
    ]
    lines = []
    for request in requests:
        doc = json_format.MessageToDict(request)
        lines.append(json.dumps(_ids_to_hex(doc)))
    return "\n".join(lines) + "\n"


def _ids_to_hex(node: Any) -> Any:
    import base64

    if isinstance(node, dict):
        return {
            k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else _ids_to_hex(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_ids_to_hex(x) for x in node]
    return node


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knhk_otel.cli", "live-check", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def test_same_set_from_a_file_gives_the_same_report(
    live: LiveCheck, crafted: Any, shop_dir: Path, tmp_path: Path
) -> None:
    _send_over_otlp(crafted, "grpc", live.ports["grpc"], False)
    live_report = live.stop()
    source = tmp_path / "telemetry.jsonl"
    source.write_text(_otlp_json_lines(crafted))
    done = _cli("-r", str(shop_dir), "--input-source", str(source), "--format", "json", "--fail-on", "none")
    assert done.returncode == 0, done.stderr
    file_report = json.loads(done.stdout)
    assert file_report == live_report


@pytest.mark.parametrize(
    ("fail_on", "expected_exit"), [("violation", 1), ("improvement", 1), ("information", 1), ("none", 0)]
)
def test_fail_on_sets_the_exit_code(
    crafted: Any, shop_dir: Path, tmp_path: Path, fail_on: str, expected_exit: int
) -> None:
    source = tmp_path / "telemetry.jsonl"
    source.write_text(_otlp_json_lines(crafted))
    done = _cli("-r", str(shop_dir), "--input-source", str(source), "--fail-on", fail_on, "--format", "jsonl")
    assert done.returncode == expected_exit, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["statistics"]["total_findings"] == 19


def test_information_only_passes_fail_on_violation_and_improvement(shop_dir: Path, tmp_path: Path) -> None:
    samples = [
        {
            "span": {
                "name": "shop.refund",
                "kind": "internal",
                "attributes": [{"name": "shop.order.id", "value": "o-1"}],
            }
        },
        {"resource": {"attributes": [{"name": "host.name", "value": "h"}]}},
    ]
    source = tmp_path / "samples.json"
    source.write_text(json.dumps(samples))
    for fail_on, code in (("violation", 0), ("improvement", 0), ("information", 1)):
        done = _cli(
            "-r",
            str(shop_dir),
            "--input-source",
            str(source),
            "--fail-on",
            fail_on,
            "-o",
            str(tmp_path / fail_on),
        )
        assert done.returncode == code, (fail_on, done.stderr)
        assert (tmp_path / fail_on / "live_check.txt").read_text().startswith("resource (x1)")
