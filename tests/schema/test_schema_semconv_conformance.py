"""The real OpenTelemetry semantic-conventions v1.44 model (v1 and v2 files) loads and resolves cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from knhk_otel.schema import document_format, load_and_resolve, load_documents


def _raw_counts(model: Path) -> dict[str, int]:
    """Counted straight from the YAML with plain safe_load, independently of the loader."""
    counts = {"attributes": 0, "metrics": 0, "spans": 0, "events": 0}
    for path in sorted(model.rglob("*.yaml")):
        if path.name == "manifest.yaml":
            continue
        data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        if data.get("file_format") == "definition/2":
            counts["attributes"] += len(data.get("attributes", []))
            for kind in ("metrics", "spans", "events"):
                counts[kind] += len(data.get(kind, [])) + len(data.get(kind[:-1] + "_refinements", []))
            continue
        for group in data.get("groups", []):
            counts["attributes"] += sum(1 for a in group.get("attributes", []) if "id" in a)
            kind = group["type"] + "s"
            if kind in counts and kind != "attributes":
                counts[kind] += 1
    return counts


def test_semconv_model_resolves_without_errors(semconv_model: Path) -> None:
    registry, diagnostics = load_and_resolve(semconv_model)
    assert registry is not None
    assert [d.render() for d in diagnostics if d.is_error] == []


def test_semconv_counts_equal_raw_yaml_counts(semconv_model: Path) -> None:
    registry, _ = load_and_resolve(semconv_model)
    assert registry is not None
    expected = _raw_counts(semconv_model)
    resolved = {
        "attributes": len(registry.registry_attributes()),
        "metrics": len(registry.metrics()),
        "spans": len(registry.spans()),
        "events": len(registry.events()),
    }
    assert resolved == expected
    assert expected["attributes"] > 900 and expected["metrics"] > 500  # the model really was read


def test_semconv_mixes_both_syntaxes(semconv_model: Path) -> None:
    loaded = load_documents(semconv_model)
    formats = [document_format(d) for d in loaded.documents]
    assert formats.count("v2") == 32
    assert formats.count("v1") == 217
    assert loaded.manifest is not None
    assert loaded.manifest.name == "model"  # no `name:` in this manifest: the folder's name
    assert loaded.manifest.semconv_version == "1.44.0"  # taken from schema_url


def test_semconv_v2_refinement_keeps_parent_signal(semconv_model: Path) -> None:
    registry, _ = load_and_resolve(semconv_model)
    assert registry is not None
    parent = registry.group("metric.hw.status")
    refined = registry.group("metric.hw.fan.status")
    assert parent is not None and refined is not None
    assert refined.metric_name == "hw.status"
    assert refined.instrument == parent.instrument == "updowncounter"
    assert refined.extends == "metric.hw.status"
    hw_type = refined.attribute("hw.type")
    assert hw_type is not None and hw_type.examples == ("fan",)
    assert hw_type.requirement_level == "required"  # from the parent, not overridden
    kafka = registry.group("span.messaging.kafka.create.producer")
    assert kafka is not None and kafka.span_kind == "producer"


def test_semconv_v2_ref_group_and_explicit_ref_override(semconv_model: Path) -> None:
    registry, _ = load_and_resolve(semconv_model)
    assert registry is not None
    span = registry.group("span.faas.datasource.server")
    assert span is not None
    trigger = span.attribute("faas.trigger")
    assert trigger is not None
    assert trigger.note == "MUST be set to `datasource`."  # the explicit ref beats the ref_group copy
    assert trigger.examples == ("datasource",)
    assert span.attribute("faas.invocation_id") is not None  # from ref_group faas.attributes.server


def test_semconv_output_is_deterministic(semconv_model: Path) -> None:
    first, _ = load_and_resolve(semconv_model)
    second, _ = load_and_resolve(semconv_model)
    assert first is not None and second is not None
    assert first.to_dict() == second.to_dict()
    assert [g.id for g in first.groups] == [g.id for g in second.groups]
