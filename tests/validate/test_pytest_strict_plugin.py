"""The pytest plugin fails exactly the tests whose telemetry breaks the schema, and only those."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

INNER_TESTS = """
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind

from knhk_otel.runtime import strict
from knhk_otel.schema import load_and_resolve
from knhk_otel.validate.sdk import ValidatingMetricExporter, ValidationHook

SHOP, _ = load_and_resolve("shop")


def test_no_telemetry_at_all():
    assert 1 + 1 == 2


def test_strict_mode_is_on_in_every_test():
    assert strict.is_strict()


def test_good_span(schema_validation):
    p = schema_validation.providers(SHOP)
    with p.tracer_provider.get_tracer("t").start_as_current_span(
        "shop.refund", kind=SpanKind.INTERNAL, attributes={"shop.order.id": "o"}
    ):
        pass


def test_bad_span_swallowed_by_the_test(schema_validation):
    p = schema_validation.providers(SHOP)
    try:
        tracer = p.tracer_provider.get_tracer("t")
        with tracer.start_as_current_span("shop.refund", kind=SpanKind.INTERNAL):
            pass
    except Exception:
        pass  # the code under test hides the exception: the plugin still fails the test


def test_bad_metric_in_a_periodic_export():
    hook = ValidationHook(SHOP, "strict")
    reader = PeriodicExportingMetricReader(ValidatingMetricExporter(hook), export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource({"service.name": "t"}), metric_readers=[reader])
    orders = provider.get_meter("t").create_counter("shop.orders", unit="{order}")
    orders.add(1, {"shop.payment.method": "gold"})
    provider.shutdown()


@pytest.mark.allow_schema_findings
def test_bad_span_on_purpose(schema_validation):
    p = schema_validation.providers(SHOP)
    with pytest.raises(Exception):
        with p.tracer_provider.get_tracer("t").start_as_current_span("nope"):
            pass
    assert [f.id for f in schema_validation.violations()] == ["missing_span"]


def test_project_schema_is_loaded_lazily(schema_validation):
    assert schema_validation.registry.group("span.knhk.mesh.gossip.round") is not None
"""


def test_plugin_fails_only_the_tests_that_break_the_schema(pytester: pytest.Pytester) -> None:
    shutil.copytree(HERE / "shop", pytester.path / "shop")
    shutil.copytree(HERE.parent.parent / "schema", pytester.path / "schema")
    pytester.makeconftest('pytest_plugins = ["knhk_otel.harness.pytest_plugin"]\n')
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=5, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*FAILED test_inner.py::test_bad_span_swallowed_by_the_test*",
            "*FAILED test_inner.py::test_bad_metric_in_a_periodic_export*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*telemetry broke the schema during the test:*",
            "*undefined_enum_variant*metric `shop.orders`*",
        ]
    )
    result.stdout.fnmatch_lines(["*required_attribute_not_present*span `shop.refund`*"])
