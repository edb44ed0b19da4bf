"""The realistic telemetry the validation benches replay, and a receiver that only decodes.

`record()` captures, over real OTLP/HTTP, what one `knhk-mesh up` run (memory transport, Byzantine
agents) and the self-test emitter (every span, metric and event helper of the schema, so shapes
the mesh does not emit yet are in the mix too) export: the requests as protobuf bytes, in
arrival order. It runs at bench time, so the mix is always that of the code being measured.

`DecodeOnly` is an `Ingest` for the project's own OTLP receivers that reads every name, key and
value of each request (upb decodes lazily: decoding without reading is no baseline) and judges
nothing: the baseline of the live-check figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from knhk_otel.validate.receiver_http import HttpReceiver
from knhk_otel.validate.samples import OTLP_SIGNALS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MESH_ARGS = ["up", "--transport", "memory", "--nodes", "20", "--byzantine", "2", "--rounds", "10"]
MESH_ARGS += ["--seed", "7"]
MIX = f"knhk-mesh {' '.join(MESH_ARGS)} --export, then the self-test emitter"

Recorded = list[tuple[str, bytes]]  # (signal: traces | metrics | logs, ExportXServiceRequest bytes)


def _value(v: AnyValue) -> Any:
    field = v.WhichOneof("value")
    return getattr(v, field) if field is not None else None


def read_all(signal: str, request: Any) -> int:
    """Read every name, attribute key and value of a decoded request; returns the items (spans,
    metric points, log records) read."""
    items = 0
    if signal == "traces":
        for rs in request.resource_spans:
            for kv in rs.resource.attributes:
                _value(kv.value)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    _ = span.name, span.kind
                    for kv in span.attributes:
                        _ = kv.key, _value(kv.value)
                    for event in span.events:
                        for kv in event.attributes:
                            _ = kv.key, _value(kv.value)
                    items += 1
    elif signal == "metrics":
        for rm in request.resource_metrics:
            for kv in rm.resource.attributes:
                _value(kv.value)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    _ = metric.name, metric.unit
                    data = getattr(metric, metric.WhichOneof("data") or "sum")
                    for point in data.data_points:
                        for kv in point.attributes:
                            _ = kv.key, _value(kv.value)
                        items += 1
    else:
        for rl in request.resource_logs:
            for kv in rl.resource.attributes:
                _value(kv.value)
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    _ = record.event_name, _value(record.body)
                    for kv in record.attributes:
                        _ = kv.key, _value(kv.value)
                    items += 1
    return items


class DecodeOnly:
    """An Ingest that reads everything and judges nothing; counts spans and items, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items = 0
        self.spans = 0
        self.rejected = 0

    def ingest(self, signal: str, request: Any) -> None:
        n = read_all(signal, request)
        with self._lock:
            self.items += n
            if signal == "traces":
                self.spans += n

    def reject(self, transport: str, reason: str) -> None:
        with self._lock:
            self.rejected += 1


class _Capture(DecodeOnly):
    def __init__(self) -> None:
        super().__init__()
        self.recorded: Recorded = []

    def ingest(self, signal: str, request: Any) -> None:
        with self._lock:
            self.recorded.append((signal, request.SerializeToString()))


def record(timeout_s: float = 600.0) -> Recorded:
    """Run the mesh and the self-test exporting to a capturing receiver; their requests in order."""
    capture = _Capture()
    receiver = HttpReceiver(capture, address="127.0.0.1", port=0)
    port = receiver.start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    try:
        for command in (
            [str(BIN / "knhk-mesh"), *MESH_ARGS, "--export"],
            [sys.executable, "-m", "knhk_otel.harness.selftest", "--validation", "off"],
        ):
            subprocess.run(
                command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True, timeout=timeout_s
            )
    finally:
        receiver.stop()
    if capture.rejected or not capture.recorded:
        raise RuntimeError(f"recording failed: {len(capture.recorded)} requests, {capture.rejected} rejected")
    return capture.recorded


def decode(recorded: Recorded) -> list[tuple[str, Any]]:
    return [(signal, OTLP_SIGNALS[signal][0].FromString(data)) for signal, data in recorded]


def spans_of(recorded: Recorded) -> list[tuple[str, int, dict[str, Any]]]:
    """(name, OTLP kind, attributes) of every recorded span, in order: the mix SDK benches emit.

    Span names and attribute keys are interned: an emitter passes the same constant objects for
    every span (the generated helpers' name and key constants), where decoding makes a fresh copy
    of each per span. Values stay as decoded, one object per span, as ids and sizes are.
    """
    out = []
    for signal, request in decode(recorded):
        if signal != "traces":
            continue
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    attrs = {sys.intern(kv.key): _plain(kv.value) for kv in span.attributes}
                    out.append((sys.intern(span.name), int(span.kind), attrs))
    return out


def _plain(v: AnyValue) -> Any:
    value = _value(v)
    if v.WhichOneof("value") == "array_value":
        return [_value(x) for x in value.values]
    return value
