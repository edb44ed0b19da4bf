"""Entity associations: loaded, bound to entities when resolving, and judged on the resource each
signal arrived with, over OTLP (protobuf requests the SDK encodes), in process and from files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from knhk_otel.schema import load_and_resolve
from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.samples import SpanSample
from knhk_otel.validate.sdk import ValidatingSpanProcessor, ValidationHook
from knhk_otel.validate.server import Checker

REGISTRY = """\
file_format: definition/2
attributes:
  - {key: node.id, type: string, stability: stable, brief: A node.}
  - {key: node.zone, type: string, stability: stable, brief: Its zone.}
  - {key: cluster.name, type: string, stability: stable, brief: A cluster.}
entities:
  - type: node
    stability: stable
    brief: A mesh node.
    identity: [{ref: node.id}]
    description: [{ref: node.zone, requirement_level: recommended}]
  - type: cluster
    stability: stable
    brief: A cluster.
    identity: [{ref: cluster.name}]
spans:
  - type: work
    name: {note: The work span.}
    kind: internal
    stability: stable
    brief: Work on a node.
    entity_associations: [node]
metrics:
  - name: work.done
    instrument: counter
    unit: "1"
    stability: stable
    brief: Work done on a node or for a cluster.
    entity_associations:
      - one_of: [node, cluster]
events:
  - name: work.started
    stability: stable
    brief: Work started.
    entity_associations:
      - all_of: [node, cluster]
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ResolvedRegistry:
    root = tmp_path_factory.mktemp("entities")
    (root / "registry.yaml").write_text(REGISTRY)
    resolved, diagnostics = load_and_resolve(root)
    assert resolved is not None and not [d for d in diagnostics if d.is_error], diagnostics
    return resolved


def _entity_findings(report: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    out: dict[str, list[tuple[str, Any]]] = {}
    for sample in report["samples"]:
        for f in sample["findings"]:
            if f["id"].startswith("entity_"):
                out.setdefault(sample["signal_name"], []).append(
                    (f["id"], f.get("attribute") or f["entity_type"])
                )
    return out


def test_resolved_association_keeps_its_shape_and_binding(registry: ResolvedRegistry) -> None:
    metric = registry.group("metric.work.done")
    assert metric is not None
    assert [a.to_dict() for a in metric.entity_associations] == [{"one_of": ["node", "cluster"]}]
    assert [leaf.target for leaf in metric.entity_associations[0].leaves()] == [
        "entity.node",
        "entity.cluster",
    ]
    assert metric.to_dict()["entity_associations"] == [{"one_of": ["node", "cluster"]}]


def test_otlp_signals_are_judged_on_the_resource_they_arrived_with(registry: ResolvedRegistry) -> None:
    checker = Checker(registry)
    partial = Resource.create({"node.id": "n1"})  # identifies the node, lacks its zone
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=partial)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer_provider.get_tracer("t").start_span("work").end()
    checker.ingest("traces", encode_spans(spans.get_finished_spans()))

    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=Resource.create({"service.name": "x"}), metric_readers=[reader])
    meter_provider.get_meter("m").create_counter("work.done", unit="1").add(1)
    metrics = reader.get_metrics_data()
    assert metrics is not None
    checker.ingest("metrics", encode_metrics(metrics))

    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=partial)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger_provider.get_logger("l").emit(event_name="work.started")
    checker.ingest("logs", encode_logs(logs.get_finished_logs()))
    for provider in (tracer_provider, meter_provider, logger_provider):
        provider.shutdown()

    found = _entity_findings(checker.report.build())
    assert found == {
        "work": [("entity_recommended_attribute_not_present", "node.zone")],
        "work.done": [("entity_association_not_satisfied", ["node", "cluster"])],
        "work.started": [
            ("entity_required_attribute_not_present", "cluster.name"),
            ("entity_recommended_attribute_not_present", "node.zone"),
        ],
    }


def test_span_fast_path_judges_each_resource(registry: ResolvedRegistry) -> None:
    """Spans of one shape under two resources: the cached span verdict must not hide the second."""
    checker = Checker(registry)
    for attributes in ({"node.id": "n1", "node.zone": "z"}, {}):
        spans = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource(attributes))
        provider.add_span_processor(SimpleSpanProcessor(spans))
        provider.get_tracer("t").start_span("work").end()
        checker.ingest("traces", encode_spans(spans.get_finished_spans()))
        provider.shutdown()
    report = checker.report.build()
    assert report["statistics"]["samples_by_type"]["span"] == 2
    ids = sorted(f["id"] for s in report["samples"] for f in s["findings"] if s["signal_type"] == "span")
    assert ids == ["entity_recommended_attribute_not_present", "entity_required_attribute_not_present"]


@pytest.mark.allow_schema_findings
def test_in_process_span_processor_reads_the_provider_resource(registry: ResolvedRegistry) -> None:
    hook = ValidationHook(registry, "strict")
    provider = TracerProvider(resource=Resource({"service.name": "x"}))
    provider.add_span_processor(ValidatingSpanProcessor(hook))
    with pytest.raises(Exception, match="entity_required_attribute_not_present"):
        provider.get_tracer("t").start_span("work").end()
    provider.shutdown()


def test_sample_file_links_each_signal_to_the_resource_before_it(
    registry: ResolvedRegistry, tmp_path: Path
) -> None:
    root = tmp_path / "reg"
    root.mkdir()
    (root / "registry.yaml").write_text(REGISTRY)
    samples = [
        {"resource": {"attributes": [{"name": "cluster.name", "value": "c"}]}},
        {"metric": {"name": "work.done", "instrument": "counter", "unit": "1", "data_points": []}},
        {"resource": {"attributes": []}},
        {"event": {"event_name": "work.started", "attributes": []}},
    ]
    data = tmp_path / "samples.json"
    data.write_text(json.dumps(samples))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "knhk_otel.cli",
            "live-check",
            "-r",
            str(root),
            "--input-source",
            str(data),
            "--format",
            "json",
            "--fail-on",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    found = _entity_findings(json.loads(run.stdout))
    # the metric's resource names a cluster: its one_of is satisfied; the event's resource is empty
    assert "work.done" not in found
    assert sorted(found["work.started"]) == [
        ("entity_recommended_attribute_not_present", "node.zone"),
        ("entity_required_attribute_not_present", "cluster.name"),
        ("entity_required_attribute_not_present", "node.id"),
    ]


def test_advice_policies_see_the_resource_and_the_associations(
    registry: ResolvedRegistry, tmp_path: Path
) -> None:
    """Weaver's advice input: `input.resource` (null without one) and the group's associations."""
    from knhk_otel.validate.advice import AdvicePolicies

    (tmp_path / "entities.rego").write_text(
        """package live_check_advice
import rego.v1
deny contains {"id": "zone_named", "level": "information", "message": attr.value} if {
    input.registry_group.entity_associations[0] == "node"
    some attr in input.resource.attributes
    attr.name == "node.zone"
}
deny contains {"id": "no_resource", "level": "information", "message": "none"} if {
    input.sample.span
    input.resource == null
}
"""
    )
    advice = AdvicePolicies([tmp_path], registry)
    with_zone = advice.findings(SpanSample("work", "internal", {}, resource={"node.zone": "eu-1"}))
    assert [(f.id, f.message) for f in with_zone] == [("zone_named", "eu-1")]
    assert [f.id for f in advice.findings(SpanSample("work", "internal", {}))] == ["no_resource"]
