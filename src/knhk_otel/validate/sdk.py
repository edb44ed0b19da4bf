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
from knhk_otel.validate.validator import Validator

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
        self.mode: Mode = mode
        self._logged: set[tuple[str, str, str | None, str | None]] = set()
        self._resources_seen: set[Any] = set()
        self._lock = threading.Lock()
        self._counter: _FindingsCounter | None = None
        self.last_resource: Any = None  # the resource judged last: spans of a provider share one
        if meter is not None:
            self.bind_meter(meter)

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
        self._shapes = hook.validator.sdk_span_shapes

    def on_end(self, span: ReadableSpan) -> None:
        hook = self.hook
        if hook.mode == "off":
            return
        # ReadableSpan.attributes wraps the SDK's BoundedAttributes in a proxy whose every read runs
        # Python code under a lock, and its BoundedLists answer `len()` in Python: the span has
        # ended, so the plain dict and deques underneath are safe to read directly.
        try:
            attrs: Any = span._attributes._dict  # type: ignore[union-attr]
            bare = not (span._events._dq or span._links._dq)  # type: ignore[attr-defined]
        except AttributeError:  # a span not built by the SDK's Span
            attrs = span.attributes or {}
            bare = not (span._events or span._links)
        found: Sequence[Finding]
        if bare:
            name = span._name
            kind = span._kind
            shape_key = (name, id(kind), *attrs, *map(type, attrs.values()))
            shape = self._shapes.get(shape_key)
            if shape is None:
                validator = hook.validator
                shape = validator.remember_span_shape(
                    self._shapes,
                    shape_key,
                    validator.span_shape(
                        name, _KIND_WORDS.get(id(kind)), tuple(attrs), tuple(attrs.values())
                    ),
                )
            getter = shape.getter
            if getter is None:
                verdict = shape.verdict
            else:
                checked = getter(attrs)
                memo = shape.memo
                verdict = (memo and memo.get(checked)) or shape.judge(checked)
            # Findings come most serious first: without a recorder, strict mode has nothing to do
            # unless the first one is a violation.
            if verdict.findings and (_recorders or hook.mode != "strict" or verdict.violation):
                hook.handle(list(verdict.findings))
            if name in hook.validator.spans_with_entities:
                validator = hook.validator
                rule = validator.index.spans.get(name)
                entities = validator.entity_findings(rule, _resource_attributes(span))
                if entities:
                    hook.handle(list(entities))
        else:
            kind_word = _KIND_WORDS.get(id(span._kind))
            events = [SpanEventSample(e.name, e.attributes or {}) for e in span._events]
            links = [link.attributes or {} for link in span._links]
            sample = SpanSample(span._name, kind_word, attrs, events, links, _resource_attributes(span))
            found = hook.validator.validate_span(sample)
            if found:
                hook.handle(list(found))
        resource = span._resource
        if resource is not None and resource is not hook.last_resource:
            hook.last_resource = resource
            hook.handle(hook.resource(resource.attributes))


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
