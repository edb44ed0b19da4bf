"""Validation speed on the telemetry the mesh really emits, replayed with cold caches, and end to end.

The mix: what one `knhk-mesh up` run and the self-test emitter export, recorded over OTLP at bench
time (telemetry_mix.record): every span, metric point and log record, in arrival order. Each
repetition starts cold (a fresh registry index, checker and validation hook; their construction,
a receiver's start-up cost, is not timed).

- livecheck_spans_per_s: the recorded trace requests through live-check's per-request path minus
  sockets (bytes → ExportTraceServiceRequest → samples → findings → report).
- livecheck_vs_decode_ratio: the whole mix (traces, metrics, logs) through that path against
  decoding the same requests and reading every name, key and value once (upb decodes lazily, so
  decoding without reading is no baseline).
- inprocess_validation_ratio: the recorded spans started and ended through the SDK with the
  validating span processor against the same spans on a provider without it (names and keys the
  shared constants an emitter passes, values one object per span: telemetry_mix.spans_of).
- livecheck_e2e_spans_per_s / livecheck_e2e_vs_sink_ratio: two processes, each the OTel SDK with a
  real OTLP exporter (one HTTP, one gRPC), send the recorded span mix over loopback sockets to a
  `knhk-otel live-check` process, against the same two sending to a process with the same
  receivers that only decodes (bench/otlp_sink.py). Time: from "go" until both exporters have
  shut down, i.e. every batch answered (live-check judges a request before it answers).
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from run import Figure, at_most, figure, value_at_least  # type: ignore[import-not-found]
from telemetry_mix import MIX, Recorded, read_all, record, spans_of

from knhk_otel.schema import load_and_resolve
from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.index import RegistryIndex
from knhk_otel.validate.samples import OTLP_SIGNALS
from knhk_otel.validate.sdk import ValidatingSpanProcessor, ValidationHook
from knhk_otel.validate.server import Checker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
REPEAT = 5
INPROCESS_REPEAT = 30  # each ~0.12 s: a best of 10 still scattered by ±5 % between runs
E2E_SPANS_PER_PROCESS = 15_000
E2E_REPEAT = 3
KINDS = {0: SpanKind.INTERNAL, 1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT,
         4: SpanKind.PRODUCER, 5: SpanKind.CONSUMER}  # fmt: skip


def _timed(work: Any) -> float:
    gc.collect()
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _replay_cold(registry: ResolvedRegistry, recorded: Recorded) -> tuple[float, dict[str, Any]]:
    checker = Checker(RegistryIndex(registry))  # cold: a receiver that just started

    def replay() -> None:
        for signal, data in recorded:
            checker.ingest(signal, OTLP_SIGNALS[signal][0].FromString(data))

    return _timed(replay), checker.report.build()


def _decode_and_read(recorded: Recorded) -> int:
    return sum(read_all(signal, OTLP_SIGNALS[signal][0].FromString(data)) for signal, data in recorded)


def _replay_figures(registry: ResolvedRegistry, recorded: Recorded) -> dict[str, Figure]:
    traces = [(s, d) for s, d in recorded if s == "traces"]
    items, spans = _decode_and_read(recorded), _decode_and_read(traces)
    best_live = best_decode = best_traces = best_decode_traces = float("inf")
    for _ in range(REPEAT):  # alternated, so that load from other processes hits both alike
        t_live, report = _replay_cold(registry, recorded)
        best_live = min(best_live, t_live)
        best_decode = min(best_decode, _timed(lambda: _decode_and_read(recorded)))
        best_traces = min(best_traces, _replay_cold(registry, traces)[0])
        best_decode_traces = min(best_decode_traces, _timed(lambda: _decode_and_read(traces)))
    st = report["statistics"]
    assert st["findings_by_level"]["violation"] == 0, report["samples"][:2]
    assert st["samples_by_type"]["span"] == spans, st["samples_by_type"]
    by_type = ", ".join(f"{k} {v}" for k, v in st["samples_by_type"].items())
    per_live, per_decode = best_live / items * 1e6, best_decode / items * 1e6
    return {
        "livecheck_spans_per_s": figure(
            spans / best_traces,
            "spans/s",
            spans / best_decode_traces,
            goal=value_at_least(50000, "spans/s"),
            note=f"{spans} recorded spans ({len(traces)} requests) through Checker.ingest (decode + judge "
            f"+ report), cold; {best_traces / spans * 1e6:.2f} µs/span; baseline = decode-and-read rate",
        ),
        "livecheck_vs_decode_ratio": figure(
            per_live,
            "µs/item",
            per_decode,
            goal=at_most(1.5),
            note=f"mix of {MIX}: {len(recorded)} requests, {items} spans/points/log records ({by_type}); "
            f"live-check {per_live:.2f} µs vs decode+read {per_decode:.2f} µs per item; cold, "
            f"best of {REPEAT}",
        ),
    }


def _inprocess_figure(registry: ResolvedRegistry, recorded: Recorded) -> dict[str, Figure]:
    work = [(name, KINDS[kind], attrs) for name, kind, attrs in spans_of(recorded)]
    resource = Resource({"service.name": "bench", "service.instance.id": "i-1"})

    def emit(provider: TracerProvider) -> None:
        tracer = provider.get_tracer("bench")
        for name, kind, attrs in work:
            tracer.start_span(name, kind=kind, attributes=attrs).end()

    best_validated = best_plain = float("inf")
    for _ in range(INPROCESS_REPEAT):
        validated = TracerProvider(resource=resource)  # cold: a fresh hook, nothing memoised
        validated.add_span_processor(ValidatingSpanProcessor(ValidationHook(registry, "strict")))
        plain = TracerProvider(resource=resource)
        best_validated = min(best_validated, _timed(lambda p=validated: emit(p)))
        best_plain = min(best_plain, _timed(lambda p=plain: emit(p)))
    n = len(work)
    names = len({name for name, _, _ in work})
    return {
        "inprocess_validation_ratio": figure(
            best_validated / n * 1e6,
            "µs/span",
            best_plain / n * 1e6,
            goal=at_most(1.10),
            note=f"{n} recorded spans ({names} names) through SDK start_span+end with the validating "
            f"processor {best_validated / n * 1e6:.2f} µs vs without {best_plain / n * 1e6:.2f} µs; "
            f"cold hook each time, best of {INPROCESS_REPEAT}",
        ),
    }


class _Receiver:
    """A live-check process, or the decode-only sink process: ports, and spans read when stopped."""

    def __init__(self, kind: str, work: Path) -> None:
        self.kind = kind
        if kind == "live-check":
            ports_file = work / "ports.json"
            ports_file.unlink(missing_ok=True)
            self.proc = subprocess.Popen(
                [str(BIN / "knhk-otel"), "live-check", "-r", str(ROOT / "schema"), "--otlp-grpc-port", "0",
                 "--otlp-http-port", "0", "--admin-port", "0", "--ports-file", str(ports_file),
                 "--format", "json", "-o", str(work / "report"), "--fail-on", "none"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while not (ports_file.exists() and ports_file.read_text().endswith("\n")):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("live-check did not start")
                time.sleep(0.05)
            self.ports = json.loads(ports_file.read_text())
        else:
            self.proc = subprocess.Popen(
                [sys.executable, str(HERE / "otlp_sink.py")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert self.proc.stdout is not None
            self.ports = json.loads(self.proc.stdout.readline())

    def stop(self) -> int:
        """Spans received; for live-check also checks that nothing broke the schema."""
        if self.kind == "live-check":
            url = f"http://127.0.0.1:{self.ports['admin']}/stop"
            request = urllib.request.Request(url, method="POST", data=b"")
            with urllib.request.urlopen(request, timeout=120) as r:
                report = json.loads(r.read())
            self.proc.wait(timeout=120)
            st = report["statistics"]
            assert st["findings_by_level"]["violation"] == 0 and not st["input_errors"], st
            return int(st["samples_by_type"].get("span", 0))
        out, _ = self.proc.communicate("stop\n", timeout=120)
        counts = json.loads(out.strip().splitlines()[-1])
        assert counts["rejected"] == 0, counts
        return int(counts["spans"])


def _e2e_once(kind: str, spans_file: Path, work: Path) -> float:
    receiver = _Receiver(kind, work)
    emitters = []
    try:
        for protocol, port in (("http/protobuf", "http"), ("grpc", "grpc")):
            endpoint = f"http://127.0.0.1:{receiver.ports[port]}"
            command = [sys.executable, str(HERE / "e2e_emitter.py"), protocol.split("/")[0], endpoint]
            command += [str(spans_file), str(E2E_SPANS_PER_PROCESS)]
            emitters.append(
                subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
        for e in emitters:
            assert e.stdout is not None and e.stdout.readline().strip() == "ready"
        started = time.perf_counter()
        for e in emitters:
            assert e.stdin is not None
            e.stdin.write("go\n")
            e.stdin.flush()
        results = [json.loads(e.communicate(timeout=600)[0].strip().splitlines()[-1]) for e in emitters]
        took = time.perf_counter() - started
    finally:
        for e in emitters:
            if e.poll() is None:
                e.kill()
        received = receiver.stop()
    assert all(r["failed_exports"] == 0 for r in results), results
    assert received == 2 * E2E_SPANS_PER_PROCESS, (kind, received)
    return took


def _e2e_figures(recorded: Recorded) -> dict[str, Figure]:
    mix = spans_of(recorded)
    total = 2 * E2E_SPANS_PER_PROCESS
    best = {"live-check": float("inf"), "sink": float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        spans_file = Path(tmp) / "spans.json"
        spans_file.write_text(json.dumps(mix))
        for _ in range(E2E_REPEAT):
            for kind in best:
                best[kind] = min(best[kind], _e2e_once(kind, spans_file, Path(tmp)))
    live, sink = best["live-check"], best["sink"]
    return {
        "livecheck_e2e_spans_per_s": figure(
            total / live,
            "spans/s",
            total / sink,
            note=f"2 exporting processes (OTLP/HTTP + OTLP/gRPC, BatchSpanProcessor) x "
            f"{E2E_SPANS_PER_PROCESS} recorded-mix spans over loopback to a knhk-otel live-check process; "
            f"baseline = the same to a decode-only receiver; best of {E2E_REPEAT}",
        ),
        "livecheck_e2e_vs_sink_ratio": figure(
            live / total * 1e6,
            "µs/span",
            sink / total * 1e6,
            goal=at_most(1.3),
            note=f"end to end, wall clock from go until both exporters shut down: live-check "
            f"{live:.2f} s vs decode-only sink {sink:.2f} s for {total} spans",
        ),
    }


def run() -> dict[str, Figure]:
    registry, _ = load_and_resolve(ROOT / "schema")
    assert registry is not None
    print(f"# recording the mix: {MIX}", file=sys.stderr, flush=True)
    recorded = record()
    return {
        **_replay_figures(registry, recorded),
        **_inprocess_figure(registry, recorded),
        **_e2e_figures(recorded),
    }
