"""Fixtures of the validate area: the small `shop` registry (tests/validate/shop), not the mesh schema."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from knhk_otel.schema import load_and_resolve
from knhk_otel.schema.model import ResolvedRegistry

SHOP_DIR = Path(__file__).resolve().parent / "shop"


def shop_registry() -> ResolvedRegistry:
    registry, diagnostics = load_and_resolve(SHOP_DIR)
    errors = [d.render() for d in diagnostics if d.is_error]
    assert registry is not None and not errors, errors
    return registry


@pytest.fixture(scope="session")
def shop() -> ResolvedRegistry:
    return shop_registry()


@pytest.fixture(scope="session")
def shop_dir() -> Path:
    return SHOP_DIR


# --- the crafted set: good and bad signals, emitted through the real OTel SDK ----------------------

Emit = Callable[[TracerProvider, MeterProvider, LoggerProvider], None]


def emit_crafted_set(
    tracer_provider: TracerProvider, meter_provider: MeterProvider, logger_provider: LoggerProvider
) -> None:
    """Spans, metrics and events the `shop` registry judges; EXPECTED_FINDINGS lists the verdicts."""
    tracer = tracer_provider.get_tracer("shop.tests")
    with tracer.start_as_current_span(
        "shop.checkout",
        kind=SpanKind.SERVER,
        attributes={
            "shop.order.id": "o-1",
            "shop.payment.method": "card",
            "shop.header.accept": "text/plain",
        },
    ):
        pass
    with tracer.start_as_current_span(
        "shop.checkout",
        kind=SpanKind.CLIENT,
        attributes={"shop.order.id": 42, "shop.payment.method": "bitcoin", "foo.bar": "x"},
    ):
        pass
    with tracer.start_as_current_span(
        "shop.refund", kind=SpanKind.INTERNAL, attributes={"shop.item.count": 3}
    ):
        pass
    with tracer.start_as_current_span("unknown.operation"):
        pass
    with tracer.start_as_current_span(
        "shop.checkout",
        kind=SpanKind.SERVER,
        attributes={
            "shop.order.id": "o-2",
            "shop.legacy.code": "L",
            "shop.experiment.flag": True,
            "shop.tags": ("a", "b"),
            "shop.priority": 5,
        },
    ) as span:
        span.add_event("shop.order.placed", {"shop.order.id": "o-2", "shop.item.count": 1})
        span.add_event("shop.mystery")
    meter = meter_provider.get_meter("shop.tests")
    meter.create_counter("shop.orders", unit="{order}").add(1, {"shop.payment.method": "card"})
    meter.create_histogram("shop.order.duration", unit="ms").record(12.0)
    meter.create_up_down_counter("shop.stock", unit="{item}").add(5)
    meter.create_counter("shop.unknown", unit="1").add(1)
    logger = logger_provider.get_logger("shop.tests")
    logger.emit(event_name="shop.order.placed", attributes={"shop.order.id": "o-3", "shop.item.count": 2})
    logger.emit(event_name="shop.order.cancelled", attributes={"shop.order.id": "o-3"})
    logger.emit(body="a plain log line, not an event")


#: (signal_type, signal_name, count, ((finding id, level, attribute), ...)) for every sample with
#: findings; the set has 5 spans, 4 metrics, 2 events, 1 resource.
EXPECTED_FINDINGS: list[tuple[str, str | None, int, tuple[tuple[str, str, str | None], ...]]] = [
    ("event", "shop.order.cancelled", 1, (("missing_event", "violation", None),)),
    (
        "metric",
        "shop.order.duration",
        1,
        (("unit_mismatch", "violation", None), ("bucket_boundaries_mismatch", "improvement", None)),
    ),
    ("metric", "shop.stock", 1, (("unexpected_instrument", "violation", None),)),
    ("metric", "shop.unknown", 1, (("missing_metric", "violation", None),)),
    ("resource", None, 1, (("missing_attribute", "information", "deployment.environment.name"),)),
    (
        "span",
        "shop.checkout",
        1,
        (
            ("missing_attribute", "violation", "foo.bar"),
            ("span_kind_mismatch", "violation", None),
            ("type_mismatch", "violation", "shop.order.id"),
            ("undefined_enum_variant", "violation", "shop.payment.method"),
        ),
    ),
    (
        "span",
        "shop.checkout",
        1,
        (
            ("missing_event", "violation", None),
            ("undefined_enum_variant", "violation", "shop.priority"),
            ("deprecated", "improvement", "shop.legacy.code"),
            ("recommended_attribute_not_present", "improvement", "shop.payment.method"),
            ("not_stable", "information", "shop.experiment.flag"),
        ),
    ),
    # Weaver's built-in advice: a key matched by a template attribute is worth knowing
    ("span", "shop.checkout", 1, (("template_attribute", "information", "shop.header.accept"),)),
    (
        "span",
        "shop.refund",
        1,
        (
            ("required_attribute_not_present", "violation", "shop.order.id"),
            ("unexpected_attribute", "violation", "shop.item.count"),
        ),
    ),
    ("span", "unknown.operation", 1, (("missing_span", "violation", None),)),
]

SHOP_RESOURCE = Resource(
    {"service.name": "shop", "service.instance.id": "i-1", "deployment.environment.name": "test"}
)


@dataclass(frozen=True)
class CraftedSet:
    """The crafted telemetry, the resource it is emitted under, and the findings it must get."""

    emit: Emit
    resource: Resource
    expected: list[tuple[str, str | None, int, tuple[tuple[str, str, str | None], ...]]]


@pytest.fixture
def crafted() -> CraftedSet:
    return CraftedSet(emit_crafted_set, SHOP_RESOURCE, EXPECTED_FINDINGS)
