"""Live-check orchestration: OTLP receivers + admin endpoint + inactivity, feeding one report."""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate import findings as F
from knhk_otel.validate.advice import AdvicePolicies, AdvisedValidator
from knhk_otel.validate.findings import Finding
from knhk_otel.validate.index import RegistryIndex
from knhk_otel.validate.receiver_grpc import GrpcReceiver
from knhk_otel.validate.receiver_http import HttpReceiver, make_server
from knhk_otel.validate.report import ReportBuilder
from knhk_otel.validate.samples import (
    KIND_BY_NUMBER,
    Batch,
    MetricSample,
    ResourceSample,
    SpanSample,
    any_value,
    convert_otlp,
    from_otlp_traces,
    kv_attributes,
)
from knhk_otel.validate.validator import SpanShape, SpanVerdict, Validator

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveCheckOptions:
    address: str = "127.0.0.1"
    grpc_port: int | None = 4317  # None = no gRPC receiver
    http_port: int | None = 4318  # None = no HTTP receiver
    admin_port: int | None = 4320  # None = no admin endpoint
    inactivity_timeout: float = 0.0  # seconds; 0 = never
    max_payload_bytes: int = 16 * 1024 * 1024
    read_timeout: float = 10.0  # seconds an HTTP client may stall mid-request before it is dropped


@contextmanager
def _naming(listener: str, address: str, port: int, flag: str) -> Iterator[None]:
    """Turn a bind failure into an OSError that says which listener, where, why and what to do."""
    try:
        yield
    except (OSError, RuntimeError) as exc:  # grpc reports a failed bind as RuntimeError
        reason = getattr(exc, "strerror", None) or str(exc)
        where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        if getattr(exc, "errno", None) == errno.EADDRNOTAVAIL:
            advice = "the address is not one of this machine's; choose another with --address"
        else:
            advice = f"stop what uses it or pick another port with {flag} (0 picks a free one)"
        raise OSError(f"{listener} listener on {where}: {reason}; {advice}") from exc


class Checker:
    """Validates batches into a report; shared by the live receivers and file input."""

    def __init__(
        self, registry: ResolvedRegistry | RegistryIndex, advice: AdvicePolicies | None = None
    ) -> None:
        self.index = registry if isinstance(registry, RegistryIndex) else RegistryIndex(registry)
        self.advice = advice
        self.validator = Validator(self.index) if advice is None else AdvisedValidator(self.index, advice)
        self.report = ReportBuilder(self.index)
        self._resources: set[Any] = set()
        self._lock = threading.Lock()
        self.last_activity = time.monotonic()

    def ingest(self, signal: str, request: Any) -> None:
        if signal == "traces":
            self._ingest_traces(request)
        else:
            self.add_batch(convert_otlp(signal, request))

    def _ingest_traces(self, request: Any) -> None:
        """Traces without building a sample per span: spans are judged per shape and tallied.

        Same findings as `add_batch(from_otlp_traces(request))` (the tests hold both to the same
        report); spans with events or links take that general path. A span's shape is its name,
        kind, attribute keys and which AnyValue field each value is in (that is its Python type),
        so only the values its shape still checks (enum members, array items) are read.
        """
        self.last_activity = time.monotonic()
        if self.advice is not None:  # advice policies judge each span: the general path
            self.add_batch(from_otlp_traces(request))
            return
        get_shape = self.validator.otlp_span_shapes.get
        tally: dict[SpanVerdict, int] = {}
        general = Batch()
        with_entities = self.validator.spans_with_entities
        for rs in request.resource_spans:
            resource = kv_attributes(rs.resource.attributes)
            if rs.HasField("resource"):
                general.resources.append(ResourceSample(resource))
            for ss in rs.scope_spans:
                for span in ss.spans:
                    if span.events or span.links or span.name in with_entities:
                        for sample in from_otlp_traces(_only(span)).samples:
                            if isinstance(sample, SpanSample):  # its entities are judged on it
                                sample.resource = resource
                            general.samples.append(sample)
                        continue
                    attributes = span.attributes
                    shape_key: list[Any] = [span.name, span.kind]
                    for kv in attributes:
                        shape_key += (kv.key, kv.value.WhichOneof("value"))
                    key = tuple(shape_key)
                    shape = get_shape(key)
                    if shape is None:
                        shape = self._otlp_shape(key, attributes)
                    if shape.getter is None:  # nothing left to check: one verdict for all
                        verdict = shape.verdict
                    elif len(fields := shape.fields) == 1:
                        i, field = fields[0]
                        v = attributes[i].value
                        verdict = shape.judge(getattr(v, field) if field else any_value(v))
                    else:
                        verdict = shape.judge(tuple([_read(attributes[i].value, f) for i, f in fields]))
                    tally[verdict] = tally.get(verdict, 0) + 1
        self.report.add_tally("span", ((v.name, v.keys, v.findings, n) for v, n in tally.items()))
        self.add_batch(general)

    def _otlp_shape(self, key: tuple[Any, ...], attributes: Any) -> SpanShape:
        """Judge a span shape not seen yet (`key` as `_ingest_traces` builds it)."""
        validator = self.validator
        values = [any_value(kv.value) for kv in attributes]
        shape = validator.span_shape(key[0], KIND_BY_NUMBER.get(key[1]), tuple(key[2::2]), values)
        fields = key[3::2]
        shape.fields = tuple((i, fields[i] if fields[i] in _SCALAR_FIELDS else None) for i, _ in shape.checks)
        return validator.remember_span_shape(validator.otlp_span_shapes, key, shape)

    def add_batch(self, batch: Batch) -> None:
        self.last_activity = time.monotonic()
        validate = self.validator.validate
        judged = [(sample, validate(sample)) for sample in batch.samples]
        self.report.add_many(judged)
        extra: Counter[str] = Counter()
        for sample, found in judged:
            if isinstance(sample, MetricSample) and len(sample.points) > 1:
                metric, points = self.validator.validate_metric_points(sample)
                extra.update(f.id for f in [*metric, *(f for point in points for f in point)])
                extra.subtract(f.id for f in found)
        self.report.add_per_point_extra(+extra)
        for resource in batch.resources:
            key = _resource_key(resource.attributes)
            with self._lock:
                if key in self._resources:
                    continue
                self._resources.add(key)
            self.report.add(resource, self.validator.validate_resource(resource))
        self.report.add_logs_without_event(batch.log_records_without_event)

    def reject(self, transport: str, reason: str) -> None:
        self.last_activity = time.monotonic()
        _log.warning("rejected OTLP/%s request: %s", transport, reason)
        self.report.add_input_error(
            Finding(
                F.INVALID_REQUEST,
                F.DEFAULT_LEVELS[F.INVALID_REQUEST],
                f"Rejected request: {reason}",
                "request",
                f"otlp-{transport}",
            )
        )


_SCALAR_FIELDS = frozenset({"string_value", "int_value", "double_value", "bool_value", "bytes_value"})


def _read(value: Any, field: str | None) -> Any:
    """An AnyValue's Python value, `field` being its scalar field (None: arrays, maps, unset)."""
    return getattr(value, field) if field else any_value(value)


def _only(span: Any) -> Any:
    """A traces request holding just `span` (for the general path)."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(span)
    return request


def _resource_key(attributes: Any) -> Any:
    try:
        key: Any = tuple(sorted(attributes.items()))
        hash(key)
    except TypeError:  # map values: compare by their text
        key = repr(sorted(attributes.items(), key=lambda kv: kv[0]))
    return key


class LiveCheck:
    """Receivers and admin endpoint around a Checker. `start()`, `wait()`, `stop()` → report."""

    def __init__(
        self,
        registry: ResolvedRegistry | RegistryIndex,
        options: LiveCheckOptions,
        advice: AdvicePolicies | None = None,
    ) -> None:
        self.options = options
        self.checker = Checker(registry, advice)
        self._stop_requested = threading.Event()
        self._stopped = threading.Lock()
        self._report: dict[str, Any] | None = None
        self._grpc: GrpcReceiver | None = None
        self._http: HttpReceiver | None = None
        self._admin: Any = None
        self._admin_thread: threading.Thread | None = None
        self.ports: dict[str, int] = {}

    def start(self) -> dict[str, int]:
        """Bind every listener; OSError names the one that failed (listener, address, port, reason)."""
        o = self.options
        try:
            if o.grpc_port is not None:
                with _naming("OTLP/gRPC", o.address, o.grpc_port, "--otlp-grpc-port"):
                    self._grpc = GrpcReceiver(
                        self.checker,
                        address=o.address,
                        port=o.grpc_port,
                        max_payload_bytes=o.max_payload_bytes,
                    )
                    self.ports["grpc"] = self._grpc.start()
            if o.http_port is not None:
                with _naming("OTLP/HTTP", o.address, o.http_port, "--otlp-http-port"):
                    self._http = HttpReceiver(
                        self.checker,
                        address=o.address,
                        port=o.http_port,
                        max_payload_bytes=o.max_payload_bytes,
                        read_timeout=o.read_timeout,
                    )
                    self.ports["http"] = self._http.start()
            if o.admin_port is not None:
                with _naming("admin", o.address, o.admin_port, "--admin-port"):
                    self._admin = make_server(o.address, o.admin_port, _AdminHandler)
                self._admin.live_check = self
                self.ports["admin"] = self._admin.server_address[1]
                self._admin_thread = threading.Thread(
                    target=self._admin.serve_forever, name="live-check-admin", daemon=True
                )
                self._admin_thread.start()
        except BaseException:
            self.stop()
            self.close()
            raise
        self.checker.last_activity = time.monotonic()
        return dict(self.ports)

    def request_stop(self) -> None:
        self._stop_requested.set()

    def wait(self, poll: float = 0.2) -> str:
        """Block until a stop is requested or inactivity; returns why."""
        timeout = self.options.inactivity_timeout
        while True:
            if self._stop_requested.wait(poll):
                return "stop"
            if timeout > 0 and time.monotonic() - self.checker.last_activity >= timeout:
                _log.info("no OTLP request for %.1f s: stopping", timeout)
                return "inactivity"

    def stop(self) -> dict[str, Any]:
        """Stop receiving (idempotent) and return the final report."""
        with self._stopped:
            if self._report is None:
                if self._grpc is not None:
                    self._grpc.stop()
                if self._http is not None:
                    self._http.stop()
                self._report = self.checker.report.build()
            return self._report

    def close(self) -> None:
        """Stop the admin endpoint too (after the report has been handed out)."""
        if self._admin is not None:
            self._admin.shutdown()
            self._admin.server_close()
            if self._admin_thread is not None:
                self._admin_thread.join(timeout=5)
            self._admin = None


class _AdminHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("admin %s " + format, self.client_address[0], *args)

    def _reply(self, status: int, doc: Any) -> None:
        body = json.dumps(doc, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": "unknown path"})

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= 65536:
            self.rfile.read(int(length))
        if self.path == "/stop":
            live: LiveCheck = self.server.live_check  # type: ignore[attr-defined]
            report = live.stop()
            self._reply(200, report)
            live.request_stop()
        else:
            self._reply(404, {"error": "unknown path"})
