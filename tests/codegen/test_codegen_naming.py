"""Naming rules shared by every target: case styles, identifiers, Prometheus series names."""

from __future__ import annotations

import pytest

from knhk_otel.codegen import naming
from knhk_otel.codegen.filters import comment, py_docstring, py_str, python_type
from knhk_otel.schema.model import EnumMember, EnumType, Group, ResolvedRegistry


def _metric(name: str, instrument: str, unit: str) -> Group:
    return Group(id=f"metric.{name}", type="metric", metric_name=name, instrument=instrument, unit=unit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "instrument", "unit", "series"),
    [
        ("knhk.mesh.gossip.rounds", "counter", "{round}", ["knhk_mesh_gossip_rounds_total"]),
        ("knhk.mesh.network.io", "counter", "By", ["knhk_mesh_network_io_bytes_total"]),
        ("knhk.mesh.peer.count", "gauge", "{peer}", ["knhk_mesh_peer_count"]),
        ("knhk.mesh.queue.size", "updowncounter", "{message}", ["knhk_mesh_queue_size"]),
        (
            "knhk.mesh.convergence.duration",
            "histogram",
            "s",
            [
                "knhk_mesh_convergence_duration_seconds_bucket",
                "knhk_mesh_convergence_duration_seconds_sum",
                "knhk_mesh_convergence_duration_seconds_count",
            ],
        ),
        (
            "knhk.mesh.tick.usage",
            "histogram",
            "{tick}",
            ["knhk_mesh_tick_usage_bucket", "knhk_mesh_tick_usage_sum", "knhk_mesh_tick_usage_count"],
        ),
        (
            "http.server.request.body.size",
            "histogram",
            "By",
            [
                "http_server_request_body_size_bytes_bucket",
                "http_server_request_body_size_bytes_sum",
                "http_server_request_body_size_bytes_count",
            ],
        ),
        ("system.network.io", "counter", "By/s", ["system_network_io_bytes_per_second_total"]),
        ("process.uptime_seconds", "gauge", "s", ["process_uptime_seconds"]),
        ("jobs.total", "counter", "{job}", ["jobs_total"]),
    ],
)
def test_prometheus_series_names(name: str, instrument: str, unit: str, series: list[str]) -> None:
    metric = _metric(name, instrument, unit)
    assert list(naming.prometheus_series(metric)) == series
    assert naming.prometheus_name(metric) == series[0].removesuffix("_bucket")


def test_every_mesh_metric_has_a_valid_unique_prometheus_name(mesh_registry: ResolvedRegistry) -> None:
    names = [naming.prometheus_name(m) for m in mesh_registry.metrics()]
    assert len(names) == len(set(names)) == 22
    assert all(n.replace("_", "").isalnum() and n.startswith("knhk_mesh_") for n in names)
    assert naming.prometheus_label("knhk.mesh.node.id") == "knhk_mesh_node_id"


def test_case_styles() -> None:
    assert naming.snake_case("knhk.mesh.peer.selection_strategy") == "knhk_mesh_peer_selection_strategy"
    assert naming.pascal_case("peer.selection_strategy") == "PeerSelectionStrategy"
    assert naming.screaming_snake_case("network.peer.address") == "NETWORK_PEER_ADDRESS"
    assert naming.kebab_case("span.knhk.mesh.gossip.round") == "span-knhk-mesh-gossip-round"
    assert naming.pascal_case("k8s.pod.cpu.limitUtilization") == "K8sPodCpuLimitUtilization"
    assert naming.strip_namespace("knhk.mesh.gossip.round", "knhk.mesh") == "gossip.round"
    assert naming.strip_namespace("network.peer.address", "knhk.mesh") == "network.peer.address"


def test_identifiers_avoid_keywords_builtins_and_digits() -> None:
    assert naming.py_identifier("class") == "class_"
    assert naming.py_identifier("type") == "type_"
    assert naming.py_identifier("value", reserved=frozenset({"value"})) == "value_"
    assert naming.py_identifier("3d_mode") == "n_3d_mode"
    assert naming.enum_member_name("_OTHER") == "OTHER"
    assert naming.enum_member_name("1xx") == "V1XX"
    assert naming.enum_member_name("none") == "NONE"


def test_python_types() -> None:
    enum = EnumType(members=(EnumMember("a", "a"),))
    assert python_type("string") == "str"
    assert python_type("double[]", abc="_abc.") == "_abc.Sequence[float]"
    assert python_type("template[int[]]", abc="_abc.") == "_abc.Mapping[str, _abc.Sequence[int]]"
    assert python_type("any", types="_types.") == "_types.AttributeValue"
    assert python_type(enum, "attributes.Kind") == "attributes.Kind"
    assert python_type(EnumType(members=(), value_type="int")) == "int"


def test_comment_and_string_filters() -> None:
    text = "the quick brown fox jumps over the lazy dog twice"
    assert comment(text, "// ", width=30) == "// the quick brown fox jumps\n// over the lazy dog twice"
    assert py_str('a "b" \\ \u00b5') == '"a \\"b\\" \\\\ \\N{MICRO SIGN}"'
    doc = py_docstring('Ends with a quote "x"', 4)
    assert doc == '    """Ends with a quote "x\\""""'
    assert eval(doc.strip()) == 'Ends with a quote "x"'
