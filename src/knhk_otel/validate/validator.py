"""The pure validator: one sample in, its findings out; no I/O, no clock, no global state.

Structural findings (which keys are unknown, undeclared, deprecated, missing) depend only on the
signal and the set of attribute keys, so they are computed once per (signal, keys) shape and then
reused; only value checks (type, enum member) run per sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate import findings as F
from knhk_otel.validate.findings import Finding
from knhk_otel.validate.index import AttrRule, RegistryIndex, SignalRule, match_template
from knhk_otel.validate.samples import (
    AttributeSample,
    EventSample,
    MetricSample,
    ResourceSample,
    Sample,
    SpanSample,
)

_SHAPE_CACHE_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class _Shape:
    findings: tuple[Finding, ...]
    checks: tuple[tuple[str, AttrRule], ...]  # keys whose values need a type/enum check


def _finding(
    fid: str, message: str, signal_type: str, signal_name: str | None, attribute: str | None = None
) -> Finding:
    return Finding(fid, F.DEFAULT_LEVELS[fid], message, signal_type, signal_name, attribute)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (tuple, list)):
        inner = sorted({_describe(v) for v in value})
        return f"{'|'.join(inner) or 'empty'}[]"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


class Validator:
    """Checks samples against one compiled registry. Thread-safe: its caches only grow or reset."""

    def __init__(self, registry: ResolvedRegistry | RegistryIndex) -> None:
        self.index = registry if isinstance(registry, RegistryIndex) else RegistryIndex(registry)
        self._shapes: dict[tuple[str, str, tuple[str, ...]], _Shape] = {}

    # -- dispatch ---------------------------------------------------------------------------

    def validate(self, sample: Sample) -> list[Finding]:
        if isinstance(sample, SpanSample):
            return self.validate_span(sample)
        if isinstance(sample, MetricSample):
            return self.validate_metric(sample)
        if isinstance(sample, EventSample):
            return self.validate_event(sample)
        if isinstance(sample, ResourceSample):
            return self.validate_resource(sample)
        return self.validate_attribute(sample)

    # -- signals ----------------------------------------------------------------------------

    def validate_span(self, span: SpanSample) -> list[Finding]:
        rule = self.index.spans.get(span.name)
        out: list[Finding] = []
        if rule is None:
            out.append(
                _finding(
                    F.MISSING_SPAN, f"Span `{span.name}` is not defined in the registry.", "span", span.name
                )
            )
        else:
            if rule.span_kind is not None and span.kind is not None and span.kind != rule.span_kind:
                out.append(
                    _finding(
                        F.SPAN_KIND_MISMATCH,
                        f"Span kind `{span.kind}` does not match the registry's `{rule.span_kind}`.",
                        "span",
                        span.name,
                    )
                )
            if rule.deprecated is not None:
                out.append(self._deprecated_signal(rule))
        self._attributes("span", span.name, rule, span.attributes, out)
        for event in span.events:
            out.extend(self._span_event(span.name, event))
        for link in span.links:
            self._attributes("span", span.name, None, link, out, registry_only=True)
        return out

    def _span_event(self, span_name: str, event: EventSample | Any) -> list[Finding]:
        rule = self.index.events.get(event.name)
        out: list[Finding] = []
        if rule is None:
            if event.name == "exception":
                # The SDK's own `record_exception` event: standard OTel, not the schema's business.
                return out
            out.append(
                _finding(
                    F.MISSING_EVENT,
                    f"Span event `{event.name}` of span `{span_name}` is not defined in the registry.",
                    "span",
                    span_name,
                )
            )
        self._attributes("event", event.name, rule, event.attributes, out)
        return out

    def validate_metric(self, metric: MetricSample) -> list[Finding]:
        rule = self.index.metrics.get(metric.name)
        out: list[Finding] = []
        name = metric.name
        if rule is None:
            out.append(
                _finding(F.MISSING_METRIC, f"Metric `{name}` is not defined in the registry.", "metric", name)
            )
        else:
            if (
                metric.instrument is not None
                and rule.instrument is not None
                and metric.instrument != rule.instrument
            ):
                out.append(
                    _finding(
                        F.UNEXPECTED_INSTRUMENT,
                        f"Instrument `{metric.instrument}` does not match the registry's "
                        f"`{rule.instrument}`.",
                        "metric",
                        name,
                    )
                )
            if (metric.unit or "") != (rule.unit or ""):
                out.append(
                    _finding(
                        F.UNIT_MISMATCH,
                        f"Unit `{metric.unit or ''}` does not match the registry's `{rule.unit or ''}`.",
                        "metric",
                        name,
                    )
                )
            if (
                rule.bucket_boundaries is not None
                and metric.bucket_boundaries is not None
                and tuple(metric.bucket_boundaries) != rule.bucket_boundaries
            ):
                out.append(
                    _finding(
                        F.BUCKET_BOUNDARIES_MISMATCH,
                        f"Histogram buckets {list(metric.bucket_boundaries)} differ from the registry's "
                        "advice "
                        f"{list(rule.bucket_boundaries)}.",
                        "metric",
                        name,
                    )
                )
            if rule.deprecated is not None:
                out.append(self._deprecated_signal(rule))
        if len(metric.points) <= 1:
            for attrs in metric.points:
                self._attributes("metric", name, rule, attrs, out)
            return out
        seen = dict.fromkeys(out)
        for attrs in metric.points:
            point: list[Finding] = []
            self._attributes("metric", name, rule, attrs, point)
            seen.update(dict.fromkeys(point))
        return list(seen)

    def validate_event(self, event: EventSample) -> list[Finding]:
        rule = self.index.events.get(event.name)
        out: list[Finding] = []
        if rule is None:
            out.append(
                _finding(
                    F.MISSING_EVENT,
                    f"Event `{event.name}` is not defined in the registry.",
                    "event",
                    event.name,
                )
            )
        elif rule.deprecated is not None:
            out.append(self._deprecated_signal(rule))
        self._attributes("event", event.name, rule, event.attributes, out)
        return out

    def validate_resource(self, resource: ResourceSample) -> list[Finding]:
        out: list[Finding] = []
        self._attributes("resource", None, None, resource.attributes, out, registry_only=True)
        return out

    def validate_attribute(self, sample: AttributeSample) -> list[Finding]:
        out: list[Finding] = []
        attrs = {sample.name: sample.value} if sample.has_value else {}
        if sample.has_value:
            self._attributes("attribute", None, None, attrs, out, registry_only=True)
        else:
            shape = self._shape("attribute", None, None, (sample.name,), True)
            out.extend(shape.findings)
        return out

    # -- attributes ---------------------------------------------------------------------------

    def _attributes(
        self,
        signal_type: str,
        signal_name: str | None,
        rule: SignalRule | None,
        attrs: Mapping[str, Any],
        out: list[Finding],
        *,
        registry_only: bool = False,
    ) -> None:
        keys = tuple(attrs)
        cache_key = (
            (signal_type, signal_name or "", keys) if not registry_only else ("~" + signal_type, "", keys)
        )
        shape = self._shapes.get(cache_key)
        if shape is None:
            shape = self._shape(signal_type, signal_name, rule, keys, registry_only)
            if len(self._shapes) >= _SHAPE_CACHE_LIMIT:
                self._shapes.clear()
            self._shapes[cache_key] = shape
        if shape.findings:
            out.extend(shape.findings)
        for key, arule in shape.checks:
            value = attrs[key]
            if not arule.check(value):
                out.append(
                    _finding(
                        F.TYPE_MISMATCH,
                        f"Attribute `{key}` has type `{_describe(value)}`, the registry says "
                        f"`{arule.type_name}`.",
                        signal_type,
                        signal_name,
                        key,
                    )
                )
            elif arule.members is not None and value not in arule.members:
                out.append(
                    _finding(
                        F.UNDEFINED_ENUM_VARIANT,
                        f"Attribute `{key}` has value {value!r}, not a member of its enum.",
                        signal_type,
                        signal_name,
                        key,
                    )
                )

    def _shape(
        self,
        signal_type: str,
        signal_name: str | None,
        rule: SignalRule | None,
        keys: Sequence[str],
        registry_only: bool,
    ) -> _Shape:
        found: list[Finding] = []
        checks: list[tuple[str, AttrRule]] = []
        index = self.index
        for key in keys:
            declared: AttrRule | None = None
            if rule is not None:
                declared = rule.attrs.get(key) or (
                    match_template(rule.templates, key) if rule.templates else None
                )
            registered = declared or index.attribute(key)
            if registered is None:
                if signal_type == "resource":
                    found.append(
                        Finding(
                            F.MISSING_ATTRIBUTE,
                            F.RESOURCE_MISSING_ATTRIBUTE_LEVEL,
                            f"Resource attribute `{key}` does not exist in the registry.",
                            signal_type,
                            signal_name,
                            key,
                        )
                    )
                else:
                    found.append(
                        _finding(
                            F.MISSING_ATTRIBUTE,
                            f"Attribute `{key}` does not exist in the registry.",
                            signal_type,
                            signal_name,
                            key,
                        )
                    )
                continue
            checks.append((key, registered))
            if declared is None and rule is not None and not registry_only:
                found.append(
                    _finding(
                        F.UNEXPECTED_ATTRIBUTE,
                        f"Attribute `{key}` exists in the registry but {signal_type} `{signal_name}` "
                        "does not "
                        "declare it.",
                        signal_type,
                        signal_name,
                        key,
                    )
                )
            if registered.deprecated is not None:
                dep = registered.deprecated
                hint = f"; use `{dep.renamed_to}`" if dep.renamed_to else ""
                found.append(
                    _finding(
                        F.DEPRECATED,
                        f"Attribute `{key}` is deprecated ({dep.reason}{hint}).",
                        signal_type,
                        signal_name,
                        key,
                    )
                )
            if not registered.stable and registered.deprecated is None:
                found.append(
                    _finding(
                        F.NOT_STABLE,
                        f"Attribute `{key}` is not stable "
                        f"(stability `{registered.stability or 'unspecified'}`).",
                        signal_type,
                        signal_name,
                        key,
                    )
                )
        if rule is not None and not registry_only:
            present = set(keys)
            for name in rule.required:
                if name not in present:
                    found.append(
                        _finding(
                            F.REQUIRED_ATTRIBUTE_NOT_PRESENT,
                            f"Required attribute `{name}` is not present.",
                            signal_type,
                            signal_name,
                            name,
                        )
                    )
            for name in rule.recommended:
                if name not in present:
                    found.append(
                        _finding(
                            F.RECOMMENDED_ATTRIBUTE_NOT_PRESENT,
                            f"Recommended attribute `{name}` is not present.",
                            signal_type,
                            signal_name,
                            name,
                        )
                    )
        return _Shape(tuple(found), tuple(checks))

    def _deprecated_signal(self, rule: SignalRule) -> Finding:
        dep = rule.deprecated
        assert dep is not None
        hint = f"; use `{dep.renamed_to}`" if dep.renamed_to else ""
        return _finding(
            F.DEPRECATED,
            f"{rule.signal_type.capitalize()} `{rule.name}` is deprecated ({dep.reason}{hint}).",
            rule.signal_type,
            rule.name,
        )
