"""Build the OTel Tracer/Meter/LoggerProviders from a TelemetryConfig, validation hooks wired in."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk import version as sdk_version
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from knhk_otel.runtime.config import ConfigError, TelemetryConfig, new_instance_id
from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.sdk import (
    ValidatingLogProcessor,
    ValidatingMetricExporter,
    ValidatingSpanProcessor,
    ValidationHook,
)

_log = logging.getLogger(__name__)
SCOPE = "knhk_otel"
#: What a shutdown gives an unreachable backend for the last batches: the OTLP exporters otherwise
#: retry each signal for up to OTEL_EXPORTER_OTLP_TIMEOUT (10 s), one after the other.
SHUTDOWN_BUDGET_S = 5.0


@dataclass
class Telemetry:
    """The three providers of one process, and the validation hook they share (None when off)."""

    config: TelemetryConfig
    resource: Resource
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    hook: ValidationHook | None = None
    exports: ExportFailures = field(default_factory=lambda: ExportFailures())
    prometheus_address: tuple[str, int] | None = None  # where the scrape endpoint listens, if any
    _prometheus_server: Any = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)
    _exporters: tuple[_Abortable, ...] = field(default=(), repr=False)

    def shutdown(self, budget_s: float = SHUTDOWN_BUDGET_S) -> None:
        """Flush everything that is buffered, then shut the providers down (idempotent). A backend
        that does not take the last batches within `budget_s` loses them, said in one warning: a
        node stopping while its Collector is down must stop, not retry for half a minute."""
        if self._closed:
            return
        self._closed = True
        finished = threading.Event()

        def flush_and_close() -> None:
            try:
                # Spans and logs first: their processors may still count findings into a metric. The
                # meter provider's shutdown does the final collection itself (a flush before it would
                # export cumulative points twice).
                self.tracer_provider.force_flush()
                self.logger_provider.force_flush()
                self.tracer_provider.shutdown()
                self.meter_provider.shutdown()
                self.logger_provider.shutdown()
            finally:
                finished.set()

        threading.Thread(target=flush_and_close, name="knhk-otel-shutdown", daemon=True).start()
        if not finished.wait(budget_s):
            for exporter in self._exporters:
                exporter.abort()  # the OTLP exporters stop retrying: the providers close at once
            finished.wait(budget_s)
            _log.warning(
                "telemetry: %s did not take the last batches within %g s; stopped without them",
                self.config.endpoint,
                budget_s,
            )
        if self._prometheus_server is not None:
            self._prometheus_server.shutdown()
            self._prometheus_server.server_close()


class ExportFailures:
    """Batches the OTLP exporters failed to deliver, by signal (span, metric, event); `listener` (set
    by the instrumented program) turns each into its own telemetry, e.g. a counter."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.listener: Callable[[str], None] | None = None

    def failed(self, signal: str) -> None:
        self.counts[signal] = self.counts.get(signal, 0) + 1
        if self.listener is not None:
            try:
                self.listener(signal)
            except Exception:  # counting a failure must never make the export path fail
                _log.exception("export-failure listener failed")


class _Abortable:
    """An exporter wrapper a bounded shutdown can stop mid-retry (the inner exporter's own shutdown
    aborts its backoff); the provider's later shutdown call is then a no-op, not a second one."""

    _aborted = False

    def abort(self) -> None:
        if not self._aborted:
            self._aborted = True
            self._close_inner()

    def _close_inner(self) -> None:
        raise NotImplementedError


class _CountingSpanExporter(_Abortable, SpanExporter):
    def __init__(self, inner: SpanExporter, failures: ExportFailures) -> None:
        self._inner, self._failures = inner, failures

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._inner.export(spans)
        if result is not SpanExportResult.SUCCESS:
            self._failures.failed("span")
        return result

    def shutdown(self) -> None:
        if not self._aborted:
            self._close_inner()

    def _close_inner(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class _CountingMetricExporter(_Abortable, MetricExporter):
    def __init__(self, inner: MetricExporter, failures: ExportFailures) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner, self._failures = inner, failures

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        if result is not MetricExportResult.SUCCESS:
            self._failures.failed("metric")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if not self._aborted:
            self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    def _close_inner(self) -> None:
        self._inner.shutdown()


class _CountingLogExporter(_Abortable, LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, failures: ExportFailures) -> None:
        self._inner, self._failures = inner, failures

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = self._inner.export(batch)
        if result is not LogRecordExportResult.SUCCESS:
            self._failures.failed("event")
        return result

    def shutdown(self) -> None:
        if not self._aborted:
            self._close_inner()

    def _close_inner(self) -> None:
        self._inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


def build_resource(config: TelemetryConfig) -> Resource:
    attributes: dict[str, Any] = {
        "service.name": config.service_name,
        "service.instance.id": config.service_instance_id or new_instance_id(),
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": sdk_version.__version__,
    }
    attributes.update(dict(config.resource_attributes))
    return Resource(attributes)


def load_registry(path: str | Path) -> ResolvedRegistry:
    from knhk_otel.schema import load_and_resolve

    registry, diagnostics = load_and_resolve(path)
    errors = [d for d in diagnostics if d.is_error]
    if registry is None or errors:
        first = errors[0].render() if errors else "no registry"
        raise ConfigError(
            f"{path}: cannot load the registry for validation: {first} "
            "(set KNHK_OTEL_REGISTRY to the schema folder)"
        )
    if not registry.groups:
        raise ConfigError(f"{path}: cannot load the registry for validation: it defines nothing")
    return registry


def _prometheus(config: TelemetryConfig) -> tuple[MetricReader, Any, tuple[str, int]]:
    """The OTel Prometheus reader on a registry of its own, served on host:port (0 = a free port)."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    reader = PrometheusMetricReader(registry=registry)
    try:
        server, _thread = start_http_server(
            config.prometheus_port, addr=config.prometheus_host, registry=registry
        )
    except OSError as exc:
        raise ConfigError(
            f"prometheus endpoint {config.prometheus_host}:{config.prometheus_port}: {exc.strerror or exc}"
        ) from None
    host, port = server.server_address[:2]
    return reader, server, (str(host), int(port))


def _exporters(config: TelemetryConfig) -> tuple[Any, Any, Any]:
    """(span, metric, log) OTLP exporters for the configured protocol and endpoint."""
    endpoint = config.endpoint.rstrip("/")
    if config.otlp_protocol == "grpc":
        from grpc import Compression as GrpcCompression
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

        gz = GrpcCompression.Gzip if config.otlp_compression == "gzip" else GrpcCompression.NoCompression
        insecure = not endpoint.startswith("https://")
        return (
            GrpcSpans(endpoint=endpoint, insecure=insecure, compression=gz),
            GrpcMetrics(endpoint=endpoint, insecure=insecure, compression=gz),
            GrpcLogs(endpoint=endpoint, insecure=insecure, compression=gz),
        )
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

    hz = HttpCompression.Gzip if config.otlp_compression == "gzip" else HttpCompression.NoCompression
    return (
        HttpSpans(endpoint=f"{endpoint}/v1/traces", compression=hz),
        HttpMetrics(endpoint=f"{endpoint}/v1/metrics", compression=hz),
        HttpLogs(endpoint=f"{endpoint}/v1/logs", compression=hz),
    )


def build_providers(
    config: TelemetryConfig,
    registry: ResolvedRegistry | None = None,
    *,
    metric_readers: tuple[MetricReader, ...] = (),
) -> Telemetry:
    """Providers for `config`; `registry` defaults to loading `config.registry_path` when validating.

    Exporters come first in every pipeline so that an emission strict mode refuses is still
    exported (a live-check downstream sees it too).
    """
    resource = build_resource(config)
    hook: ValidationHook | None = None
    if config.validation != "off":
        hook = ValidationHook(registry or load_registry(config.registry_path), config.validation)
    exports = ExportFailures()
    span_exporter: SpanExporter | None = None
    metric_exporter: MetricExporter | None = None
    log_exporter: LogRecordExporter | None = None
    abortable: list[_Abortable] = []
    if config.export:
        spans, metric_points, logs = _exporters(config)
        span_exporter = _CountingSpanExporter(spans, exports)
        log_exporter = _CountingLogExporter(logs, exports)
        abortable += [span_exporter, log_exporter]
        if "otlp" in config.metrics_exporters:
            metric_exporter = _CountingMetricExporter(metric_points, exports)
            abortable.append(metric_exporter)

    tracer_provider = TracerProvider(resource=resource)
    if span_exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    if hook is not None:
        tracer_provider.add_span_processor(ValidatingSpanProcessor(hook))

    readers: list[MetricReader] = list(metric_readers)
    prometheus_server: Any = None
    prometheus_address: tuple[str, int] | None = None
    if "prometheus" in config.metrics_exporters:
        prometheus_reader, prometheus_server, prometheus_address = _prometheus(config)
        readers.append(prometheus_reader)
    exporter: MetricExporter | None = metric_exporter
    if hook is not None:
        exporter = ValidatingMetricExporter(hook, metric_exporter)
    if exporter is not None:
        readers.append(
            PeriodicExportingMetricReader(exporter, export_interval_millis=config.metric_export_interval_ms)
        )
    # Exemplars off: the default trace-based filter samples one for every measurement taken inside a
    # sampled span (nearly all of the mesh's), which costs more than the measurement itself, and no
    # exporter or dashboard of the project reads them.
    meter_provider = MeterProvider(
        resource=resource, metric_readers=readers, exemplar_filter=AlwaysOffExemplarFilter()
    )
    if hook is not None:
        hook.bind_meter(meter_provider.get_meter(SCOPE))

    logger_provider = LoggerProvider(resource=resource)
    if log_exporter is not None:
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    if hook is not None:
        logger_provider.add_log_record_processor(ValidatingLogProcessor(hook))
    _log.info(
        "telemetry: service %s, export %s to %s (%s), prometheus endpoint %s, validation %s",
        config.service_name,
        "on" if config.export else "off",
        config.endpoint,
        config.otlp_protocol,
        f"{prometheus_address[0]}:{prometheus_address[1]}" if prometheus_address else "off",
        config.validation,
    )
    return Telemetry(
        config,
        resource,
        tracer_provider,
        meter_provider,
        logger_provider,
        hook,
        exports,
        prometheus_address,
        prometheus_server,
        _exporters=tuple(abortable),
    )
