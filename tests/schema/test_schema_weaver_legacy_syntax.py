"""Syntax Weaver accepts (legacy forms included) and what it refuses, through the whole check pipeline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from knhk_otel.check.runner import run_checks
from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import ResolvedRegistry

WriteRegistry = Callable[..., Path]


def _check(root: Path, *, future: bool = False) -> tuple[ResolvedRegistry, list[Diagnostic]]:
    report = run_checks(root, future=future)
    assert report.registry is not None
    return report.registry, report.diagnostics


def _errors(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.render() for d in diagnostics if d.is_error]


def test_group_prefix_and_prefixed_refs_define_prefixed_attributes(write_registry: WriteRegistry) -> None:
    root = write_registry(
        "reg",
        {
            "geo.yaml": """
            groups:
              - id: registry.geo
                type: attribute_group
                prefix: geo
                brief: Geo.
                attributes:
                  - id: lat
                    type: double
                    stability: development
                    brief: Latitude.
            """,
            "client.yaml": """
            groups:
              - id: registry.client
                type: attribute_group
                prefix: client
                brief: Client.
                attributes:
                  - id: id
                    type: string
                    stability: development
                    brief: Client id.
                  - ref: geo.lat
                    prefix: true
                    brief: Client latitude.
              - id: usage
                type: attribute_group
                brief: Usage.
                attributes:
                  - ref: client.geo.lat
                    requirement_level: required
            """,
        },
    )
    registry, diagnostics = _check(root)
    assert _errors(diagnostics) == []
    attrs = registry.registry_attributes()
    assert {"geo.lat", "client.id", "client.geo.lat"} <= set(attrs)
    assert attrs["client.geo.lat"].type == "double" and attrs["client.geo.lat"].brief == "Client latitude."
    usage = registry.group("usage")
    assert usage is not None
    used = usage.attribute("client.geo.lat")
    assert used is not None and used.requirement_level == "required"


def test_legacy_markers_resource_type_template_any_and_free_text_deprecation(
    write_registry: WriteRegistry,
) -> None:
    root = write_registry(
        "reg",
        {
            "v1.yaml": """
            file_format: definition/1
            groups:
              - id: registry.test
                type: attribute_group
                brief: Test.
                attributes:
                  - id: test.any
                    type: template[any]
                    stability: development
                    brief: Anything.
                  - id: test.old
                    type: string
                    stability: development
                    brief: Old.
                    deprecated: "Use something else."
              - id: resource.test
                type: resource
                brief: A legacy resource group.
                attributes:
                  - ref: test.old
              - id: empty.group
                type: attribute_group
                brief: ""
                attributes:
            """,
            "v2.yaml": """
            version: "2"
            attributes:
              - key: test.v2
                type: int
                brief: From a version 2 file.
                stability: development
            """,
        },
    )
    registry, diagnostics = _check(root)
    assert _errors(diagnostics) == []
    warnings = {d.id for d in diagnostics if d.severity == "warning"}
    assert "deprecated_syntax" in warnings  # `version: "2"`
    attrs = registry.registry_attributes()
    assert attrs["test.any"].type == "template[any]"
    old = attrs["test.old"]
    assert old.deprecated is not None and old.deprecated.note == "Use something else."
    resource = registry.group("resource.test")
    assert resource is not None and resource.type == "entity"
    assert "test.v2" in attrs


def test_two_ref_groups_bringing_one_attribute_are_refused(write_registry: WriteRegistry) -> None:
    root = write_registry(
        "reg",
        {
            "r.yaml": """
            file_format: definition/2
            attributes:
              - key: test.one
                type: string
                brief: One.
                stability: stable
            attribute_groups:
              - id: test.a
                visibility: internal
                attributes:
                  - ref: test.one
              - id: test.b
                visibility: internal
                attributes:
                  - ref: test.one
                  - ref_group: test.a
            spans:
              - type: test.span
                kind: client
                name: {note: test}
                brief: A span.
                stability: stable
                attributes:
                  - ref_group: test.a
                  - ref_group: test.b
            """,
        },
    )
    registry, diagnostics = _check(root)
    errors = [d for d in diagnostics if d.is_error]
    assert [d.id for d in errors] == ["duplicate_attribute_id"]
    assert "`test.a` and `test.b`" in errors[0].message and errors[0].source is not None
    assert registry.group("test.a") is None  # internal groups are not output


def test_entity_refinement_cannot_change_identity(write_registry: WriteRegistry) -> None:
    root = write_registry(
        "reg",
        {
            "e.yaml": """
            file_format: definition/2
            attributes:
              - {key: test.id, type: string, brief: Id., stability: stable}
              - {key: test.desc, type: string, brief: Desc., stability: stable}
            entities:
              - type: base.entity
                brief: Base.
                stability: stable
                identity:
                  - ref: test.id
                description:
                  - ref: test.desc
            entity_refinements:
              - id: entity.ok
                ref: base.entity
                identity:
                  - ref: test.id
                    brief: Refined.
                description:
                  - ref: test.desc
              - id: entity.demote
                ref: base.entity
                description:
                  - ref: test.id
              - id: entity.promote
                ref: base.entity
                identity:
                  - ref: test.desc
            """,
        },
    )
    _, diagnostics = _check(root)
    errors = [d for d in diagnostics if d.is_error]
    assert [d.id for d in errors] == ["entity_identity_changed", "entity_identity_changed"]
    assert "entity.demote" in errors[0].message and "descriptive" in errors[0].message
    assert "entity.promote" in errors[1].message and "identifying" in errors[1].message


def test_metric_refinement_ref_group_keeps_the_refined_requirement_level(
    write_registry: WriteRegistry,
) -> None:
    root = write_registry(
        "reg",
        {
            "m.yaml": """
            file_format: definition/2
            attributes:
              - {key: test.attr, type: int, brief: Attr., stability: stable}
            attribute_groups:
              - id: test.group
                visibility: public
                brief: Base group.
                stability: stable
                attributes:
                  - ref: test.attr
                    requirement_level:
                      conditionally_required: on the base signal
              - id: test.extras
                visibility: internal
                attributes:
                  - ref: test.attr
                    examples: [42]
            metrics:
              - name: base.metric
                instrument: histogram
                unit: s
                brief: Base.
                stability: stable
                attributes:
                  - ref_group: test.group
            metric_refinements:
              - id: metric.refined
                ref: base.metric
                attributes:
                  - ref_group: test.extras
            """,
        },
    )
    registry, diagnostics = _check(root)
    assert _errors(diagnostics) == []
    refined = registry.group("metric.refined")
    assert refined is not None
    attr = refined.attribute("test.attr")
    assert attr is not None
    assert attr.requirement_level == "conditionally_required"
    assert attr.examples == (42,)


def test_stricter_rules_are_warnings_unless_future(write_registry: WriteRegistry) -> None:
    root = write_registry(
        "reg",
        {
            "a.yaml": """
            groups:
              - id: registry.test
                type: attribute_group
                brief: Test.
                attributes:
                  - id: test.camelCase
                    type: string
                    stability: development
                    brief: A name Weaver's resolver accepts.
            """,
        },
    )
    _, diagnostics = _check(root)
    assert _errors(diagnostics) == []
    assert [d.id for d in diagnostics if d.severity == "warning"] == ["name_format"]
    _, diagnostics = _check(root, future=True)
    assert [d.id for d in diagnostics if d.is_error] == ["name_format"]


def test_a_dependency_published_in_resolved_form_is_read(write_registry: WriteRegistry) -> None:
    dep = write_registry(
        "published",
        {
            "manifest.yaml": """
            file_format: manifest/2.0
            schema_url: https://example.com/schemas/1.0.0
            resolved_registry_uri: resolved.yaml
            """,
            "resolved.yaml": """
            file_format: resolved/2.0
            schema_url: https://example.com/schemas/1.0.0
            attribute_catalog:
              - {key: dep.id, type: string, brief: An id., stability: stable}
            registry:
              attributes: [0]
              attribute_groups:
                - id: dep.group
                  brief: A group.
                  stability: stable
                  attributes:
                    - {base: 0, requirement_level: recommended}
              spans:
                - type: dep.span
                  kind: client
                  brief: A span.
                  stability: stable
                  attributes:
                    - {base: 0, requirement_level: required}
                - type: other.span
                  kind: server
                  brief: Not imported.
                  stability: stable
            """,
        },
    )
    root = write_registry(
        "main",
        {
            "manifest.yaml": f"""
            name: main
            dependencies:
              - name: dep
                registry_path: {dep}
            """,
            "main.yaml": """
            file_format: definition/2
            spans:
              - type: main.span
                kind: server
                name: {note: main}
                brief: Ours.
                stability: stable
                attributes:
                  - ref: dep.id
            imports:
              spans: ["dep.*"]
            """,
        },
    )
    registry, diagnostics = _check(root)
    assert _errors(diagnostics) == []
    ids = [g.id for g in registry.groups]
    assert ids == ["dep.group", "dep.span", "span.main.span"]
    span = registry.group("dep.span")
    assert span is not None and span.span_kind == "client"
    used = span.attribute("dep.id")
    assert used is not None and used.requirement_level == "required" and used.type == "string"
    ours = registry.group("span.main.span")
    assert ours is not None and ours.attribute("dep.id") is not None
