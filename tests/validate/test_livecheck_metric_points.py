"""Metric findings over OTLP: counted once per metric sample, and per data point as Weaver counts
them (the report gives both where they differ); a metric without data points is still judged."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.server import Checker


def _orders(shop: ResolvedRegistry, points: list[dict[str, str]]) -> dict[str, Any]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("m").create_counter("shop.orders", unit="{order}")
    for attributes in points:
        counter.add(1, attributes)
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    checker = Checker(shop)
    checker.ingest("metrics", encode_metrics(data))
    return checker.report.build()["statistics"]


def test_findings_per_data_point_are_reported_beside_ours(shop: ResolvedRegistry) -> None:
    # three points, each without the required payment method and with an undeclared attribute
    stats = _orders(shop, [{"shop.order.id": str(i)} for i in range(3)])
    ours, weaver = stats["findings_by_id"], stats["findings_by_id_per_data_point"]
    for fid in ("required_attribute_not_present", "unexpected_attribute"):
        assert (ours[fid], weaver[fid]) == (1, 3), fid


def test_one_data_point_needs_no_second_count(shop: ResolvedRegistry) -> None:
    stats = _orders(shop, [{"shop.order.id": "1"}])
    assert stats["findings_by_id"]["unexpected_attribute"] == 1
    assert "findings_by_id_per_data_point" not in stats


def test_a_metric_without_data_points_is_judged_for_its_instrument_and_unit(shop: ResolvedRegistry) -> None:
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name, metric.unit = "shop.orders", "ms"
    metric.gauge.SetInParent()  # a gauge, with no data point: the registry says counter, {order}
    checker = Checker(shop)
    checker.ingest("metrics", request)
    report = checker.report.build()
    assert report["statistics"]["samples_by_type"] == {"metric": 1}
    [sample] = report["samples"]
    assert sorted(f["id"] for f in sample["findings"]) == ["unexpected_instrument", "unit_mismatch"]
