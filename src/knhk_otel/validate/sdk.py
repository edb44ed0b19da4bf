"""In-process validation: OTel SDK span processor, metric exporter/reader and log processor.

Modes: `strict` raises `SchemaViolation` at the emission point (span end, log emit, metric
collection) and also records the findings, because some paths (periodic metric export) swallow
exceptions; `count` adds the findings (violations and improvements; information is noise in
production) to the `knhk.mesh.schema.findings` counter and logs each distinct one once; `off`
does nothing. Recorders (the pytest plugin) see every finding of every hook, whatever the mode.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from typing import Any, Literal

from opentelemetry.metrics import Meter
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.findings import COUNTED_IN_PROCESS, DEFAULT_LEVELS, Finding, SchemaViolation
from knhk_otel.validate.index import RegistryIndex
from knhk_otel.validate.samples import (
    EventSample,
    ResourceSample,
    SpanEventSample,
    SpanSample,
    from_sdk_log,
    from_sdk_metrics,
)
from knhk_otel.validate.validator import SpanShape, Validator, remember

Mode = Literal["strict", "count", "off"]
MODES: tuple[Mode, ...] = ("strict", "count", "off")
FINDINGS_METRIC = "knhk.mesh.schema.findings"

_log = logging.getLogger(__name__)


class FindingRecorder:
    """Collects findings from every hook while installed (the pytest plugin installs one per test)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.findings: list[Finding] = []

    def record(self, findings: Sequence[Finding]) -> None:
        with self._lock:
            self.findings.extend(findings)

    def violations(self) -> list[Finding]:
        with self._lock:
            return [f for f in self.findings if f.level == "violation"]


# Replaced, never mutated, so the hot path reads it without a lock.
_recorders: tuple[FindingRecorder, ...] = ()
_recorders_lock = threading.Lock()


def install_recorder(recorder: FindingRecorder) -> None:
    global _recorders
    with _recorders_lock:
        _recorders = (*_recorders, recorder)


def uninstall_recorder(recorder: FindingRecorder) -> None:
    global _recorders
    with _recorders_lock:
        _recorders = tuple(r for r in _recorders if r is not recorder)


class ValidationHook:
    """What every SDK hook shares: the validator, the mode, and where findings go."""

    def __init__(
        self,
        registry: ResolvedRegistry | RegistryIndex | Validator,
        mode: Mode = "strict",
        *,
        meter: Meter | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"validation mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.validator = registry if isinstance(registry, Validator) else Validator(registry)
        self._mode: Mode = mode
        self._logged: set[tuple[str, str, str | None, str | None]] = set()
        self._resources_seen: set[Any] = set()
        self._lock = threading.Lock()
        self._counter: _FindingsCounter | None = None
        if meter is not None:
            self.bind_meter(meter)

    @property
    def mode(self) -> Mode:
        """Fixed at construction: the span processor decides once what each span end does."""
        return self._mode

    def bind_meter(self, meter: Meter) -> None:
        """Where `count` mode counts (set after the meter provider that validates exists)."""
        if self.mode == "count" and FINDINGS_METRIC in self.validator.index.metrics:
            self._counter = _FindingsCounter(meter)
            self._counter.start_at_zero()

    def resource(self, attributes: Any) -> list[Finding]:
        """Findings of a resource, only the first time this resource is seen."""
        try:
            key: Any = tuple(sorted(attributes.items()))
            hash(key)
        except TypeError:  # unhashable values (maps): fall back to their text
            key = repr(sorted(attributes.items()))
        with self._lock:
            if key in self._resources_seen:
                return []
            self._resources_seen.add(key)
        return self.validator.validate_resource(ResourceSample(dict(attributes)))

    def handle(self, findings: list[Finding]) -> None:
        if not findings or self.mode == "off":
            return
        for recorder in _recorders:
            recorder.record(findings)
        if self.mode == "count":
            self._count(findings)
        elif self.mode == "strict":
            violations = [f for f in findings if f.level == "violation"]
            if violations:
                raise SchemaViolation(violations)

    def _count(self, findings: list[Finding]) -> None:
        for f in findings:
            if f.level == "information":
                continue  # nothing to fix; counting it would only drown what is
            key = (f.id, f.signal_type, f.signal_name, f.attribute)
            with self._lock:
                first = key not in self._logged
                if first:
                    self._logged.add(key)
            if first:
                _log.warning("schema finding: %s", f)
            if self._counter is not None:
                self._counter.add(f)


class _FindingsCounter:
    """The schema's `knhk.mesh.schema.findings` counter: the generated helper when it exists."""

    def __init__(self, meter: Meter) -> None:
        self._helper: Any = None
        generated: Any
        try:
            generated = importlib.import_module("knhk_otel.semconv.metrics")
            enums = importlib.import_module("knhk_otel.semconv.attributes")
        except ImportError:  # not generated yet in this checkout: the raw counter does the same
            generated = enums = None
        helper_class = getattr(generated, "SchemaFindings", None) if generated is not None else None
        self._level_enum: Any = getattr(enums, "SchemaFindingLevel", str)
        self._signal_enum: Any = getattr(enums, "SchemaSignalType", str)
        if helper_class is not None:
            self._helper = helper_class(meter)
            self._raw = None
        else:
            self._raw = meter.create_counter(
                FINDINGS_METRIC, unit="{finding}", description="Schema findings."
            )

    def start_at_zero(self) -> None:
        """A 0 for every finding count mode can count: a panel reads "0 findings", not "no data",
        and the first real finding is an increase that alerts see."""
        for finding_id, signal_types in COUNTED_IN_PROCESS.items():
            for signal_type in signal_types:
                self._add(0, finding_id, DEFAULT_LEVELS[finding_id], signal_type)

    def add(self, f: Finding) -> None:
        self._add(1, f.id, f.level, f.signal_type)

    def _add(self, amount: int, finding_id: str, level: str, signal: str) -> None:
        signal_type = signal if signal in ("span", "metric", "event", "resource") else None
        if self._helper is not None:
            kwargs: dict[str, Any] = {
                "schema_finding_id": finding_id,
                "schema_finding_level": self._level_enum(level),
            }
            if signal_type is not None:
                kwargs["schema_signal_type"] = self._signal_enum(signal_type)
            self._helper.add(amount, **kwargs)
            return
        attrs = {"knhk.mesh.schema.finding.id": finding_id, "knhk.mesh.schema.finding.level": level}
        if signal_type is not None:
            attrs["knhk.mesh.schema.signal.type"] = signal_type
        assert self._raw is not None
        self._raw.add(amount, attrs)


# Keyed by identity: hashing an Enum member runs Python code, `id()` does not.
_KIND_WORDS: dict[int, str] = {id(k): k.name.lower() for k in SpanKind}


class ValidatingSpanProcessor(SpanProcessor):
    """Validates every span when it ends (strict mode: `span.end()` raises on a violation)."""

    def __init__(self, hook: ValidationHook) -> None:
        self.hook = hook
        # Read once: `on_end` runs for every span, and none of these changes after construction.
        validator = hook.validator
        self._validator = validator
        self._shapes = validator.sdk_span_shapes
        self._families = validator.sdk_span_families
        self._with_entities = validator.spans_with_entities
        self._off = hook.mode == "off"
        self._counting = hook.mode == "count"
        self._last_resource: Any = None  # the resource judged last: spans of a provider share one

    def on_end(self, span: ReadableSpan) -> None:
        if self._off:
            return
        # ReadableSpan.attributes wraps the SDK's BoundedAttributes in a proxy whose every read runs
        # Python code under a lock, and its BoundedLists answer `len()` in Python: the span has
        # ended, so the plain dict and deques underneath are safe to read directly.
        try:
            attrs: Any = span._attributes._dict  # type: ignore[union-attr]
            extras = span._events._dq or span._links._dq  # type: ignore[attr-defined]
        except AttributeError:  # a span not built by the SDK's Span
            attrs = span.attributes or {}
            extras = span._events or span._links
        if extras:
            self._judge_whole(span, attrs)
        else:
            name = span._name
            # (name, *keys) and the value types, unpacked for the arities mesh spans have: built
            # from a list (`*attrs`) a key costs a reallocation, `type(v)` through `map` a call
            # per value; written out, both are single instructions.
            n = len(attrs)
            if n == 5:
                ka, kb, kc, kd, ke = attrs
                a, b, c, d, e = attrs.values()
                family_key: tuple[str, ...] = (name, ka, kb, kc, kd, ke)
                types: tuple[type, ...] = (type(a), type(b), type(c), type(d), type(e))
            elif n == 6:
                ka, kb, kc, kd, ke, kf = attrs
                a, b, c, d, e, f = attrs.values()
                family_key = (name, ka, kb, kc, kd, ke, kf)
                types = (type(a), type(b), type(c), type(d), type(e), type(f))
            elif n == 4:
                ka, kb, kc, kd = attrs
                a, b, c, d = attrs.values()
                family_key = (name, ka, kb, kc, kd)
                types = (type(a), type(b), type(c), type(d))
            elif n == 7:
                ka, kb, kc, kd, ke, kf, kg = attrs
                a, b, c, d, e, f, g = attrs.values()
                family_key = (name, ka, kb, kc, kd, ke, kf, kg)
                types = (type(a), type(b), type(c), type(d), type(e), type(f), type(g))
            else:
                family_key = (name, *attrs)
                types = tuple(map(type, attrs.values()))
            # The family of (name, keys) remembers the kind and value types of its first span and
            # that span's shape: a span of the same kind and types has that shape, found without
            # hashing kind and types (other kinds and types: see `_shape`).
            family = self._families.get(family_key)
            if family is not None and family[0] is span._kind and family[1] == types:
                shape = family[2]
            else:
                shape = self._shape(name, span._kind, attrs, types, family_key, family is None)
            getter = shape.getter
            if getter is None:
                verdict = shape.verdict
            else:
                checked = getter(attrs)
                memo = shape.memo
                found = memo.get(checked) if memo is not None else None
                verdict = found if found is not None else shape.judge(checked)
            # Findings come most serious first: without a recorder, strict mode has nothing to do
            # unless the first one is a violation.
            if verdict.violation or ((_recorders or self._counting) and verdict.findings):
                self.hook.handle(list(verdict.findings))
            if self._with_entities and name in self._with_entities:  # a frozenset: empty is falsy
                validator = self._validator
                rule = validator.index.spans.get(name)
                entities = validator.entity_findings(rule, _resource_attributes(span))
                if entities:
                    self.hook.handle(list(entities))
        resource = span._resource
        if resource is not self._last_resource and resource is not None:
            self._last_resource = resource
            self.hook.handle(self.hook.resource(resource.attributes))

    def _shape(
        self,
        name: str,
        kind: SpanKind,
        attrs: dict[str, Any],
        types: tuple[type, ...],
        family_key: tuple[str, ...],
        new_family: bool,
    ) -> SpanShape:
        """The shape by its full key (name, kind, keys, value types), judged if not known yet."""
        key = (name, id(kind), *attrs, *types)
        shape = self._shapes.get(key)
        validator = self._validator
        if shape is None:
            keys = tuple(attrs)
            found = validator.span_shape(name, _KIND_WORDS.get(id(kind)), keys, tuple(attrs.values()))
            shape = validator.remember_span_shape(self._shapes, key, found)
        if new_family:  # stored complete (one tuple): other threads read families without a lock
            remember(self._families, family_key, (kind, types, shape))
        return shape

    def _judge_whole(self, span: ReadableSpan, attrs: Any) -> None:
        """A span with events or links: no shape; the validator judges it (and them) in full."""
        kind_word = _KIND_WORDS.get(id(span._kind))
        events = [SpanEventSample(e.name, e.attributes or {}) for e in span._events]
        links = [link.attributes or {} for link in span._links]
        sample = SpanSample(span._name, kind_word, attrs, events, links, _resource_attributes(span))
        found = self._validator.validate_span(sample)
        if found:
            self.hook.handle(list(found))


def _resource_attributes(span: ReadableSpan) -> Any:
    resource = span._resource
    return resource.attributes if resource is not None else None


class ValidatingLogProcessor(LogRecordProcessor):
    """Validates log records that carry an event name (OTel events) when they are emitted."""

    def __init__(self, hook: ValidationHook) -> None:
        self.hook = hook

    def on_emit(self, log_record: Any) -> None:
        if self.hook.mode == "off":
            return
        sample: EventSample | None = from_sdk_log(log_record)
        found: list[Finding] = [] if sample is None else self.hook.validator.validate_event(sample)
        resource = getattr(log_record, "resource", None)
        if resource is not None:
            found.extend(self.hook.resource(resource.attributes))
        self.hook.handle(found)

    def emit(self, log_record: Any) -> None:
        self.on_emit(log_record)

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def validate_metrics_data(hook: ValidationHook, metrics_data: MetricsData) -> None:
    if hook.mode == "off":
        return
    found: list[Finding] = []
    for resource, metric in from_sdk_metrics(metrics_data):
        found.extend(hook.validator.validate_metric(metric))
        found.extend(hook.resource(resource.attributes))
    hook.handle(found)


class ValidatingMetricExporter(MetricExporter):
    """Wraps a push exporter: validates every exported batch, then hands it on (if there is one).

    In strict mode the violation is recorded and raised; the periodic reader logs and drops the
    exception, which is why recorders exist.
    """

    def __init__(self, hook: ValidationHook, inner: MetricExporter | None = None) -> None:
        if inner is not None:
            super().__init__(
                preferred_temporality=inner._preferred_temporality,
                preferred_aggregation=inner._preferred_aggregation,
            )
        else:
            super().__init__()
        self.hook = hook
        self.inner = inner

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            validate_metrics_data(self.hook, metrics_data)
        finally:
            result = (
                self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
                if self.inner is not None
                else MetricExportResult.SUCCESS
            )
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis) if self.inner is not None else True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self.inner is not None:
            self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class ValidatingMetricReader(InMemoryMetricReader):
    """A pull reader for tests: `get_metrics_data()` collects, validates (raising in strict mode)."""

    def __init__(self, hook: ValidationHook) -> None:
        super().__init__()
        self.hook = hook

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        super()._receive_metrics(metrics_data, timeout_millis=timeout_millis, **kwargs)
        if metrics_data is not None:
            validate_metrics_data(self.hook, metrics_data)
