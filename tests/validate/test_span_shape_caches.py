"""The span hot paths' caches (shapes, memoised enum verdicts) change no finding: each is held to a
validator that judges every span afresh, value by value."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, SpanContext, SpanKind

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.findings import Finding, SchemaViolation
from knhk_otel.validate.index import RegistryIndex
from knhk_otel.validate.report import ReportBuilder
from knhk_otel.validate.samples import SpanSample, from_otlp_traces, from_sdk_span
from knhk_otel.validate.sdk import (
    FindingRecorder,
    ValidatingSpanProcessor,
    ValidationHook,
    install_recorder,
    uninstall_recorder,
)
from knhk_otel.validate.server import Checker
from knhk_otel.validate.validator import Validator


def afresh(index: RegistryIndex, span: SpanSample) -> list[Finding]:
    """The span's findings from a validator with empty caches, without the span shape path."""
    validator = Validator(index)
    out = validator._span_findings(span.name, span.kind, span.attributes)
    for event in span.events:
        out.extend(validator._span_event(span.name, event))
    for link in span.links:
        validator._attributes("span", span.name, None, link, out, registry_only=True)
    return out


def _value(v: Any) -> AnyValue:
    if v is None:
        return AnyValue()
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, tuple):
        return AnyValue(array_value=ArrayValue(values=[_value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(
            kvlist_value=KeyValueList(values=[KeyValue(key=k, value=_value(x)) for k, x in v.items()])
        )
    return AnyValue(string_value=v)


CHECKOUT = {"shop.order.id": "o-1"}

#: (name, OTLP kind number, attributes as (key, value) pairs): the same shapes again and again with
#: other values (good and bad enum members, arrays of changing item types), every AnyValue field,
#: unset values, kinds the registry does not know. (No key twice: samples are dicts.)
OTLP_SPANS: list[tuple[str, int, list[tuple[str, Any]]]] = [
    (name, kind, [*CHECKOUT.items(), *extra])
    for name, kind in (("shop.checkout", 2), ("shop.checkout", 3), ("shop.refund", 1), ("other", 9))
    for extra in (
        [("shop.payment.method", "card")],
        [("shop.payment.method", "bitcoin")],
        [("shop.payment.method", "card")],
        [("shop.payment.method", "bitcoin")],
        [("shop.payment.method", "gold")],
        [("shop.payment.method", "cash"), ("shop.priority", 2)],
        [("shop.payment.method", "cash"), ("shop.priority", 9)],
        [("shop.payment.method", "gold"), ("shop.priority", 9)],
        [("shop.payment.method", "gold"), ("shop.priority", 9)],
        [("shop.payment.method", "gold"), ("shop.priority", 2)],
        [("shop.priority", True)],
        [("shop.priority", 2.0)],
        [("shop.payment.method", 7)],
        [("shop.tags", ("a", "b"))],
        [("shop.tags", ("a", 1))],
        [("shop.tags", ("a", "b"))],
        [("shop.tags", ())],
        [("shop.tags", "a")],
        [("shop.discount", 1), ("shop.item.count", 1.5)],
        [("shop.discount", 0.5), ("shop.item.count", 1)],
        [("shop.header.accept", "text/plain"), ("shop.header.x-id", 5)],
        [("shop.legacy.code", "L"), ("shop.experiment.flag", False)],
        [("foo.bar", b"\x00"), ("network.peer.address", {"k": ("v", 1)})],
        [("shop.item.count", None), ("shop.payment.method", None)],
    )
]


def _request(spans: list[tuple[str, int, list[tuple[str, Any]]]], with_extras: bool) -> Any:
    out = []
    for i, (name, kind, attrs) in enumerate(spans):
        span = Span(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            trace_id=(i + 1).to_bytes(16, "big"),
            span_id=(i + 1).to_bytes(8, "big"),
            attributes=[KeyValue(key=k, value=_value(v)) for k, v in attrs],
        )
        if with_extras and i % 7 == 0:
            span.events.add(name="shop.order.placed").attributes.add(key="shop.order.id").value.int_value = 1
        if with_extras and i % 11 == 0:
            span.links.add().attributes.add(key="shop.tags").value.string_value = "t"
        out.append(span)
    resource = {"attributes": [KeyValue(key="service.name", value=_value("shop"))]}
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=out)])]  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("with_extras", [False, True])
def test_receiver_reports_what_a_fresh_validator_finds_span_by_span(
    shop: ResolvedRegistry, with_extras: bool
) -> None:
    request = _request(OTLP_SPANS, with_extras)
    checker = Checker(shop)
    expected = ReportBuilder(checker.index)
    for _ in range(3):  # cold caches, then warm shapes and memoised verdicts
        checker.ingest("traces", request)
        batch = from_otlp_traces(request)
        expected.add_many([(s, afresh(checker.index, s)) for s in batch.samples if isinstance(s, SpanSample)])
    expected.add(batch.resources[0], Validator(checker.index).validate_resource(batch.resources[0]))
    report = checker.report.build()
    assert report == expected.build()
    enum_messages = {
        f["message"] for s in report["samples"] for f in s["findings"] if f["id"] == "undefined_enum_variant"
    }
    assert enum_messages == {
        "Attribute `shop.payment.method` has value 'bitcoin', not a member of its enum.",
        "Attribute `shop.payment.method` has value 'gold', not a member of its enum.",
        # an int is a valid enum value type (Weaver's rule): outside the members, not a type mismatch
        "Attribute `shop.payment.method` has value 7, not a member of its enum.",
        "Attribute `shop.priority` has value 9, not a member of its enum.",
    }


def test_memoised_enum_verdicts_still_name_each_value(shop: ResolvedRegistry) -> None:
    v = Validator(shop)
    keys = ("shop.order.id", "shop.payment.method")

    def judge(method: str) -> tuple[Finding, ...]:
        return v.judge_span("shop.checkout", "server", keys, ("o", method))

    assert judge("card") == () and judge("cash") == ()
    bitcoin = judge("bitcoin")
    assert [f.message for f in bitcoin] == [
        "Attribute `shop.payment.method` has value 'bitcoin', not a member of its enum."
    ]
    assert judge("bitcoin") is bitcoin  # memoised: the very same verdict
    assert judge("card") == ()
    assert [f.message for f in judge("gold")] == [
        "Attribute `shop.payment.method` has value 'gold', not a member of its enum."
    ]
    assert judge("bitcoin") is bitcoin


@pytest.mark.allow_schema_findings
def test_span_processor_finds_what_a_fresh_validator_finds_span_by_span(shop: ResolvedRegistry) -> None:
    hook = ValidationHook(shop, "strict")
    provider = TracerProvider()
    provider.add_span_processor(ValidatingSpanProcessor(hook))
    tracer = provider.get_tracer("shop.tests")
    link = Link(SpanContext(1, 2, False), {"shop.tags": "t"})
    recorder = FindingRecorder()
    install_recorder(recorder)
    checked = 0
    try:
        for round_ in range(3):
            for i, (name, kind_number, pairs) in enumerate(OTLP_SPANS):
                kind = {1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT}.get(kind_number)
                attrs = {k: v for k, v in pairs if v is not None and not isinstance(v, (bytes, dict))}
                span = tracer.start_span(
                    name,
                    kind=kind or SpanKind.INTERNAL,
                    attributes=attrs,
                    links=[link] if round_ == 2 and i % 5 == 0 else None,
                )
                if round_ == 1 and i % 4 == 0:
                    span.add_event("shop.mystery", {"shop.item.count": "x"})
                recorder.findings.clear()
                with contextlib.suppress(SchemaViolation):
                    span.end()
                expected = afresh(hook.validator.index, from_sdk_span(span))
                found = [f for f in recorder.findings if f.signal_type != "resource"]
                assert sorted(found, key=Finding.sort_key) == sorted(expected, key=Finding.sort_key), (
                    name,
                    attrs,
                )
                checked += 1
    finally:
        uninstall_recorder(recorder)
    assert checked == 3 * len(OTLP_SPANS)


#: Spans the processor's shape lookup could confuse, each set emitted after spans of the same name
#: and keys with other value types (or the same keys in another order, or another kind) had set up
#: the cheap path: (name, SDK kind, attributes).
_O = "shop.order.id"
_M = "shop.payment.method"
_C = "shop.item.count"
_P = "shop.priority"
_HEADERS = [f"shop.header.h{i}" for i in range(12)]
CONFUSABLE: list[tuple[str, SpanKind, dict[str, Any]]] = [
    ("shop.checkout", SpanKind.SERVER, {_O: "o", _M: "card", _C: 3}),
    ("shop.checkout", SpanKind.SERVER, {_O: "o", _M: "card", _C: True}),  # bool is no int
    ("shop.checkout", SpanKind.SERVER, {_O: "o", _M: "card", _C: 3.0}),
    ("shop.checkout", SpanKind.SERVER, {_O: "o", _M: "card", _C: "3"}),
    ("shop.checkout", SpanKind.SERVER, {_O: 5, _M: "card", _C: 3}),
    ("shop.checkout", SpanKind.SERVER, {_O: "o", _M: 7, _C: 3}),
    ("shop.checkout", SpanKind.SERVER, {_O: "o", _M: "bitcoin", _C: 3}),
    ("shop.checkout", SpanKind.SERVER, {_O: "o", _M: "card", _C: 3}),
    ("shop.checkout", SpanKind.CLIENT, {_O: "o", _M: "card", _C: 3}),  # same keys, another kind
    ("shop.checkout", SpanKind.SERVER, {_C: 3, _O: "o", _M: "card"}),  # same keys, another order
    ("shop.checkout", SpanKind.SERVER, {_C: True, _O: "o", _M: "card"}),
    ("shop.checkout", SpanKind.SERVER, {_C: 3, _O: "o", _M: True}),
    ("shop.checkout", SpanKind.SERVER, {_O: "o", _P: 2}),
    ("shop.checkout", SpanKind.SERVER, {_O: "o", _P: True}),  # True == 1, a member: still no int
    ("shop.checkout", SpanKind.SERVER, {_O: "o", _P: 1}),
    ("shop.checkout", SpanKind.SERVER, {_O: "o", "shop.tags": ("a", "b")}),
    ("shop.checkout", SpanKind.SERVER, {_O: "o", "shop.tags": ("a", 1)}),
    ("shop.refund", SpanKind.INTERNAL, {_O: "o", _M: "card", _C: 3}),  # same keys, another name
    ("shop.refund", SpanKind.INTERNAL, {_O: "o", _M: "card", _C: 3.5}),
    # every arity from none to more attributes than any unpacked shape key handles
    *[
        ("shop.checkout", SpanKind.SERVER, {_O: "o", **{h: "v" for h in _HEADERS[:n]}})
        for n in range(len(_HEADERS))
    ],
    *[  # the same, the last value of the wrong type
        (
            "shop.checkout",
            SpanKind.SERVER,
            {_O: "o", **{h: "v" for h in _HEADERS[: n - 1]}, _HEADERS[n - 1]: 1},
        )
        for n in range(1, len(_HEADERS))
    ],
    ("shop.checkout", SpanKind.SERVER, {}),
]


@pytest.mark.allow_schema_findings
@pytest.mark.parametrize("mode", ["strict", "count"])
def test_span_processor_tells_apart_spans_that_share_name_and_keys(shop: ResolvedRegistry, mode: Any) -> None:
    hook = ValidationHook(shop, mode)
    provider = TracerProvider()
    provider.add_span_processor(ValidatingSpanProcessor(hook))
    tracer = provider.get_tracer("shop.tests")
    recorder = FindingRecorder()
    install_recorder(recorder)
    try:
        for order in (CONFUSABLE, CONFUSABLE[::-1], CONFUSABLE):  # cold, then each after the others
            for name, kind, attrs in order:
                span = tracer.start_span(name, kind=kind, attributes=attrs)
                expected = afresh(hook.validator.index, from_sdk_span(span))
                recorder.findings.clear()
                violation = any(f.level == "violation" for f in expected)
                if mode == "strict" and violation:
                    with pytest.raises(SchemaViolation):
                        span.end()
                else:
                    span.end()
                found = [f for f in recorder.findings if f.signal_type != "resource"]
                assert sorted(found, key=Finding.sort_key) == sorted(expected, key=Finding.sort_key), (
                    name,
                    kind,
                    attrs,
                )
    finally:
        uninstall_recorder(recorder)
    # the set holds what it is meant to: wrong types among the same keys are violations
    assert any(f.id == "type_mismatch" for f in afresh(hook.validator.index, _sample(CONFUSABLE[1])))


def _sample(span: tuple[str, SpanKind, dict[str, Any]]) -> SpanSample:
    name, kind, attrs = span
    return SpanSample(name, kind.name.lower(), attrs, [], [], None)
