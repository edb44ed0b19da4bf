"""The pure validator on hand-built samples: one behaviour per test, exact findings."""

from __future__ import annotations

import json

import pytest

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.findings import DEFAULT_LEVELS, Finding
from knhk_otel.validate.samples import (
    AttributeSample,
    Batch,
    EventSample,
    MetricSample,
    ResourceSample,
    SpanEventSample,
    SpanSample,
    from_weaver_samples,
)
from knhk_otel.validate.validator import Validator


@pytest.fixture(scope="module")
def v(shop: ResolvedRegistry) -> Validator:
    return Validator(shop)


def ids(findings: list[Finding]) -> list[tuple[str, str | None]]:
    return sorted((f.id, f.attribute) for f in findings)


def test_a_conforming_span_has_no_findings(v: Validator) -> None:
    span = SpanSample("shop.checkout", "server", {"shop.order.id": "o", "shop.payment.method": "card"})
    assert v.validate(span) == []


def test_template_attributes_match_by_prefix_and_check_the_inner_type(v: Validator) -> None:
    ok = SpanSample("shop.refund", "internal", {"shop.order.id": "o"})
    assert v.validate(ok) == []
    span = SpanSample(
        "shop.checkout",
        "server",
        {
            "shop.order.id": "o",
            "shop.payment.method": "card",
            "shop.header.accept": "a",
            "shop.header.x-id": 5,
        },
    )
    assert ids(v.validate(span)) == [
        ("template_attribute", "shop.header.accept"),  # Weaver's built-in advice (information)
        ("template_attribute", "shop.header.x-id"),
        ("type_mismatch", "shop.header.x-id"),
    ]
    # the bare template name is not an attribute; a longer neighbour is not a match either
    bad = SpanSample(
        "shop.checkout", "server", {"shop.order.id": "o", "shop.payment.method": "card", "shop.headers": "a"}
    )
    assert ids(v.validate(bad)) == [
        ("extends_namespace", "shop.headers"),
        ("missing_attribute", "shop.headers"),
    ]


def test_int_enums_check_membership_and_type(v: Validator) -> None:
    base = {"shop.order.id": "o", "shop.payment.method": "card"}
    assert v.validate(SpanSample("shop.checkout", "server", {**base, "shop.priority": 2})) == []
    assert ids(v.validate(SpanSample("shop.checkout", "server", {**base, "shop.priority": 9}))) == [
        ("undefined_enum_variant", "shop.priority")
    ]
    # Weaver's rule: a string or an int is an enum value; "2" is simply not a member
    assert ids(v.validate(SpanSample("shop.checkout", "server", {**base, "shop.priority": "2"}))) == [
        ("undefined_enum_variant", "shop.priority")
    ]
    assert ids(v.validate(SpanSample("shop.checkout", "server", {**base, "shop.priority": 2.0}))) == [
        ("type_mismatch", "shop.priority")
    ]


def test_arrays_are_typed_element_by_element(v: Validator) -> None:
    base = {"shop.order.id": "o", "shop.payment.method": "card"}
    assert v.validate(SpanSample("shop.checkout", "server", {**base, "shop.tags": ("a", "b")})) == []
    (f,) = v.validate(SpanSample("shop.checkout", "server", {**base, "shop.tags": ("a", 1)}))
    assert (f.id, f.message) == (
        "type_mismatch",
        "Attribute `shop.tags` has type `int|string[]`, the registry says `string[]`.",
    )
    assert ids(v.validate(SpanSample("shop.checkout", "server", {**base, "shop.tags": "a"}))) == [
        ("type_mismatch", "shop.tags")
    ]


def test_booleans_are_not_ints_and_ints_are_doubles(v: Validator) -> None:
    base = {"shop.order.id": "o", "shop.payment.method": "card"}
    assert v.validate(SpanSample("shop.checkout", "server", {**base, "shop.discount": 1})) == []
    assert ids(v.validate(SpanSample("shop.checkout", "server", {**base, "shop.item.count": True}))) == [
        ("type_mismatch", "shop.item.count")
    ]
    assert ids(v.validate(SpanSample("shop.checkout", "server", {**base, "shop.discount": True}))) == [
        ("type_mismatch", "shop.discount")
    ]


def test_span_kind_is_not_judged_when_the_sample_does_not_say(v: Validator) -> None:
    assert v.validate(SpanSample("shop.refund", None, {"shop.order.id": "o"})) == []


def test_span_events_are_matched_to_event_definitions_and_exception_is_allowed(v: Validator) -> None:
    events = [
        SpanEventSample("shop.order.placed", {"shop.order.id": "o"}),
        SpanEventSample("exception", {"exception.message": "boom"}),
    ]
    span = SpanSample("shop.refund", "internal", {"shop.order.id": "o"}, events)
    assert ids(v.validate(span)) == [("recommended_attribute_not_present", "shop.item.count")]


def test_link_attributes_are_checked_against_the_registry(v: Validator) -> None:
    span = SpanSample(
        "shop.refund", "internal", {"shop.order.id": "o"}, (), [{"shop.order.id": 1, "x.y": "z"}]
    )
    assert ids(v.validate(span)) == [("missing_attribute", "x.y"), ("type_mismatch", "shop.order.id")]


def test_metric_findings_of_several_points_are_reported_once(v: Validator) -> None:
    metric = MetricSample("shop.orders", "counter", "{order}", [{}, {}, {"shop.payment.method": "gold"}])
    assert ids(v.validate(metric)) == [
        ("required_attribute_not_present", "shop.payment.method"),
        ("undefined_enum_variant", "shop.payment.method"),
    ]


def test_histogram_bucket_advice_from_annotations(v: Validator) -> None:
    good = MetricSample("shop.order.duration", "histogram", "s", [{}], (0.1, 0.5, 1.0, 5.0))
    assert v.validate(good) == []
    bad = MetricSample("shop.order.duration", "histogram", "s", [{}], (0.0, 5.0, 10.0))
    assert ids(v.validate(bad)) == [("bucket_boundaries_mismatch", None)]


def test_events_without_a_definition_and_attributes_without_a_registry_entry(v: Validator) -> None:
    assert ids(v.validate(EventSample("shop.nope", {"a.b": 1}))) == [
        ("missing_attribute", "a.b"),
        ("missing_event", None),
    ]


def test_resource_attributes_outside_the_registry_are_information(v: Validator) -> None:
    (f,) = v.validate(ResourceSample({"service.name": "s", "host.name": "h"}))
    assert (f.id, f.level, f.attribute) == ("missing_attribute", "information", "host.name")
    assert ids(v.validate(ResourceSample({"service.name": 3}))) == [("type_mismatch", "service.name")]


def test_bare_attribute_samples(v: Validator) -> None:
    assert v.validate(AttributeSample("shop.order.id", "o", True)) == []
    assert v.validate(AttributeSample("shop.order.id")) == []
    assert ids(v.validate(AttributeSample("nope"))) == [
        ("missing_attribute", "nope"),
        ("missing_namespace", "nope"),
    ]
    assert ids(v.validate(AttributeSample("shop.payment.method", "gold", True))) == [
        ("undefined_enum_variant", "shop.payment.method")
    ]


def test_weaver_sample_array_is_read(v: Validator) -> None:
    order = [{"name": "shop.order.id", "value": "o"}]
    doc = [
        {
            "span": {
                "name": "shop.refund",
                "kind": "internal",
                "attributes": order,
                "span_events": [
                    {
                        "name": "shop.order.placed",
                        "attributes": [*order, {"name": "shop.item.count", "value": 1}],
                    }
                ],
            }
        },
        {
            "metric": {
                "name": "shop.queue.depth",
                "instrument": "updowncounter",
                "unit": "{order}",
                "data_points": [{"attributes": [], "value": 3}],
            }
        },
        {"event": {"event_name": "shop.order.placed", "attributes": order}},
        {"resource": {"attributes": [{"name": "service.name", "value": "shop"}]}},
        {"name": "shop.tags", "value": ["a", "b"]},
    ]
    batch = from_weaver_samples(doc)
    assert [s.signal_type for s in batch.samples] == ["span", "metric", "event", "attribute"]
    assert len(batch.resources) == 1
    found = [ids(v.validate(s)) for s in [*batch.samples, *batch.resources]]
    assert found == [[], [], [("recommended_attribute_not_present", "shop.item.count")], [], []]


def test_every_finding_id_has_a_documented_level() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "findings.md").read_text()
    for fid, level in DEFAULT_LEVELS.items():
        assert f"| `{fid}` | {level} |" in doc, fid


def test_findings_are_json_values(v: Validator) -> None:
    (f,) = v.validate(SpanSample("nope", None, {}))
    assert json.loads(json.dumps(f.to_dict())) == {
        "id": "missing_span",
        "level": "violation",
        "message": "Span `nope` is not defined in the registry.",
        "signal_type": "span",
        "signal_name": "nope",
    }


def test_report_groups_equal_findings_whatever_object_carries_them(shop: ResolvedRegistry) -> None:
    from knhk_otel.validate.index import RegistryIndex
    from knhk_otel.validate.report import ReportBuilder

    report = ReportBuilder(RegistryIndex(shop))
    for _ in range(3):  # three fresh validators: three sets of distinct but equal finding objects
        metric = MetricSample("shop.bogus", "counter", "1", [{}])
        report.add(metric, Validator(shop).validate(metric))
    built = report.build()
    assert [(s["signal_name"], s["count"]) for s in built["samples"]] == [("shop.bogus", 3)]


def test_metric_findings_are_also_counted_per_data_point_as_weaver_does(shop: ResolvedRegistry) -> None:
    from knhk_otel.validate.server import Checker

    checker = Checker(shop)
    metric = MetricSample("shop.orders", "counter", "{order}", [{"nope": 1}, {"nope": 2}, {}])
    checker.add_batch(Batch(samples=[metric, MetricSample("shop.unknown", "gauge", "1", [])]))
    stats = checker.report.build()["statistics"]
    # ours: each distinct finding once per metric sample; Weaver's: once per data point
    assert stats["findings_by_id"]["missing_attribute"] == 1
    assert stats["findings_by_id_per_data_point"]["missing_attribute"] == 2
    assert stats["findings_by_id_per_data_point"]["missing_namespace"] == 2
    # a metric without data points is still judged for its name, instrument and unit
    assert stats["findings_by_id"]["missing_metric"] == 1
    validator = Validator(shop)
    assert [f.id for f in validator.validate(MetricSample("shop.orders", "gauge", "{order}", []))] == [
        "unexpected_instrument"
    ]
