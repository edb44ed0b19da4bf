"""One sample of every span, metric and event of a resolved registry, with example values, through
the OpenTelemetry API (Weaver's `registry emit`): lets an operator test a Collector / Prometheus /
Grafana pipeline before any instrumented program runs.

Values come from each attribute's `examples` (first one), else from its type (an enum's first
member, `1`, `1.0`, `true`, a string naming the attribute); histograms get the schema's bucket
advice, so the sample lands where real data would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry import _logs, metrics, trace

from knhk_otel.schema.model import Attribute, EnumType, Group, ResolvedRegistry

_KINDS = {
    "client": trace.SpanKind.CLIENT,
    "server": trace.SpanKind.SERVER,
    "producer": trace.SpanKind.PRODUCER,
    "consumer": trace.SpanKind.CONSUMER,
    "internal": trace.SpanKind.INTERNAL,
}
_SCALARS: dict[str, Any] = {"int": 1, "double": 1.0, "boolean": True}


@dataclass
class Emitted:
    spans: int = 0
    metrics: int = 0
    events: int = 0


def example_value(attribute: Attribute) -> Any:
    """The attribute's first example, else a valid value of its type."""
    kind = attribute.type
    if isinstance(kind, EnumType):
        return kind.members[0].value if kind.members else "example"
    if attribute.examples:
        first = attribute.examples[0]
        if kind.endswith("[]") and not isinstance(first, list):
            return [first]
        if isinstance(first, list) and not kind.endswith("[]"):
            return first[0] if first else _SCALARS.get(kind, "example")
        return first
    base = kind.removesuffix("[]")
    value = _SCALARS.get(base, f"example-{attribute.name}")
    return [value] if kind.endswith("[]") else value


def attributes_of(group: Group) -> dict[str, Any]:
    """Every attribute of a signal (template attributes get one key under their prefix)."""
    out: dict[str, Any] = {}
    for attribute in group.attributes:
        kind = attribute.type
        if isinstance(kind, str) and kind.startswith("template["):
            inner = kind.removeprefix("template[").removesuffix("]")
            out[f"{attribute.name}.example"] = _SCALARS.get(inner, "example")
            continue
        out[attribute.name] = example_value(attribute)
    return out


def _buckets(group: Group) -> list[float] | None:
    knhk = group.annotations.get("knhk") if isinstance(group.annotations, dict) else None
    bounds = knhk.get("explicit_bucket_boundaries") if isinstance(knhk, dict) else None
    return [float(b) for b in bounds] if isinstance(bounds, list) else None


def emit_registry(
    registry: ResolvedRegistry,
    tracer: trace.Tracer,
    meter: metrics.Meter,
    logger: _logs.Logger,
) -> Emitted:
    """Emit each of the registry's own spans, metrics and events once."""
    out = Emitted()
    own = [g for g in registry.groups if g.id in registry.own] if registry.own else list(registry.groups)
    for group in own:
        if group.type == "span":
            span = tracer.start_span(
                group.signal_name,
                kind=_KINDS.get(group.span_kind or "internal", trace.SpanKind.INTERNAL),
                attributes=attributes_of(group),
            )
            span.end()
            out.spans += 1
        elif group.type == "metric":
            _record(group, meter)
            out.metrics += 1
        elif group.type == "event":
            logger.emit(event_name=group.signal_name, attributes=attributes_of(group))
            out.events += 1
    return out


def _record(group: Group, meter: metrics.Meter) -> None:
    name, unit, brief, attrs = group.signal_name, group.unit or "", group.brief, attributes_of(group)
    if group.instrument == "counter":
        meter.create_counter(name, unit=unit, description=brief).add(1, attrs)
    elif group.instrument == "updowncounter":
        meter.create_up_down_counter(name, unit=unit, description=brief).add(1, attrs)
    elif group.instrument == "gauge":
        meter.create_gauge(name, unit=unit, description=brief).set(1, attrs)
    else:
        buckets = _buckets(group)
        histogram = meter.create_histogram(
            name, unit=unit, description=brief, explicit_bucket_boundaries_advisory=buckets
        )
        histogram.record(buckets[0] if buckets else 1, attrs)
