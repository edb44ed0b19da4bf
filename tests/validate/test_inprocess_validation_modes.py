"""In-process hooks with the real SDK: strict raises at the emission point, count counts, off is silent."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind

from knhk_otel.harness.pytest_plugin import SchemaValidation, validated_providers
from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.findings import COUNTED_IN_PROCESS, SchemaViolation
from knhk_otel.validate.sdk import (
    FindingRecorder,
    ValidatingMetricExporter,
    ValidationHook,
    install_recorder,
    uninstall_recorder,
)


@pytest.mark.allow_schema_findings
def test_strict_mode_raises_when_a_bad_span_ends(shop: ResolvedRegistry) -> None:
    p = validated_providers(shop, "strict")
    tracer = p.tracer_provider.get_tracer("t")
    with (
        pytest.raises(SchemaViolation) as caught,
        tracer.start_as_current_span("shop.refund", kind=SpanKind.INTERNAL),
    ):
        pass
    assert [f.id for f in caught.value.findings] == ["required_attribute_not_present"]
    assert caught.value.findings[0].attribute == "shop.order.id"
    # exported anyway: the exporter runs before the validator
    assert [s.name for s in p.spans.get_finished_spans()] == ["shop.refund"]
    p.shutdown()


def test_strict_mode_lets_a_good_span_through(
    shop: ResolvedRegistry, schema_validation: SchemaValidation
) -> None:
    p = schema_validation.providers(shop)
    with p.tracer_provider.get_tracer("t").start_as_current_span(
        "shop.refund", kind=SpanKind.INTERNAL, attributes={"shop.order.id": "o-1"}
    ):
        pass
    assert schema_validation.findings == []


@pytest.mark.allow_schema_findings
def test_strict_mode_raises_when_a_bad_event_is_emitted(shop: ResolvedRegistry) -> None:
    p = validated_providers(shop, "strict")
    logger = p.logger_provider.get_logger("t")
    with pytest.raises(SchemaViolation) as caught:
        logger.emit(event_name="shop.order.placed", attributes={"shop.order.id": 7})
    assert [(f.id, f.attribute) for f in caught.value.findings] == [("type_mismatch", "shop.order.id")]
    logger.emit(body="plain log lines are not events and are not judged")
    p.shutdown()


@pytest.mark.allow_schema_findings
def test_strict_mode_raises_when_bad_metrics_are_collected(shop: ResolvedRegistry) -> None:
    p = validated_providers(shop, "strict")
    p.meter_provider.get_meter("t").create_counter("shop.orders", unit="{order}").add(1)
    with pytest.raises(SchemaViolation) as caught:
        p.collect_metrics()
    assert [(f.id, f.attribute) for f in caught.value.findings] == [
        ("required_attribute_not_present", "shop.payment.method")
    ]
    p.shutdown()


def test_periodic_metric_export_swallows_the_exception_but_the_recorder_sees_it(
    shop: ResolvedRegistry,
) -> None:
    recorder = FindingRecorder()
    install_recorder(recorder)
    try:
        hook = ValidationHook(shop, "strict")
        reader = PeriodicExportingMetricReader(
            ValidatingMetricExporter(hook), export_interval_millis=3_600_000
        )
        provider = MeterProvider(resource=Resource({"service.name": "t"}), metric_readers=[reader])
        provider.get_meter("t").create_histogram("shop.order.duration", unit="s").record(0.2)
        provider.shutdown()  # final export: SchemaViolation raised inside, logged by the SDK
    finally:
        uninstall_recorder(recorder)
    assert [f.id for f in recorder.findings] == ["bucket_boundaries_mismatch"]
    assert recorder.violations() == []


def test_count_mode_counts_each_finding_and_logs_each_distinct_one_once(
    shop: ResolvedRegistry, caplog: pytest.LogCaptureFixture, schema_validation: SchemaValidation
) -> None:
    schema_validation.allow()
    p = validated_providers(shop, "count")
    # The shop registry has no findings counter; count mode still logs, once per distinct finding.
    tracer = p.tracer_provider.get_tracer("t")
    with caplog.at_level(logging.WARNING, logger="knhk_otel.validate.sdk"):
        for _ in range(3):
            with tracer.start_as_current_span("unknown.op"):
                pass
    logged = [r.getMessage() for r in caplog.records if "schema finding" in r.getMessage()]
    assert logged == [
        "schema finding: violation[missing_span] span `unknown.op`: "
        "Span `unknown.op` is not defined in the registry."
    ]
    assert [f.id for f in schema_validation.findings] == ["missing_span"] * 3
    p.shutdown()


def test_count_mode_adds_to_the_schema_findings_counter_of_the_mesh_schema(
    schema_validation: SchemaValidation,
) -> None:
    schema_validation.allow()
    p = validated_providers(schema_validation.registry, "count")
    # before any finding: a 0 for every finding count mode can count (a panel reads 0, not "no data")
    before = _findings_points(p)
    assert len(before) == sum(len(signals) for signals in COUNTED_IN_PROCESS.values())
    assert set(before.values()) == {0}
    assert {level for _id, level, _signal in before} == {"violation", "improvement"}
    tracer = p.tracer_provider.get_tracer("t")
    for _ in range(2):
        with tracer.start_as_current_span("not.a.mesh.span"):
            pass
    after = _findings_points(p)
    # the findings land on the series that started at 0 (an increase Prometheus sees), no new one
    assert set(after) == set(before)
    assert {key: value for key, value in after.items() if value} == {("missing_span", "violation", "span"): 2}
    # the counter itself is part of the schema: collecting it added no violation of its own
    assert [f.id for f in schema_validation.violations()] == ["missing_span", "missing_span"]
    p.shutdown()


def _findings_points(p: Any) -> dict[tuple[str, str, str], int]:
    """The `knhk.mesh.schema.findings` points of one collection: (id, level, signal type) → value."""
    data = p.collect_metrics()
    return {
        (
            str(point.attributes["knhk.mesh.schema.finding.id"]),
            str(point.attributes["knhk.mesh.schema.finding.level"]),
            str(point.attributes["knhk.mesh.schema.signal.type"]),
        ): int(point.value)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "knhk.mesh.schema.findings"
        for point in m.data.data_points
    }


def test_off_mode_neither_raises_nor_records(
    shop: ResolvedRegistry, schema_validation: SchemaValidation
) -> None:
    p = validated_providers(shop, "off")
    with p.tracer_provider.get_tracer("t").start_as_current_span("unknown.op"):
        pass
    p.meter_provider.get_meter("t").create_counter("bogus").add(1)
    p.collect_metrics()
    p.logger_provider.get_logger("t").emit(event_name="bogus.event")
    assert schema_validation.findings == []
    p.shutdown()


def test_the_mode_is_fixed_when_the_hook_is_made(shop: ResolvedRegistry) -> None:
    """Span processors read it once; a mode that could change later would be ignored by them."""
    hook = ValidationHook(shop, "count")
    with pytest.raises(AttributeError):
        hook.mode = "off"  # type: ignore[misc]
    assert hook.mode == "count"
    with pytest.raises(ValueError, match="validation mode must be one of strict, count, off"):
        ValidationHook(shop, "loud")  # type: ignore[arg-type]


def test_resource_is_judged_once_per_hook(
    shop: ResolvedRegistry, schema_validation: SchemaValidation
) -> None:
    p = schema_validation.providers(shop)  # resource {"service.name": "test"}: in the shop registry
    tracer = p.tracer_provider.get_tracer("t")
    for _ in range(2):
        with tracer.start_as_current_span(
            "shop.refund", kind=SpanKind.INTERNAL, attributes={"shop.order.id": "o"}
        ):
            pass
    assert schema_validation.findings == []


def test_sdk_span_converter_sees_what_the_processor_sees(
    shop: ResolvedRegistry, schema_validation: SchemaValidation
) -> None:
    from knhk_otel.validate.samples import from_sdk_log, from_sdk_span
    from knhk_otel.validate.validator import Validator

    schema_validation.allow()
    p = validated_providers(shop, "count")
    with p.tracer_provider.get_tracer("t").start_as_current_span(
        "shop.checkout", kind=SpanKind.CLIENT, attributes={"shop.order.id": "o", "shop.tags": ("a", 2)}
    ) as span:
        span.add_event("shop.order.placed", {"shop.order.id": "o"})
    p.logger_provider.get_logger("t").emit(event_name="shop.order.placed", attributes={"shop.order.id": 1})
    (finished,) = p.spans.get_finished_spans()
    (log,) = p.logs.get_finished_logs()
    validator = Validator(shop)
    offline = validator.validate(from_sdk_span(finished))
    event = from_sdk_log(log)
    assert event is not None
    offline += validator.validate(event)
    assert sorted(f.id for f in offline) == sorted(f.id for f in schema_validation.findings)
    assert sorted(f.id for f in offline) == [
        "recommended_attribute_not_present",
        "recommended_attribute_not_present",
        "recommended_attribute_not_present",
        "span_kind_mismatch",
        "type_mismatch",
        "type_mismatch",
    ]
    p.shutdown()
