"""Neutral samples (span, metric, event, resource, attribute) built from SDK objects, OTLP and JSON.

Every source — the in-process SDK hooks, the OTLP receivers (protobuf or JSON) and Weaver-style
sample files — is turned into these few plain classes, so the validator has one input shape.
Attribute values are Python values: str, bool, int, float, bytes, tuples for arrays, dicts for
key-value lists.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

Attrs = Mapping[str, Any]

#: OTLP `Span.SpanKind` numbers → the registry's span_kind words.
KIND_BY_NUMBER: dict[int, str | None] = {
    0: None,
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
}


@dataclass(slots=True)
class SpanEventSample:
    name: str
    attributes: Attrs


@dataclass(slots=True)
class SpanSample:
    name: str
    kind: str | None
    attributes: Attrs
    events: Sequence[SpanEventSample] = ()
    links: Sequence[Attrs] = ()
    #: the attributes of the resource it arrived with (its entity associations are judged on them)
    resource: Attrs | None = None
    signal_type = "span"


@dataclass(slots=True)
class MetricSample:
    """One metric with the attributes of each of its data points."""

    name: str
    instrument: str | None  # counter | updowncounter | gauge | histogram | summary | None (unknown)
    unit: str | None
    points: Sequence[Attrs] = ()
    bucket_boundaries: tuple[float, ...] | None = None
    resource: Attrs | None = None  # as for spans
    signal_type = "metric"


@dataclass(slots=True)
class EventSample:
    """A log record carrying an event name (OTel event), or a span event checked on its own."""

    name: str
    attributes: Attrs
    resource: Attrs | None = None  # as for spans
    signal_type = "event"


@dataclass(slots=True)
class ResourceSample:
    attributes: Attrs
    signal_type = "resource"


@dataclass(slots=True)
class AttributeSample:
    """A bare attribute (Weaver's attribute samples): checked against the registry alone."""

    name: str
    value: Any = None
    has_value: bool = False
    signal_type = "attribute"


Sample = SpanSample | MetricSample | EventSample | ResourceSample | AttributeSample


@dataclass(slots=True)
class Batch:
    """What one request (or one SDK export) carried: signal samples and the resources they ran in."""

    samples: list[Sample] = field(default_factory=list)
    resources: list[ResourceSample] = field(default_factory=list)
    log_records_without_event: int = 0


# --- OTLP protobuf ---------------------------------------------------------------------------


def any_value(v: Any) -> Any:
    """An OTLP AnyValue as a Python value (arrays as tuples, key-value lists as dicts)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple(any_value(x) for x in v.array_value.values)
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which)


def kv_attributes(attributes: Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in attributes:
        v = kv.value
        which = v.WhichOneof("value")
        if which == "string_value":
            out[kv.key] = v.string_value
        elif which == "int_value":
            out[kv.key] = v.int_value
        else:
            out[kv.key] = any_value(v)
    return out


def from_otlp_traces(request: Any) -> Batch:
    batch = Batch()
    append = batch.samples.append
    kinds = KIND_BY_NUMBER
    for rs in request.resource_spans:
        resource = kv_attributes(rs.resource.attributes)
        if rs.HasField("resource"):
            batch.resources.append(ResourceSample(resource))
        for ss in rs.scope_spans:
            for span in ss.spans:
                # The attribute loop is `_kv` inlined: this is the receiver's hot path.
                attrs: dict[str, Any] = {}
                for kv in span.attributes:
                    v = kv.value
                    which = v.WhichOneof("value")
                    if which == "string_value":
                        attrs[kv.key] = v.string_value
                    elif which == "int_value":
                        attrs[kv.key] = v.int_value
                    else:
                        attrs[kv.key] = any_value(v)
                span_events = span.events
                events: Sequence[SpanEventSample] = (
                    [SpanEventSample(e.name, kv_attributes(e.attributes)) for e in span_events]
                    if span_events
                    else ()
                )
                span_links = span.links
                links: Sequence[Attrs] = (
                    [kv_attributes(link.attributes) for link in span_links] if span_links else ()
                )
                append(SpanSample(span.name, kinds.get(span.kind), attrs, events, links, resource))
    return batch


def _metric_from_otlp(metric: Any, resource: Attrs | None = None) -> MetricSample:
    which = metric.WhichOneof("data")
    bounds: tuple[float, ...] | None = None
    if which == "sum":
        instrument: str | None = "counter" if metric.sum.is_monotonic else "updowncounter"
        points = metric.sum.data_points
    elif which == "gauge":
        instrument, points = "gauge", metric.gauge.data_points
    elif which == "histogram":
        instrument, points = "histogram", metric.histogram.data_points
        if points:
            bounds = tuple(points[0].explicit_bounds)
    elif which == "exponential_histogram":
        instrument, points = "histogram", metric.exponential_histogram.data_points
    elif which == "summary":
        instrument, points = "summary", metric.summary.data_points
    else:
        instrument, points = None, ()
    return MetricSample(
        metric.name, instrument, metric.unit, [kv_attributes(p.attributes) for p in points], bounds, resource
    )


def from_otlp_metrics(request: Any) -> Batch:
    batch = Batch()
    for rm in request.resource_metrics:
        resource = kv_attributes(rm.resource.attributes)
        if rm.HasField("resource"):
            batch.resources.append(ResourceSample(resource))
        for sm in rm.scope_metrics:
            batch.samples.extend(_metric_from_otlp(m, resource) for m in sm.metrics)
    return batch


def from_otlp_logs(request: Any) -> Batch:
    batch = Batch()
    for rl in request.resource_logs:
        resource = kv_attributes(rl.resource.attributes)
        if rl.HasField("resource"):
            batch.resources.append(ResourceSample(resource))
        for sl in rl.scope_logs:
            for record in sl.log_records:
                if record.event_name:
                    attrs = kv_attributes(record.attributes)
                    batch.samples.append(EventSample(record.event_name, attrs, resource))
                else:
                    batch.log_records_without_event += 1
    return batch


#: signal → (request message class, converter)
OTLP_SIGNALS: dict[str, tuple[Any, Any]] = {
    "traces": (trace_service_pb2.ExportTraceServiceRequest, from_otlp_traces),
    "metrics": (metrics_service_pb2.ExportMetricsServiceRequest, from_otlp_metrics),
    "logs": (logs_service_pb2.ExportLogsServiceRequest, from_otlp_logs),
}

# --- OTLP JSON -------------------------------------------------------------------------------

_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})


class SampleFormatError(ValueError):
    """The input is not OTLP JSON nor a Weaver sample array; the message says where."""


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP JSON writes trace and span ids in hex; protobuf's JSON mapping expects base64."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k in _ID_KEYS and isinstance(v, str):
                try:
                    out[k] = base64.b64encode(bytes.fromhex(v)).decode("ascii")
                except ValueError:
                    out[k] = v  # already base64 (protobuf JSON), or garbage json_format reports
            else:
                out[k] = _hex_ids_to_base64(v)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(x) for x in node]
    return node


def otlp_json_signal(doc: Mapping[str, Any]) -> str | None:
    """Which OTLP request a JSON object is (`traces`, `metrics`, `logs`) or None."""
    for key, signal in (
        ("resourceSpans", "traces"),
        ("resource_spans", "traces"),
        ("resourceMetrics", "metrics"),
        ("resource_metrics", "metrics"),
        ("resourceLogs", "logs"),
        ("resource_logs", "logs"),
    ):
        if key in doc:
            return signal
    return None


def parse_otlp_json(signal: str, doc: Mapping[str, Any]) -> Any:
    """An OTLP JSON request (hex ids, int64 as strings, enums as ints) as its protobuf message."""
    message_class, _ = OTLP_SIGNALS[signal]
    message = message_class()
    try:
        json_format.ParseDict(_hex_ids_to_base64(doc), message, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error) as exc:
        raise SampleFormatError(f"not a valid OTLP JSON {signal} request: {exc}") from exc
    return message


def from_otlp_json(doc: Mapping[str, Any]) -> Batch:
    signal = otlp_json_signal(doc)
    if signal is None:
        raise SampleFormatError("JSON object is neither an OTLP request nor a sample")
    return convert_otlp(signal, parse_otlp_json(signal, doc))


def convert_otlp(signal: str, request: Any) -> Batch:
    converter: Callable[[Any], Batch] = OTLP_SIGNALS[signal][1]
    return converter(request)


# --- Weaver-style sample JSON ------------------------------------------------------------------


def _sample_attrs(items: Any, where: str) -> dict[str, Any]:
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return {str(k): _json_value(v) for k, v in items.items()}
    if not isinstance(items, list):
        raise SampleFormatError(f"{where}: attributes must be a list of {{name, value}} objects")
    out: dict[str, Any] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
            raise SampleFormatError(f"{where}.attributes[{i}]: expected an object with a string `name`")
        out[item["name"]] = _json_value(item.get("value"))
    return out


def _text(obj: Mapping[str, Any], key: str, where: str) -> str:
    """A name field: a string (absent is empty, which the validator reports as undefined)."""
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise SampleFormatError(f"{where}: `{key}` must be a string, got {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    """A JSON value's kind, as a sample file's author would name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    return "an array" if isinstance(value, list) else "an object"


def _json_value(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_json_value(x) for x in v)
    return v


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SampleFormatError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _objects(value: Any, where: str) -> list[Mapping[str, Any]]:
    """A list of objects (absent or null = empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SampleFormatError(f"{where}: expected a list, got {type(value).__name__}")
    return [_mapping(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _weaver_sample(obj: Any, where: str) -> Sample:
    obj = _mapping(obj, where)
    if "span" in obj:
        s = _mapping(obj["span"], f"{where}.span")
        events = [
            SpanEventSample(
                str(e.get("name", "")), _sample_attrs(e.get("attributes"), f"{where}.span_events")
            )
            for e in _objects(s.get("span_events"), f"{where}.span.span_events")
        ]
        links = [
            _sample_attrs(ln.get("attributes"), f"{where}.span_links")
            for ln in _objects(s.get("span_links"), f"{where}.span.span_links")
        ]
        kind = s.get("kind")
        return SpanSample(
            _text(s, "name", f"{where}.span"),
            str(kind).lower() if kind else None,
            _sample_attrs(s.get("attributes"), where),
            events,
            links,
        )
    if "metric" in obj:
        m = _mapping(obj["metric"], f"{where}.metric")
        data_points = _objects(m.get("data_points"), f"{where}.metric.data_points")
        points = [_sample_attrs(p.get("attributes"), f"{where}.data_points") for p in data_points]
        bounds = None
        for p in data_points:
            if "explicit_bounds" in p:
                raw = p["explicit_bounds"]
                if not isinstance(raw, list) or not all(
                    isinstance(b, int | float) and not isinstance(b, bool) for b in raw
                ):
                    raise SampleFormatError(f"{where}.metric.data_points: explicit_bounds must be numbers")
                bounds = tuple(float(b) for b in raw)
                break
        return MetricSample(
            _text(m, "name", f"{where}.metric"), m.get("instrument"), m.get("unit"), points, bounds
        )
    if "event" in obj or "log" in obj:
        e = _mapping(obj.get("event") or obj.get("log") or {}, f"{where}.event")
        name = e.get("event_name") or e.get("name") or ""
        if not isinstance(name, str):
            raise SampleFormatError(f"{where}.event: `event_name` must be a string, got {_json_kind(name)}")
        return EventSample(name, _sample_attrs(e.get("attributes"), where))
    if "resource" in obj:
        return ResourceSample(
            _sample_attrs(_mapping(obj["resource"], f"{where}.resource").get("attributes"), where)
        )
    if "attribute" in obj:
        a = _mapping(obj["attribute"], f"{where}.attribute")
        return AttributeSample(str(a.get("name", "")), _json_value(a.get("value")), "value" in a)
    if "name" in obj:
        return AttributeSample(str(obj["name"]), _json_value(obj.get("value")), "value" in obj)
    raise SampleFormatError(f"{where}: expected one of span, metric, event, resource, attribute")


def from_weaver_samples(items: Sequence[Any]) -> Batch:
    """A sample array; a resource applies to the signals after it (Weaver's JSON samples)."""
    batch = Batch()
    resource: Attrs | None = None
    for i, obj in enumerate(items):
        sample = _weaver_sample(obj, f"[{i}]")
        if isinstance(sample, SpanSample | MetricSample | EventSample):
            sample.resource = resource
        if isinstance(sample, ResourceSample):
            resource = sample.attributes
            batch.resources.append(sample)
        elif isinstance(sample, EventSample) and not sample.name:
            batch.log_records_without_event += 1
        else:
            batch.samples.append(sample)
    return batch


def from_json_document(doc: Any) -> Batch:
    """A JSON value from a file: an OTLP request, a sample array, or one sample object."""
    if isinstance(doc, list):
        return from_weaver_samples(doc)
    if isinstance(doc, Mapping):
        if otlp_json_signal(doc) is not None:
            return from_otlp_json(doc)
        return from_weaver_samples([doc])
    raise SampleFormatError("expected a JSON object or array")


# --- OpenTelemetry SDK objects -----------------------------------------------------------------


def from_sdk_span(span: Any) -> SpanSample:
    """A `ReadableSpan` (what span processors get in `on_end`)."""
    events = [SpanEventSample(e.name, e.attributes or {}) for e in span.events] if span.events else ()
    links = [link.attributes or {} for link in span.links] if span.links else ()
    resource = dict(span.resource.attributes) if span.resource is not None else None
    return SpanSample(span.name, span.kind.name.lower(), span.attributes or {}, events, links, resource)


def from_sdk_metrics(metrics_data: Any) -> Iterator[tuple[ResourceSample, MetricSample]]:
    """Each metric of an SDK `MetricsData` with the resource it was collected under."""
    from opentelemetry.sdk.metrics.export import (
        ExponentialHistogram,
        Gauge,
        Histogram,
        Sum,
    )

    for rm in metrics_data.resource_metrics:
        resource = ResourceSample(dict(rm.resource.attributes))
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                data = metric.data
                bounds: tuple[float, ...] | None = None
                if isinstance(data, Sum):
                    instrument: str | None = "counter" if data.is_monotonic else "updowncounter"
                elif isinstance(data, Gauge):
                    instrument = "gauge"
                elif isinstance(data, Histogram):
                    instrument = "histogram"
                    if data.data_points:
                        bounds = tuple(float(b) for b in data.data_points[0].explicit_bounds)
                elif isinstance(data, ExponentialHistogram):
                    instrument = "histogram"
                else:
                    instrument = None
                points = [p.attributes or {} for p in data.data_points]
                yield (
                    resource,
                    MetricSample(metric.name, instrument, metric.unit, points, bounds, resource.attributes),
                )


def from_sdk_log(log_record: Any) -> EventSample | None:
    """A `ReadWriteLogRecord` (or its `log_record`); None when it carries no event name."""
    record = getattr(log_record, "log_record", log_record)
    name = getattr(record, "event_name", None)
    if not name:
        return None
    resource = getattr(record, "resource", None)
    attrs = dict(resource.attributes) if resource is not None else None
    return EventSample(name, dict(record.attributes or {}), attrs)
