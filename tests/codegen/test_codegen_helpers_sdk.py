"""The generated helpers (knhk_otel.semconv) through the real OTel SDK: names, kinds, attributes, units."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import Histogram, Sum
from opentelemetry.trace import SpanKind

from knhk_otel.runtime.strict import SchemaUsageError
from knhk_otel.semconv import attributes, events, metrics, spans

from .conftest import Sdk


def _metric(sdk: Sdk, name: str):  # type: ignore[no-untyped-def]
    data = sdk.metrics.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    return m
    raise AssertionError(f"metric {name} not collected")


@pytest.mark.parametrize("mode", ["strict_on", "strict_off"])
def test_span_helper_sets_name_kind_and_plain_attributes(
    sdk: Sdk, mode: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(mode)
    tracer = sdk.tracer_provider.get_tracer("test")
    with spans.start_gossip_round(
        tracer, node_id="a1", gossip_round=7, gossip_phase=attributes.GossipPhase.PUSH, gossip_fanout=None
    ) as span:
        assert span.is_recording()
    (finished,) = sdk.spans.get_finished_spans()
    assert finished.name == "knhk.mesh.gossip.round"
    assert finished.kind is SpanKind.INTERNAL
    assert dict(finished.attributes or {}) == {
        "knhk.mesh.node.id": "a1",
        "knhk.mesh.gossip.round": 7,
        "knhk.mesh.gossip.phase": "push",
    }
    phase = (finished.attributes or {})["knhk.mesh.gossip.phase"]
    assert type(phase) is str  # the plain value, not the enum member


def test_span_kinds_follow_the_schema(sdk: Sdk) -> None:
    tracer = sdk.tracer_provider.get_tracer("test")
    with spans.start_message_send(tracer, node_id="a", peer_id="b", message_type=attributes.MessageType.PUSH):
        pass
    with spans.start_message_receive(
        tracer, node_id="b", peer_id="a", message_type=attributes.MessageType.PUSH
    ):
        pass
    kinds = {s.name: s.kind for s in sdk.spans.get_finished_spans()}
    assert kinds == {"knhk.mesh.message.send": SpanKind.CLIENT, "knhk.mesh.message.receive": SpanKind.SERVER}


def test_counter_class_owns_name_unit_and_adds(sdk: Sdk) -> None:
    counter = metrics.GossipRounds(sdk.meter_provider.get_meter("test"))
    assert (counter.NAME, counter.UNIT, counter.INSTRUMENT) == (
        "knhk.mesh.gossip.rounds",
        "{round}",
        "counter",
    )
    counter.add(1)
    counter.add(2)
    m = _metric(sdk, "knhk.mesh.gossip.rounds")
    assert m.unit == "{round}"
    assert isinstance(m.data, Sum) and m.data.is_monotonic
    (point,) = m.data.data_points
    assert point.value == 3
    assert dict(point.attributes) == {}  # the emitter is the resource, not an attribute


def test_histogram_uses_the_schema_bucket_advice(sdk: Sdk) -> None:
    usage = metrics.TickUsage(sdk.meter_provider.get_meter("test"))
    assert usage.ANNOTATIONS["knhk"]["tick_budgets"]["merge"] == 3
    usage.record(3, tick_operation=attributes.TickOperation.MERGE)
    m = _metric(sdk, "knhk.mesh.tick.usage")
    assert m.unit == "{tick}"
    assert isinstance(m.data, Histogram)
    (point,) = m.data.data_points
    assert list(point.explicit_bounds) == [1, 2, 4, 8, 16, 32, 64]
    assert dict(point.attributes) == {"knhk.mesh.tick.operation": "merge"}


def test_duration_histogram_buckets_are_seconds(sdk: Sdk) -> None:
    hist = metrics.ConvergenceDuration(sdk.meter_provider.get_meter("test"))
    hist.record(0.02)
    (point,) = _metric(sdk, "knhk.mesh.convergence.duration").data.data_points
    assert point.explicit_bounds[0] == pytest.approx(0.001)
    assert sum(1 for c in point.bucket_counts if c) == 1


def test_gauge_and_updowncounter(sdk: Sdk) -> None:
    meter = sdk.meter_provider.get_meter("test")
    assert metrics.PeerCount.INSTRUMENT == "gauge"
    metrics.PeerCount(meter).set(12)
    queue = metrics.QueueSize(meter)
    assert queue.INSTRUMENT == "updowncounter"
    queue.add(5)
    queue.add(-2)
    assert _metric(sdk, "knhk.mesh.peer.count").data.data_points[0].value == 12
    queue_data = _metric(sdk, "knhk.mesh.queue.size").data
    assert isinstance(queue_data, Sum) and not queue_data.is_monotonic
    assert queue_data.data_points[0].value == 3


def test_event_helper_emits_a_log_record_with_event_name(sdk: Sdk) -> None:
    logger = sdk.logger_provider.get_logger("test")
    events.emit_byzantine_detected(
        logger, node_id="a", peer_id="b", byzantine_kind=attributes.ByzantineKind.EQUIVOCATION
    )
    (record,) = sdk.logs.get_finished_logs()
    assert record.log_record.event_name == "knhk.mesh.byzantine.detected"
    assert dict(record.log_record.attributes or {}) == {
        "knhk.mesh.node.id": "a",
        "knhk.mesh.peer.id": "b",
        "knhk.mesh.byzantine.kind": "equivocation",
    }


@pytest.mark.usefixtures("strict_on")
def test_strict_mode_rejects_wrong_type(sdk: Sdk) -> None:
    tracer = sdk.tracer_provider.get_tracer("test")
    with pytest.raises(SchemaUsageError, match=r"knhk\.mesh\.gossip\.round.*expected int"):
        spans.start_gossip_round(tracer, node_id="a", gossip_round="7")  # type: ignore[arg-type]
    assert not sdk.spans.get_finished_spans()


@pytest.mark.usefixtures("strict_on")
def test_strict_mode_rejects_unknown_enum_value(sdk: Sdk) -> None:
    counter = metrics.ByzantineEvents(sdk.meter_provider.get_meter("test"))
    with pytest.raises(SchemaUsageError, match=r"knhk\.mesh\.byzantine\.kind.*not a member of ByzantineKind"):
        counter.add(1, byzantine_kind="teleportation")  # type: ignore[arg-type]


@pytest.mark.usefixtures("strict_on")
def test_strict_mode_rejects_missing_required_attribute(sdk: Sdk) -> None:
    logger = sdk.logger_provider.get_logger("test")
    missing = r"emit_peer_joined: required attribute `knhk\.mesh\.peer\.id`"
    with pytest.raises(SchemaUsageError, match=missing):
        events.emit_peer_joined(logger, node_id="a", peer_id=None)  # type: ignore[arg-type]
    assert not sdk.logs.get_finished_logs()


@pytest.mark.usefixtures("strict_on")
def test_strict_mode_rejects_bool_for_int(sdk: Sdk) -> None:
    tracer = sdk.tracer_provider.get_tracer("test")
    with pytest.raises(SchemaUsageError, match="expected int"):
        spans.start_gossip_round(tracer, node_id="a", gossip_round=True)


def _points_by_scope(data: Any) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
    """Each scope's data points: sorted attributes -> value."""
    return {
        sm.scope.name: {
            tuple(sorted(dict(p.attributes).items())): p.value for m in sm.metrics for p in m.data.data_points
        }
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
    }


def test_counter_exports_what_a_synchronous_counter_exports(sdk: Sdk) -> None:
    """Counters sum in process and report through a callback: the exported data must be the SDK
    synchronous counter's (kind, unit, description, cumulative monotonic sums per attribute set, a
    zero-initialised series included), over several collections."""
    ours = metrics.Messages(sdk.meter_provider.get_meter("ours"))
    theirs = sdk.meter_provider.get_meter("theirs").create_counter(
        metrics.Messages.NAME,
        unit=metrics.Messages.UNIT,
        description="Messages sent and received by the node, by type.",
    )
    adds = [
        (0, "sent", "push"),
        (1, "received", "push"),
        (2, "received", "sync_reply"),
        (1, "received", "push"),
        (5, "sent", "sync_request"),
    ]
    for collection in range(2):
        for value, direction, mtype in adds[collection * 2 : collection * 2 + 3]:
            ours.add(value, message_direction=direction, message_type=mtype)  # type: ignore[arg-type]
            theirs.add(value, {"knhk.mesh.message.direction": direction, "knhk.mesh.message.type": mtype})
        data = sdk.metrics.get_metrics_data()
        assert data is not None
        by_scope = _points_by_scope(data)
        assert by_scope["ours"] == by_scope["theirs"]
        zero = (("knhk.mesh.message.direction", "sent"), ("knhk.mesh.message.type", "push"))
        assert by_scope["ours"][zero] == 0
        shapes = [
            (m.unit, m.description, m.data.is_monotonic, m.data.aggregation_temporality)  # type: ignore[union-attr]
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        ]
        assert len(shapes) == 2 and shapes[0] == shapes[1] and shapes[0][2] is True


def test_counter_helpers_of_one_meter_share_their_sums_and_refuse_what_the_sdk_refuses(sdk: Sdk) -> None:
    meter = sdk.meter_provider.get_meter("test")
    first, second = metrics.GossipRounds(meter), metrics.GossipRounds(meter)
    first.add(2)
    second.add(3)  # the SDK keeps the first registration's callback only: both must land in it
    first.add(-1)
    first.add(float("nan"))
    (point,) = _metric(sdk, "knhk.mesh.gossip.rounds").data.data_points
    assert point.value == 5


def test_counter_sums_lose_nothing_to_threads(sdk: Sdk) -> None:
    import threading

    counter = metrics.GossipRounds(sdk.meter_provider.get_meter("test"))

    def work() -> None:
        for _ in range(20_000):
            counter.add(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    sdk.metrics.get_metrics_data()  # a collection in the middle of the adds
    for t in threads:
        t.join()
    (point,) = _metric(sdk, "knhk.mesh.gossip.rounds").data.data_points
    assert point.value == 80_000


def test_counter_sums_are_bounded_as_the_sdk_bounds_a_counter(sdk: Sdk) -> None:
    """Past the SDK's 2,000 attribute sets a counter sums the rest in one overflow series, as the SDK's
    own counter does: the same points exported, and memory that does not grow with cardinality."""
    ours = metrics.SchemaFindings(sdk.meter_provider.get_meter("ours"))
    theirs = sdk.meter_provider.get_meter("theirs").create_counter(metrics.SchemaFindings.NAME)
    level = attributes.SchemaFindingLevel.VIOLATION
    for i in range(2_100):
        ours.add(1 + i % 3, schema_finding_id=f"finding_{i}", schema_finding_level=level)
        theirs.add(
            1 + i % 3,
            {"knhk.mesh.schema.finding.id": f"finding_{i}", "knhk.mesh.schema.finding.level": "violation"},
        )
    data = sdk.metrics.get_metrics_data()
    assert data is not None
    by_scope = _points_by_scope(data)
    assert by_scope["ours"] == by_scope["theirs"]
    assert len(by_scope["ours"]) == 2_001
    overflow = by_scope["ours"][(("otel.metric.overflow", True),)]
    assert overflow == sum(1 + i % 3 for i in range(2_000, 2_100))
    assert len(ours._sums._sums) == 2_001  # what the helper holds, whatever more attribute sets come
