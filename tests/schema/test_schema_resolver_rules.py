"""Resolution rules on small registries: refs and overrides, extends, v2, imports, dependencies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from knhk_otel.schema import load_and_resolve, load_documents, resolve
from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import Deprecated, EnumType, ResolvedRegistry


def _resolve_ok(root: Path) -> ResolvedRegistry:
    registry, diagnostics = load_and_resolve(root)
    assert [d.render() for d in diagnostics] == []
    assert registry is not None
    return registry


def _errors(root: Path) -> list[Diagnostic]:
    _, diagnostics = load_and_resolve(root)
    return [d for d in diagnostics if d.is_error]


def test_ref_overrides_replace_only_the_fields_given(
    write_registry: Callable[..., Path], base_attributes: str
) -> None:
    root = write_registry(
        "reg",
        {
            "attrs.yaml": base_attributes,
            "spans.yaml": """
            groups:
              - id: span.knhk.mesh.peer.join
                type: span
                span_kind: internal
                stability: development
                brief: A peer joins.
                attributes:
                  - ref: knhk.mesh.peer.id
                    brief: The joining peer.
                    examples: ["p1", "p2"]
                    requirement_level:
                      conditionally_required: when known
                    sampling_relevant: true
                    tag: identity
                    deprecated:
                      reason: renamed
                      renamed_to: knhk.mesh.node.id
                  - ref: knhk.mesh.peer.role
                    requirement_level: opt_in
                    stability: stable
                  - ref: knhk.mesh.peer.count
            """,
        },
    )
    registry = _resolve_ok(root)
    span = registry.group("span.knhk.mesh.peer.join")
    assert span is not None and span.span_kind == "internal"
    peer = span.attribute("knhk.mesh.peer.id")
    assert peer is not None
    assert peer.brief == "The joining peer."
    assert peer.note == "The peer's public key fingerprint."  # inherited from the definition
    assert peer.type == "string"
    assert peer.examples == ("p1", "p2")
    assert peer.requirement_level == "conditionally_required"
    assert peer.requirement_text == "when known"
    assert peer.sampling_relevant is True
    assert peer.tag == "identity"
    assert peer.deprecated == Deprecated("renamed", "knhk.mesh.node.id")
    role = span.attribute("knhk.mesh.peer.role")
    assert role is not None and isinstance(role.type, EnumType)
    assert role.type.member_values() == {"seed", "member"}
    assert (role.requirement_level, role.requirement_text, role.stability) == ("opt_in", None, "stable")
    count = span.attribute("knhk.mesh.peer.count")
    assert count is not None and count.requirement_level == "required"  # the definition's level
    definition = registry.registry_attributes()["knhk.mesh.peer.id"]
    assert definition.examples == ("abc123",)  # a scalar example becomes a 1-tuple
    assert definition.brief == "Identifier of a peer."  # the override did not leak back


def test_extends_chain_inherits_and_local_definitions_override(
    write_registry: Callable[..., Path], base_attributes: str
) -> None:
    root = write_registry(
        "reg",
        {
            "attrs.yaml": base_attributes,
            "chain.yaml": """
            groups:
              - id: metric.knhk.mesh.peers
                type: metric
                metric_name: knhk.mesh.peers
                instrument: gauge
                unit: "{peer}"
                stability: development
                brief: Peers known.
                extends: knhk.mesh.common.b
              - id: knhk.mesh.common.b
                type: attribute_group
                brief: middle
                extends: knhk.mesh.common.a
                attributes:
                  - ref: knhk.mesh.peer.role
                  - ref: knhk.mesh.peer.id
                    brief: overridden in b
              - id: knhk.mesh.common.a
                type: attribute_group
                brief: root
                attributes:
                  - ref: knhk.mesh.peer.id
                  - ref: knhk.mesh.peer.count
            """,
        },
    )
    registry = _resolve_ok(root)
    metric = registry.group("metric.knhk.mesh.peers")
    assert metric is not None
    assert [a.name for a in metric.attributes] == [
        "knhk.mesh.peer.id",
        "knhk.mesh.peer.count",
        "knhk.mesh.peer.role",
    ]
    peer = metric.attribute("knhk.mesh.peer.id")
    assert peer is not None and peer.brief == "overridden in b"
    assert metric.extends == "knhk.mesh.common.b"
    assert metric.instrument == "gauge"
    # groups keep file order, whatever order they resolved in
    assert [g.id for g in registry.groups][-3:] == [
        "metric.knhk.mesh.peers",
        "knhk.mesh.common.b",
        "knhk.mesh.common.a",
    ]


def test_extends_cycle_is_reported_not_followed(
    write_registry: Callable[..., Path], base_attributes: str
) -> None:
    root = write_registry(
        "reg",
        {
            "attrs.yaml": base_attributes,
            "cycle.yaml": """
            groups:
              - id: group.a
                type: attribute_group
                brief: a
                extends: group.b
                attributes: [{ref: knhk.mesh.peer.id}]
              - id: group.b
                type: attribute_group
                brief: b
                extends: group.c
              - id: group.c
                type: attribute_group
                brief: c
                extends: group.a
            """,
        },
    )
    registry, diagnostics = load_and_resolve(root)
    cycles = [d for d in diagnostics if d.id == "extends_cycle"]
    assert len(cycles) == 1
    assert "group.a -> group.b -> group.c -> group.a" in cycles[0].message
    assert cycles[0].source is not None and cycles[0].source.path.endswith("cycle.yaml")
    assert cycles[0].source.line == 14  # the `extends: group.a` that closes the loop
    assert registry is not None and registry.group("group.a") is not None


def test_unresolved_ref_names_the_place_and_suggests_a_near_name(
    write_registry: Callable[..., Path], base_attributes: str
) -> None:
    root = write_registry(
        "reg",
        {
            "attrs.yaml": base_attributes,
            "bad.yaml": """
            groups:
              - id: span.knhk.mesh.x
                type: span
                span_kind: internal
                stability: development
                brief: x
                extends: registry.knhk.mesh.peerz
                attributes:
                  - ref: knhk.mesh.peer.idd
                  - ref: totally.unknown.thing
            """,
        },
    )
    errors = {d.id: d for d in _errors(root) if "totally" not in d.message}
    ref = errors["unresolved_ref"]
    assert ref.hint == "did you mean `knhk.mesh.peer.id`?"
    assert ref.source is not None and (ref.source.line, ref.source.col) == (9, 14)
    assert "knhk.mesh.peer.idd" in ref.message
    rendered = ref.render()
    assert (
        rendered.endswith("(did you mean `knhk.mesh.peer.id`?)")
        and ":9:14: error[unresolved_ref]:" in rendered
    )
    extends = errors["unresolved_extends"]
    assert extends.hint == "did you mean `registry.knhk.mesh.peer`?"
    assert extends.source is not None and extends.source.line == 7
    unknown = [d for d in _errors(root) if "totally.unknown.thing" in d.message]
    assert len(unknown) == 1 and unknown[0].hint is None


def test_duplicates_are_reported(write_registry: Callable[..., Path], base_attributes: str) -> None:
    root = write_registry(
        "reg",
        {
            "a.yaml": base_attributes,
            "b.yaml": """
            groups:
              - id: registry.knhk.mesh.peer
                type: attribute_group
                brief: again
                attributes: []
              - id: registry.knhk.mesh.more
                type: attribute_group
                brief: more
                attributes:
                  - id: knhk.mesh.peer.id
                    type: string
                    stability: development
                    brief: defined twice
              - id: span.knhk.mesh.dup
                type: span
                span_kind: client
                stability: development
                brief: dup
                attributes:
                  - ref: knhk.mesh.peer.count
                  - ref: knhk.mesh.peer.count
            """,
        },
    )
    errors = _errors(root)
    by_id = {d.id: d for d in errors}
    assert set(by_id) == {"duplicate_group_id", "duplicate_attribute_id", "duplicate_attribute_in_group"}
    assert by_id["duplicate_group_id"].source is not None and by_id["duplicate_group_id"].source.line == 2
    assert "a.yaml:2:9" in by_id["duplicate_group_id"].message  # points at the first definition
    assert by_id["duplicate_attribute_in_group"].source is not None
    assert by_id["duplicate_attribute_in_group"].source.line == 21


def test_v2_file_resolves_into_the_same_model(write_registry: Callable[..., Path]) -> None:
    root = write_registry(
        "reg",
        {
            "mesh/registry.yaml": """
            file_format: definition/2
            attributes:
              - key: knhk.mesh.link.state
                type:
                  members:
                    - {id: up, value: up, stability: development}
                    - {id: down, value: down, stability: development}
                brief: Link state.
                stability: development
              - key: knhk.mesh.link.rtt
                type: double
                brief: Round-trip time.
                stability: development
                examples: 0.25
            attribute_groups:
              - id: knhk.mesh.link.common
                visibility: internal
                attributes:
                  - ref: knhk.mesh.link.state
                    requirement_level: required
            spans:
              - type: knhk.mesh.link.probe
                kind: client
                name: {note: "probe {peer}"}
                brief: A link probe.
                stability: development
                attributes:
                  - ref_group: knhk.mesh.link.common
                  - ref: knhk.mesh.link.rtt
            metrics:
              - name: knhk.mesh.link.rtt
                instrument: histogram
                unit: s
                brief: RTT.
                stability: development
                attributes:
                  - ref_group: knhk.mesh.link.common
            events:
              - name: knhk.mesh.link.flap
                brief: A link flapped.
                stability: development
            entities:
              - type: knhk.mesh.link
                brief: A link.
                stability: development
                identity:
                  - ref: knhk.mesh.link.state
            span_refinements:
              - id: span.knhk.mesh.link.probe.tls
                ref: knhk.mesh.link.probe
                brief: A probe over TLS.
                attributes:
                  - ref: knhk.mesh.link.state
                    note: Always up after the handshake.
            metric_refinements:
              - id: metric.knhk.mesh.link.rtt.tls
                ref: knhk.mesh.link.rtt
            """,
        },
    )
    registry = _resolve_ok(root)
    ids = [g.id for g in registry.groups]
    assert ids == [
        "registry.mesh.registry",
        "entity.knhk.mesh.link",
        "event.knhk.mesh.link.flap",
        "metric.knhk.mesh.link.rtt",
        "span.knhk.mesh.link.probe",
        # `knhk.mesh.link.common` is internal: it serves the ref_groups, and is not output (Weaver)
        "metric.knhk.mesh.link.rtt.tls",
        "span.knhk.mesh.link.probe.tls",
    ]
    attrs = registry.registry_attributes()
    assert attrs["knhk.mesh.link.rtt"].examples == (0.25,)
    span = registry.group("span.knhk.mesh.link.probe")
    assert span is not None and span.span_kind == "client" and span.signal_name == "knhk.mesh.link.probe"
    state = span.attribute("knhk.mesh.link.state")
    assert state is not None and state.requirement_level == "required"
    refined = registry.group("span.knhk.mesh.link.probe.tls")
    assert refined is not None
    assert refined.span_kind == "client" and refined.stability == "development"  # from the parent
    assert refined.brief == "A probe over TLS."
    refined_state = refined.attribute("knhk.mesh.link.state")
    assert refined_state is not None
    assert refined_state.requirement_level == "required"  # the parent's use, refined
    assert refined_state.note == "Always up after the handshake."
    metric = registry.group("metric.knhk.mesh.link.rtt.tls")
    assert metric is not None
    assert (metric.metric_name, metric.instrument, metric.unit, metric.brief) == (
        "knhk.mesh.link.rtt",
        "histogram",
        "s",
        "RTT.",
    )
    event = registry.group("event.knhk.mesh.link.flap")
    assert event is not None and event.name == "knhk.mesh.link.flap"
    entity = registry.group("entity.knhk.mesh.link")
    assert entity is not None and [a.name for a in entity.attributes] == ["knhk.mesh.link.state"]


def test_v2_unknown_ref_group_and_refinement_parent(write_registry: Callable[..., Path]) -> None:
    root = write_registry(
        "reg",
        {
            "x.yaml": """
            file_format: definition/2
            attribute_groups:
              - id: knhk.mesh.common
                visibility: internal
                attributes: []
            spans:
              - type: knhk.mesh.s
                kind: client
                name: {note: s}
                brief: s
                stability: development
                attributes:
                  - ref_group: knhk.mesh.comon
            span_refinements:
              - id: span.knhk.mesh.s.refined
                ref: knhk.mesh.t
            """,
        },
    )
    by_id = {d.id: d for d in _errors(root)}
    assert by_id["unresolved_ref_group"].hint == "did you mean `knhk.mesh.common`?"
    assert (
        by_id["unresolved_ref_group"].source is not None and by_id["unresolved_ref_group"].source.line == 13
    )
    assert by_id["unresolved_extends"].hint == "did you mean `span.knhk.mesh.s`?"


def test_dependency_via_manifest_supplies_refs_and_comes_first(
    write_registry: Callable[..., Path], base_attributes: str
) -> None:
    write_registry(
        "reg/otel",
        {
            "manifest.yaml": "name: otel\nsemconv_version: 1.44.0\n",
            "registry.yaml": """
            groups:
              - id: registry.network
                type: attribute_group
                brief: Network.
                attributes:
                  - id: network.peer.address
                    type: string
                    stability: stable
                    brief: Peer address.
              - id: metric.db.client.operation.duration
                type: metric
                metric_name: db.client.operation.duration
                instrument: histogram
                unit: s
                stability: stable
                brief: Duration.
                attributes: [{ref: network.peer.address}]
              - id: metric.http.server.request.duration
                type: metric
                metric_name: http.server.request.duration
                instrument: histogram
                unit: s
                stability: stable
                brief: Duration.
                attributes: [{ref: network.peer.address}]
            """,
        },
    )
    root = write_registry(
        "reg",
        {
            "manifest.yaml": """
            name: knhk_mesh
            semconv_version: 0.1.0
            namespace: knhk.mesh
            some_future_key: ignored
            dependencies:
              - name: otel
                registry_path: otel
            """,
            "attrs.yaml": base_attributes,
            "spans.yaml": """
            groups:
              - id: span.knhk.mesh.dial
                type: span
                span_kind: client
                stability: development
                brief: Dial a peer.
                attributes:
                  - ref: network.peer.address
                    requirement_level: required
                  - ref: knhk.mesh.peer.id
            """,
        },
    )
    registry = _resolve_ok(root)
    assert registry.manifest is not None
    assert registry.manifest.name == "knhk_mesh" and registry.manifest.namespace == "knhk.mesh"
    assert [n for n, _ in registry.manifest.dependencies] == ["otel"]
    ids = [g.id for g in registry.groups]
    assert ids == [
        "registry.network",
        "registry.knhk.mesh.peer",
        "span.knhk.mesh.dial",
    ]  # no import: no signals
    assert registry.own == frozenset({"registry.knhk.mesh.peer", "span.knhk.mesh.dial"})
    span = registry.group("span.knhk.mesh.dial")
    assert span is not None
    address = span.attribute("network.peer.address")
    assert address is not None and address.type == "string" and address.requirement_level == "required"
    loaded = load_documents(root)
    assert [Path(d.path).name for d in loaded.documents] == ["attrs.yaml", "spans.yaml"]  # otel/ is not ours
    assert len(loaded.dependencies) == 1 and loaded.dependencies[0].manifest is not None


def test_imports_pull_matching_signals_from_dependencies(write_registry: Callable[..., Path]) -> None:
    write_registry(
        "reg/dep",
        {
            "manifest.yaml": "name: dep\n",
            "signals.yaml": """
            groups:
              - id: metric.db.ops
                type: metric
                metric_name: db.ops
                instrument: counter
                unit: "{op}"
                stability: stable
                brief: Ops.
              - id: metric.http.reqs
                type: metric
                metric_name: http.reqs
                instrument: counter
                unit: "{req}"
                stability: stable
                brief: Requests.
              - id: event.db.slow
                type: event
                name: db.slow
                stability: stable
                brief: Slow.
            """,
        },
    )
    root = write_registry(
        "reg",
        {
            "manifest.yaml": "name: reg\ndependencies:\n  - {name: dep, registry_path: dep}\n",
            "imports.yaml": """
            imports:
              metrics: ["db.*"]
              events: ["db.slow"]
              entities: ["nothing.*"]
            groups: []
            """,
        },
    )
    registry, diagnostics = load_and_resolve(root)
    assert registry is not None
    assert [g.id for g in registry.groups] == ["metric.db.ops", "event.db.slow"]
    assert registry.own == frozenset()
    assert [(d.id, d.source.line if d.source else 0) for d in diagnostics] == [("unresolved_import", 4)]


def test_missing_dependency_is_reported_at_its_declaration(write_registry: Callable[..., Path]) -> None:
    root = write_registry(
        "reg",
        {
            "manifest.yaml": """
            name: reg
            dependencies:
              - name: gone
                registry_path: ../nowhere
              - name: remote
                registry_path: https://example.com/semconv.zip
            """,
        },
    )
    errors = _errors(root)
    assert [(d.id, d.source.line if d.source else 0) for d in errors] == [
        ("dependency_not_found", 4),
        ("dependency_not_found", 6),
    ]


def test_registry_without_manifest_is_named_after_its_folder(
    write_registry: Callable[..., Path], base_attributes: str
) -> None:
    root = write_registry("plain_reg", {"a.yaml": base_attributes})
    loaded = load_documents(root)
    assert loaded.manifest is None
    registry, _ = resolve(loaded)
    assert registry.manifest is None and len(registry.groups) == 1


def test_bad_manifest_and_unknown_file_format(write_registry: Callable[..., Path]) -> None:
    root = write_registry(
        "reg",
        {
            "manifest.yaml": "name: reg\ndependencies: nope\n",
            "future.yaml": "file_format: definition/3\nthings: []\n",
            "broken.yaml": "groups:\n  - id: x\n    brief: [unclosed\n",
        },
    )
    errors = _errors(root)
    assert sorted(d.id for d in errors) == ["manifest_invalid", "unknown_file_format", "yaml_syntax"]
    fmt = next(d for d in errors if d.id == "unknown_file_format")
    assert fmt.source is not None and (fmt.source.line, fmt.source.col) == (1, 14)


def test_legacy_v1_forms(write_registry: Callable[..., Path]) -> None:
    root = write_registry(
        "reg",
        {
            "legacy.yaml": """
            groups:
              - id: host
                type: resource
                prefix: host
                brief: A host.
                stability: development
                attributes:
                  - id: arch
                    type: string
                    stability: development
                    brief: CPU architecture.
                    deprecated: Use `host.cpu` instead.
            """,
        },
    )
    registry = _resolve_ok(root)
    host = registry.group("host")
    assert host is not None and host.type == "entity"
    arch = host.attribute("host.arch")
    assert arch is not None
    assert arch.deprecated == Deprecated("uncategorized", note="Use `host.cpu` instead.")


def test_invalid_shapes_are_diagnostics_and_skipped(write_registry: Callable[..., Path]) -> None:
    root = write_registry(
        "reg",
        {
            "bad.yaml": """
            groups:
              - id: g
                type: spanish
                brief: x
              - type: span
              - id: ok
                type: attribute_group
                brief: ok
                attributes:
                  - id: ok.a
                    type: strin
                    brief: typo
                  - id: ok.b
                    type: int
                    brief: fine
                    requirement_level: sometimes
                  - 42
            """,
        },
    )
    registry, diagnostics = load_and_resolve(root)
    assert registry is not None
    assert {d.id for d in diagnostics} == {"invalid_definition"}
    lines = sorted(d.source.line for d in diagnostics if d.source)
    assert lines == [3, 5, 11, 16, 17]
    group = registry.group("ok")
    assert group is not None and [a.name for a in group.attributes] == ["ok.b"]


def test_dependency_cycle_stops_and_legacy_manifest_name_is_read(write_registry: Callable[..., Path]) -> None:
    write_registry(
        "a/b", {"registry_manifest.yaml": "name: b\ndependencies:\n  - {name: a, registry_path: ..}\n"}
    )
    root = write_registry("a", {"manifest.yaml": "name: a\ndependencies:\n  - {name: b, registry_path: b}\n"})
    loaded = load_documents(root)
    assert loaded.manifest is not None and loaded.manifest.name == "a"
    (dep,) = loaded.dependencies
    assert dep.manifest is not None and dep.manifest.name == "b"
    assert [d.id for d in loaded.diagnostics] == ["dependency_cycle"]
    registry, diagnostics = resolve(loaded)
    assert registry.groups == () and diagnostics == []
