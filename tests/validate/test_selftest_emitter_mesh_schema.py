"""Every generated helper, called with every argument, emits what the mesh schema describes."""

from __future__ import annotations

from knhk_otel.harness.pytest_plugin import SchemaValidation
from knhk_otel.harness.selftest import exercise


def test_every_generated_helper_conforms_to_the_project_schema(schema_validation: SchemaValidation) -> None:
    registry = schema_validation.registry
    p = schema_validation.providers()  # strict, on the project's schema
    emitted = exercise(
        p.tracer_provider.get_tracer("selftest"),
        p.meter_provider.get_meter("selftest"),
        p.logger_provider.get_logger("selftest"),
    )
    p.collect_metrics()
    own = registry.own
    assert emitted.spans == len([g for g in registry.spans() if g.id in own])
    assert emitted.metrics == len([g for g in registry.metrics() if g.id in own])
    assert emitted.events == len([g for g in registry.events() if g.id in own])
    assert {s.name for s in p.spans.get_finished_spans()} == {g.signal_name for g in registry.spans()}
    assert schema_validation.violations() == []
    assert {f.id for f in schema_validation.findings} <= {"not_stable", "missing_attribute"}
