"""The pure validator: one sample in, its findings out; no I/O, no clock, no global state.

Structural findings (which keys are unknown, undeclared, deprecated, missing) depend only on the
signal and the set of attribute keys, so they are computed once per (signal, keys) shape and then
reused; only value checks (type, enum member) run per sample.

Spans, the bulk of all telemetry, go further: a `SpanShape` (name, kind, keys, value types) is
judged once, and the values it still has to look at (enum members, array items) are read by the
caller and judged into a `SpanVerdict` that is shared, and for enum values memoised, so callers
tally spans by verdict identity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeVar

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate import findings as F
from knhk_otel.validate.entities import entity_findings
from knhk_otel.validate.findings import Finding
from knhk_otel.validate.index import AttrRule, RegistryIndex, SignalRule, match_template, namespaces_of
from knhk_otel.validate.samples import (
    AttributeSample,
    EventSample,
    MetricSample,
    ResourceSample,
    Sample,
    SpanSample,
)

_SHAPE_CACHE_LIMIT = 8192
_K = TypeVar("_K")
_V = TypeVar("_V")
#: Weaver's attribute name format (its built-in advice policy).
_NAME_FORMAT = re.compile(r"^[a-z][a-z0-9]*([._][a-z0-9]+)*$")
_VERDICT_MEMO_LIMIT = 1024  # distinct checked values remembered per span shape

#: Types whose equal values have equal reprs (so a memoised verdict's messages are the very ones
#: the value would get): the only values verdicts are memoised for. Not float (-0.0 == 0.0, nan).
_MEMO_TYPES = frozenset({str, int, bool})


def remember(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    """Store `value` (complete: other threads read caches without a lock) in a cache bounded at
    `_SHAPE_CACHE_LIMIT` entries, emptied when full: the shapes a process emits are few, and a flood of
    new ones (a bug, hostile input) must not grow memory without bound."""
    if len(cache) >= _SHAPE_CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


@dataclass(frozen=True, slots=True)
class _Shape:
    findings: tuple[Finding, ...]
    checks: tuple[tuple[int, AttrRule], ...]  # positions whose values need an enum/array check


class SpanVerdict:
    """The findings of spans of one shape (with one set of checked values): most serious first.

    Shared by every such span, so it is hashed and counted by identity.
    """

    __slots__ = ("findings", "keys", "name", "violation")

    def __init__(self, name: str, keys: tuple[str, ...], findings: tuple[Finding, ...]) -> None:
        self.name = name
        self.keys = keys
        self.findings = findings
        self.violation = bool(findings) and findings[0].level == "violation"


class SpanShape:
    """Spans without events or links of one name, kind, attribute keys and value types, judged once.

    `checks` are the positions whose values still decide findings (enum members, array items).
    Without any, `verdict` is every such span's verdict; otherwise the caller reads those values
    (`getter` picks them from an attribute dict) and asks `judge`: one value for one check, a
    tuple of them for several.
    """

    __slots__ = ("_validator", "checks", "fields", "getter", "keys", "memo", "name", "verdict")

    def __init__(
        self,
        validator: Validator,
        name: str,
        keys: tuple[str, ...],
        findings: tuple[Finding, ...],
        checks: tuple[tuple[int, AttrRule], ...],
        values: Sequence[Any],
    ) -> None:
        self._validator = validator
        self.name = name
        self.keys = keys
        self.checks = checks
        self.verdict = SpanVerdict(name, keys, findings)
        self.getter: Callable[[Mapping[str, Any]], Any] | None = (
            itemgetter(*(keys[i] for i, _ in checks)) if checks else None
        )
        #: For OTLP readers, set by them before the shape is shared: per check, its position and
        #: the AnyValue field to read (None: convert with `any_value`).
        self.fields: tuple[tuple[int, str | None], ...] = ()
        memoise = checks and all(type(values[i]) in _MEMO_TYPES for i, _ in checks)
        #: Verdicts by checked values (`judge` fills it), when they are of `_MEMO_TYPES`.
        self.memo: dict[Any, SpanVerdict] | None = {} if memoise else None

    def judge(self, checked: Any) -> SpanVerdict:
        """The verdict for the checked values (one value for one check, else a tuple)."""
        memo = self.memo
        if memo is not None:
            verdict = memo.get(checked)
            if verdict is not None:
                return verdict
        out: list[Finding] = []
        values = (checked,) if len(self.checks) == 1 else checked
        self._validator._value_checks(self.checks, self.keys, values, "span", self.name, out)
        if not out:
            verdict = self.verdict
        else:
            out.extend(self.verdict.findings)
            verdict = SpanVerdict(self.name, self.keys, tuple(out))
        if memo is not None:
            if len(memo) >= _VERDICT_MEMO_LIMIT:
                memo.clear()
            memo[checked] = verdict
        return verdict


def _level_first(f: Finding) -> int:
    return -F.LEVEL_RANK[f.level]


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

    def __init__(self, registry: ResolvedRegistry | RegistryIndex, *, default_advice: bool = True) -> None:
        self.index = registry if isinstance(registry, RegistryIndex) else RegistryIndex(registry)
        #: Weaver's default advice policy (missing_namespace, invalid_format, illegal_namespace,
        #: extends_namespace): Weaver runs custom advice policies instead of it, and so do we
        self.default_advice = default_advice
        self._shapes: dict[tuple[Any, ...], _Shape] = {}
        self._spans: dict[tuple[Any, ...], SpanShape] = {}
        #: Span shapes by the keys the hot paths can build cheapest:
        #: the span processor's (name, id(SDK kind), *keys, *value types) and the OTLP
        #: receivers' (name, kind number, key, AnyValue field, key, field, ...).
        #: Filled through `span_shape` and `remember_span_shape`.
        self.sdk_span_shapes: dict[tuple[Any, ...], SpanShape] = {}
        #: The span processor's first look: (name, *keys) -> (SDK kind, value types, shape) of the
        #: first such span, so that spans like it skip hashing kind and types.
        self.sdk_span_families: dict[tuple[str, ...], tuple[Any, tuple[type, ...], SpanShape]] = {}
        self.otlp_span_shapes: dict[tuple[Any, ...], SpanShape] = {}
        self._interned: dict[tuple[str, str, str, str | None, str | None], Finding] = {}
        self._advice: dict[tuple[str, str, str | None], tuple[Finding, ...]] = {}
        self._entities: dict[tuple[str, str, frozenset[str]], tuple[Finding, ...]] = {}
        #: span names whose definition has entity associations: their verdict depends on the resource
        self.spans_with_entities: frozenset[str] = frozenset(
            name for name, rule in self.index.spans.items() if rule.associations
        )

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
        """The span's findings, most serious first (so `found[0]` tells whether any is a violation)."""
        if span.events or span.links:
            out = self._span_findings(span.name, span.kind, span.attributes)
            for event in span.events:
                out.extend(self._span_event(span.name, event))
            for link in span.links:
                self._attributes("span", span.name, None, link, out, registry_only=True)
        else:
            attrs = span.attributes
            out = list(self.judge_span(span.name, span.kind, tuple(attrs), tuple(attrs.values())))
            if span.name not in self.spans_with_entities:
                return out
        out.extend(self.entity_findings(self.index.spans.get(span.name), span.resource))
        out.sort(key=_level_first)
        return out

    def entity_findings(
        self, rule: SignalRule | None, resource: Mapping[str, Any] | None
    ) -> tuple[Finding, ...]:
        """The signal's entity findings for this resource (none given: an empty one, as Weaver).

        They depend on which keys the resource has, not on values: memoised per key set.
        """
        if rule is None or not rule.associations:
            return ()
        keys = frozenset(resource or ())
        cache_key = (rule.signal_type, rule.name, keys)
        found = self._entities.get(cache_key)
        if found is None:
            found = tuple(entity_findings(rule.associations, keys, rule.signal_type, rule.name))
            remember(self._entities, cache_key, found)
        return found

    def judge_span(
        self, name: str, kind: str | None, keys: tuple[str, ...], values: tuple[Any, ...]
    ) -> tuple[Finding, ...]:
        """Findings of a span without events or links, from its attribute keys and values.

        Most serious first; every span of one shape (and one set of enum values) gets the very
        same tuple. The receivers and the span processor go through `span_shape` themselves, with
        shape keys they can build cheaper.
        """
        cache_key = (name, kind, keys, tuple(map(type, values)))
        shape = self._spans.get(cache_key)
        if shape is None:
            shape = self.remember_span_shape(
                self._spans, cache_key, self.span_shape(name, kind, keys, values)
            )
        if shape.getter is None:
            return shape.verdict.findings
        checked = [values[i] for i, _ in shape.checks]
        return shape.judge(checked[0] if len(checked) == 1 else tuple(checked)).findings

    def span_shape(
        self, name: str, kind: str | None, keys: tuple[str, ...], values: Sequence[Any]
    ) -> SpanShape:
        """Judge the shape of a span without events or links (uncached: see `remember_span_shape`)."""
        rule = self.index.spans.get(name)
        found = self._span_level(name, kind, rule)
        attrs = self._shape("span", name, rule, keys, values, False)
        findings = tuple(sorted((*found, *attrs.findings), key=_level_first))
        return SpanShape(self, name, keys, findings, attrs.checks, values)

    @staticmethod
    def remember_span_shape(
        cache: dict[tuple[Any, ...], SpanShape], cache_key: tuple[Any, ...], shape: SpanShape
    ) -> SpanShape:
        """Store a shape (complete: other threads read it at once) in a bounded shape cache.

        `cache_key` must tell apart everything the shape depends on: name, kind, keys, value types.
        """
        return remember(cache, cache_key, shape)

    def _span_findings(self, name: str, kind: str | None, attrs: Mapping[str, Any]) -> list[Finding]:
        rule = self.index.spans.get(name)
        out = self._span_level(name, kind, rule)
        self._attributes("span", name, rule, attrs, out)
        return out

    def _not_stable(self, rule: SignalRule) -> Finding | None:
        stability = rule.group.stability
        if stability == "stable":
            return None
        kind = rule.signal_type.capitalize()
        return _finding(
            F.NOT_STABLE,
            f"{kind} `{rule.name}` is not stable (stability `{stability or 'unspecified'}`).",
            rule.signal_type,
            rule.name,
        )

    def _span_level(self, name: str, kind: str | None, rule: SignalRule | None) -> list[Finding]:
        out: list[Finding] = []
        if rule is None:
            out.append(
                _finding(F.MISSING_SPAN, f"Span `{name}` is not defined in the registry.", "span", name)
            )
            return out
        if rule.span_kind is not None and kind is not None and kind != rule.span_kind:
            out.append(
                _finding(
                    F.SPAN_KIND_MISMATCH,
                    f"Span kind `{kind}` does not match the registry's `{rule.span_kind}`.",
                    "span",
                    name,
                )
            )
        if rule.deprecated is not None:
            out.append(self._deprecated_signal(rule))
        unstable = self._not_stable(rule)
        if unstable is not None:
            out.append(unstable)
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
        """The metric's findings, each distinct one once however many data points share it."""
        out = self._metric_level(metric)
        rule = self.index.metrics.get(metric.name)
        if len(metric.points) <= 1:
            for attrs in metric.points:
                self._attributes("metric", metric.name, rule, attrs, out)
            return out
        seen = dict.fromkeys(out)
        for attrs in metric.points:
            point: list[Finding] = []
            self._attributes("metric", metric.name, rule, attrs, point)
            seen.update(dict.fromkeys(point))
        return list(seen)

    def validate_metric_points(self, metric: MetricSample) -> tuple[list[Finding], list[list[Finding]]]:
        """Findings of the metric itself, and of each data point: what Weaver counts one by one."""
        rule = self.index.metrics.get(metric.name)
        points: list[list[Finding]] = []
        for attrs in metric.points:
            point: list[Finding] = []
            self._attributes("metric", metric.name, rule, attrs, point)
            points.append(point)
        return self._metric_level(metric), points

    def _metric_level(self, metric: MetricSample) -> list[Finding]:
        """Judged for the metric whether or not it has data points: name, instrument, unit."""
        rule = self.index.metrics.get(metric.name)
        out: list[Finding] = []
        name = metric.name
        if self.default_advice and not _NAME_FORMAT.match(name):
            out.append(
                _finding(
                    F.INVALID_FORMAT, f"Metric name `{name}` does not match the name format.", "metric", name
                )
            )
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
            unstable = self._not_stable(rule)
            if unstable is not None:
                out.append(unstable)
            out.extend(self.entity_findings(rule, metric.resource))
        return out

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
        else:
            if rule.deprecated is not None:
                out.append(self._deprecated_signal(rule))
            unstable = self._not_stable(rule)
            if unstable is not None:
                out.append(unstable)
            out.extend(self.entity_findings(rule, event.resource))
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
            if self.index.attribute(sample.name) is None:
                out.append(
                    _finding(
                        F.MISSING_ATTRIBUTE,
                        f"Attribute `{sample.name}` does not exist in the registry.",
                        "attribute",
                        None,
                        sample.name,
                    )
                )
            out.extend(self._key_advice(sample.name, "attribute", None))
        return out

    def _key_advice(self, key: str, signal_type: str, signal_name: str | None) -> tuple[Finding, ...]:
        """Weaver's built-in advice on a key's name, whatever carries it (remembered per key)."""
        cache_key = (key, signal_type, signal_name)
        found = self._advice.get(cache_key)
        if found is not None:
            return found
        index = self.index
        out: list[Finding] = []

        def add(fid: str, message: str) -> None:
            out.append(_finding(fid, message, signal_type, signal_name, key))

        template = None if key in index.attributes else index.attribute(key)
        if template is not None:
            add(F.TEMPLATE_ATTRIBUTE, f"Attribute `{key}` is a template (`{template.name}`).")
        if self.default_advice:
            self._default_advice(key, template is not None, add)
        result = tuple(out)
        return remember(self._advice, cache_key, result)

    def _default_advice(self, key: str, templated: bool, add: Callable[[str, str], None]) -> None:
        """What Weaver's default `live_check_advice` policy says about a key's name."""
        index = self.index
        if "." not in key:
            add(F.MISSING_NAMESPACE, f"Attribute key `{key}` must include a namespace (`namespace.key`).")
        if not templated and not _NAME_FORMAT.match(key):
            add(F.INVALID_FORMAT, f"Attribute key `{key}` does not match the name format (`a.b_c`).")
        if key in index.attributes:
            # Weaver also flags keys the registry itself defines under another attribute's name;
            # that is the registry's doing (a check-time matter), not the emitter's.
            return
        spaces = namespaces_of(key)
        for ns in spaces:
            if ns in index.undeprecated:
                add(F.ILLEGAL_NAMESPACE, f"Namespace `{ns}` of `{key}` is an existing attribute.")
        inside = [ns for ns in spaces if ns in index.namespaces]
        if not templated and inside:
            add(F.EXTENDS_NAMESPACE, f"Attribute key `{key}` extends the existing namespace `{inside[-1]}`.")

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
        values = tuple(attrs.values())
        cache_key = (signal_type, signal_name, registry_only, keys, tuple(map(type, values)))
        shape = self._shapes.get(cache_key)
        if shape is None:
            shape = self._shape(signal_type, signal_name, rule, keys, values, registry_only)
            remember(self._shapes, cache_key, shape)
        if shape.findings:
            out.extend(shape.findings)
        if shape.checks:
            checked = [values[i] for i, _ in shape.checks]
            self._value_checks(shape.checks, keys, checked, signal_type, signal_name, out)

    def _value_checks(
        self,
        checks: tuple[tuple[int, AttrRule], ...],
        keys: tuple[str, ...],
        checked: Sequence[Any],
        signal_type: str,
        signal_name: str | None,
        out: list[Finding],
    ) -> None:
        """Value findings of the `checks` (position, rule), `checked` holding their values."""
        for (i, arule), value in zip(checks, checked, strict=True):
            if arule.members is None:
                if not arule.check(value):
                    out.append(self._type_mismatch(keys[i], value, arule, signal_type, signal_name))
            elif value not in arule.members:
                out.append(
                    self._intern(
                        F.UNDEFINED_ENUM_VARIANT,
                        f"Attribute `{keys[i]}` has value {value!r}, not a member of its enum.",
                        signal_type,
                        signal_name,
                        keys[i],
                    )
                )

    def _shape(
        self,
        signal_type: str,
        signal_name: str | None,
        rule: SignalRule | None,
        keys: Sequence[str],
        values: Sequence[Any],
        registry_only: bool,
    ) -> _Shape:
        """Everything decided by the keys and the value types; `checks` is what depends on values."""
        found: list[Finding] = []
        checks: list[tuple[int, AttrRule]] = []
        index = self.index
        for i, key in enumerate(keys):
            found.extend(self._key_advice(key, signal_type, signal_name))
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
            value = values[i]
            if isinstance(value, (tuple, list)):
                checks.append((i, registered))  # element types vary from sample to sample
            elif not registered.check(value):
                found.append(self._type_mismatch(key, value, registered, signal_type, signal_name))
            elif registered.members is not None:
                checks.append((i, registered))
            if declared is None and rule is not None and not registry_only:
                found.append(
                    _finding(
                        F.UNEXPECTED_ATTRIBUTE,
                        f"Attribute `{key}` exists in the registry but {signal_type} `{signal_name}` "
                        "does not declare it.",
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
            if not registered.stable:
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

    def _intern(
        self, fid: str, message: str, signal_type: str, signal_name: str | None, attribute: str | None = None
    ) -> Finding:
        """One object per distinct value-dependent finding, so reports can group by identity."""
        key = (fid, message, signal_type, signal_name, attribute)
        found = self._interned.get(key)
        if found is None:
            found = remember(self._interned, key, _finding(fid, message, signal_type, signal_name, attribute))
        return found

    def _type_mismatch(
        self, key: str, value: Any, rule: AttrRule, signal_type: str, signal_name: str | None
    ) -> Finding:
        return self._intern(
            F.TYPE_MISMATCH,
            f"Attribute `{key}` has type `{_describe(value)}`, the registry says `{rule.type_name}`.",
            signal_type,
            signal_name,
            key,
        )

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
