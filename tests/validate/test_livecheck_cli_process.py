"""`knhk-otel live-check` as a process: ports 0, /health, POST /stop, signals, inactivity, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind


class Running:
    def __init__(self, proc: subprocess.Popen[str], ports: dict[str, int]) -> None:
        self.proc = proc
        self.ports = ports

    def admin(self, method: str, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.ports['admin']}{path}"
        req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())

    def finish(self) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err


@pytest.fixture
def start(shop_dir: Path, tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def _start(*extra: str) -> Running:
        ports_file = tmp_path / f"ports-{len(procs)}.json"
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "knhk_otel.cli", "live-check", "-r", str(shop_dir),
                "--otlp-grpc-port", "0", "--otlp-http-port", "0", "--admin-port", "0",
                "--ports-file", str(ports_file), *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        procs.append(proc)
        for _ in range(300):
            if ports_file.exists() and ports_file.read_text().endswith("\n"):
                return Running(proc, json.loads(ports_file.read_text()))
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.kill()
        raise AssertionError(f"live-check did not start: {proc.communicate(timeout=10)}")

    yield _start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def _send_spans(http_port: int, good: bool) -> None:
    provider = TracerProvider(resource=Resource({"service.name": "shop"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces"))
    )
    attributes = {"shop.order.id": "o-1"} if good else {}
    with provider.get_tracer("t").start_as_current_span(
        "shop.refund", kind=SpanKind.INTERNAL, attributes=attributes
    ):
        pass
    provider.shutdown()


def test_post_stop_returns_the_report_and_the_exit_code_follows_fail_on(start: Any) -> None:
    live = start("--format", "json")
    assert live.admin("GET", "/health") == (200, {"status": "ok"})
    _send_spans(live.ports["http"], good=False)
    status, report = live.admin("POST", "/stop")
    code, out, err = live.finish()
    assert status == 200
    assert code == 1, err
    assert json.loads(out) == report
    assert [f["id"] for s in report["samples"] for f in s["findings"]] == ["required_attribute_not_present"]
    assert "listening grpc=127.0.0.1:" in err


def test_sigterm_stops_cleanly_and_prints_the_report(start: Any) -> None:
    live = start("--format", "jsonl")
    _send_spans(live.ports["http"], good=True)
    live.proc.send_signal(signal.SIGTERM)
    code, out, err = live.finish()
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["statistics"]["samples_by_type"] == {"resource": 1, "span": 1}


def test_sigint_with_fail_on_none_exits_zero_even_with_violations(start: Any) -> None:
    live = start("--fail-on", "none")
    _send_spans(live.ports["http"], good=False)
    live.proc.send_signal(signal.SIGINT)
    code, out, _ = live.finish()
    assert code == 0
    assert "required_attribute_not_present" in out


def test_inactivity_timeout_ends_the_run(start: Any) -> None:
    live = start("--inactivity-timeout", "0.5", "--format", "json")
    code, out, err = live.finish()
    assert code == 3, err  # the run ended, and it received nothing: CI must not pass on that
    assert "NO TELEMETRY received" in err
    assert json.loads(out)["statistics"]["total_samples"] == 0


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knhk_otel.cli", "live-check", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def test_weaver_samples_on_stdin(shop_dir: Path) -> None:
    samples = [
        {
            "span": {
                "name": "shop.refund",
                "kind": "server",
                "attributes": [{"name": "shop.order.id", "value": "o"}],
            }
        }
    ]
    done = _run("-r", str(shop_dir), "--input-source", "stdin", "--format", "json", stdin=json.dumps(samples))
    assert done.returncode == 1
    assert [f["id"] for f in json.loads(done.stdout)["samples"][0]["findings"]] == ["span_kind_mismatch"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"resourceSpans": 3}', "not a valid OTLP JSON traces request"),
        ('[{"nothing": 1}]', "[0]: expected one of span, metric, event, resource, attribute"),
        ('{"resourceSpans": []}\n{oops\n', "in.json:2: not JSON"),
        ('[{"log": {"event_name": ["a"]}}]', "[0].event: `event_name` must be a string, got an array"),
        ('[{"span": {"name": 7}}]', "[0].span: `name` must be a string, got the number 7"),
        (
            '[{"resource": {"attributes": [{"name": 3}]}}]',
            "[0].attributes[0]: expected an object with a string",
        ),
    ],
)
def test_bad_input_files_are_one_line_errors(
    shop_dir: Path, tmp_path: Path, content: str, message: str
) -> None:
    source = tmp_path / "in.json"
    source.write_text(content)
    done = _run("-r", str(shop_dir), "--input-source", str(source))
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_missing_registry_is_a_one_line_error(tmp_path: Path) -> None:
    done = _run("-r", str(tmp_path / "nowhere"), "--input-source", "stdin", stdin="[]")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "nowhere" in done.stderr.strip().splitlines()[-1]
