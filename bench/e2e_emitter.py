"""One exporting process of the end-to-end bench: the OTel SDK with a real OTLP exporter.

`python bench/e2e_emitter.py PROTOCOL ENDPOINT SPANS_JSON COUNT`: builds the spans of the recorded
mix, prints `ready`, waits for a line on stdin, then starts and ends COUNT spans through a
BatchSpanProcessor (queue as large as COUNT: nothing dropped) and shuts down, which exports all and
waits for every response. Prints `{"seconds", "spans", "failed_exports"}` as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

KINDS = {0: SpanKind.INTERNAL, 1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT,
         4: SpanKind.PRODUCER, 5: SpanKind.CONSUMER}  # fmt: skip


class _Counted(SpanExporter):
    """The real exporter, with the batches it failed to deliver counted (the SDK only logs them)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner, self.failed = inner, 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self.failed += 1
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


def _exporter(protocol: str, endpoint: str) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        return Grpc(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http(endpoint=f"{endpoint}/v1/traces")


def main() -> int:
    protocol, endpoint, spans_file, count = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    mix = [(name, KINDS[kind], attrs) for name, kind, attrs in json.loads(spans_file.read_text())]
    resource = Resource({"service.name": "bench-e2e", "service.instance.id": protocol})
    provider = TracerProvider(resource=resource)
    exporter = _Counted(_exporter(protocol, endpoint))
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter, max_queue_size=count, max_export_batch_size=512, schedule_delay_millis=20
        )
    )
    tracer = provider.get_tracer("bench")
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for i in range(count):
        name, kind, attrs = mix[i % len(mix)]
        tracer.start_span(name, kind=kind, attributes=attrs).end()
    provider.shutdown()
    took = time.perf_counter() - started
    print(json.dumps({"seconds": took, "spans": count, "failed_exports": exporter.failed}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
