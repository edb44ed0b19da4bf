"""The generated dashboards: Grafana's schemas accept them, the lint passes, every query parses, and
every schema metric is on some board through the query its instrument calls for."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from knhk_otel.codegen import naming
from knhk_otel.codegen.engine import GENERATED_MARKER
from knhk_otel.dashboards import lint as L
from knhk_otel.dashboards.schemas import validate_dashboard
from knhk_otel.schema.model import Group

BOARD_TITLES = {
    "Mesh overview",
    "Gossip and convergence",
    "Tick budgets",
    "Byzantine and security",
    "Partitions and topology",
    "Telemetry health",
}


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_six_boards_exist_with_the_variables_operators_filter_by(dashboards: dict[str, Any]) -> None:
    assert {d["title"] for d in dashboards.values()} == BOARD_TITLES
    for name, board in dashboards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert {"datasource", "job", "instance", "region"} <= set(variables), name
        assert variables["datasource"]["type"] == "datasource"
        assert board["schemaVersion"] >= 41
        assert GENERATED_MARKER in board["description"].lower()


def test_every_dashboard_validates_against_grafanas_schemas(
    dashboards: dict[str, Any], grafana_schemas: Path
) -> None:
    errors = {name: validate_dashboard(board, grafana_schemas) for name, board in dashboards.items()}
    assert errors == {name: [] for name in dashboards}
    panels = sum(len(b["panels"]) for b in dashboards.values())
    assert panels > 40


def test_the_schema_check_catches_a_broken_panel(dashboards: dict[str, Any], grafana_schemas: Path) -> None:
    board = copy.deepcopy(dashboards["ticks.json"])
    stat = next(p for p in board["panels"] if p["type"] == "stat")
    stat["options"]["graphMode"] = "sparkles"
    board["panels"].append({"type": "clock", "id": 999})
    board["refresh"] = 30
    errors = validate_dashboard(board, grafana_schemas)
    assert any("options/graphMode" in e for e in errors), errors
    assert any("clock" in e for e in errors), errors
    assert any(e.startswith("dashboard/refresh") for e in errors), errors


def test_the_lint_passes_on_every_dashboard(counters: frozenset[str]) -> None:
    folder = Path(__file__).resolve().parents[2] / "dashboards"
    findings = L.lint_files(sorted(folder.glob("*.json")), counters)
    assert [f.render() for f in findings] == []


def test_every_expression_parses_with_promql_parser(dashboards: dict[str, Any]) -> None:
    count = 0
    for board in dashboards.values():
        for expr in _exprs(board):
            L.parse(expr)  # raises ValueError when it does not parse
            count += 1
    assert count > 50


def test_every_metric_of_the_schema_appears_on_a_board(
    dashboards: dict[str, Any], mesh_metrics: list[Group]
) -> None:
    text = "\n".join(e for b in dashboards.values() for e in _exprs(b))
    missing = [
        m.signal_name
        for m in mesh_metrics
        if not re.search(naming.prometheus_name(m) + r"(_bucket|_count)?\b", text)
    ]
    assert missing == []
    assert len(mesh_metrics) >= 20


def test_queries_follow_the_instrument(dashboards: dict[str, Any], mesh_metrics: list[Group]) -> None:
    exprs = [e for b in dashboards.values() for e in _exprs(b)]
    for metric in mesh_metrics:
        name = naming.prometheus_name(metric)
        if metric.instrument == "counter":
            uses = [e for e in exprs if re.search(name + r"\b", e) and "__name__" not in e]
            assert uses and all(f"rate({name}{{" in e for e in uses), (name, uses)
        elif metric.instrument == "histogram":
            uses = [e for e in exprs if f"{name}_bucket" in e]
            assert uses and all("histogram_quantile(" in e and f"rate({name}_bucket{{" in e for e in uses)
    assert all("[$__rate_interval]" in e for e in exprs if "rate(" in e)


def test_units_come_from_the_schema(dashboards: dict[str, Any]) -> None:
    panels = {p["title"]: p for b in dashboards.values() for p in b["panels"]}
    assert panels["Peer latency p50/p95/p99"]["fieldConfig"]["defaults"]["unit"] == "s"
    assert panels["Network io per second"]["fieldConfig"]["defaults"]["unit"] == "Bps"
    rounds = panels["Gossip rounds per second"]["fieldConfig"]["defaults"]
    assert rounds["unit"] == "short" and rounds["custom"]["axisLabel"] == "rounds/s"
    assert panels["Budget compliance by operation"]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert panels["p95 µs by operation"]["fieldConfig"]["defaults"]["unit"] == "µs"


def test_the_lint_names_each_rule_it_breaks() -> None:
    board: dict[str, Any] = {
        "uid": "x" * 41,
        "title": "bad",
        "templating": {"list": [{"type": "query", "name": "job", "query": "label_values(up, job)"}]},
        "panels": [
            {
                "type": "timeseries",
                "id": 1,
                "title": "t",
                "gridPos": {"x": 20, "y": 0, "w": 8, "h": 4},
                "datasource": {"uid": "prom"},
                "fieldConfig": {"defaults": {"unit": "furlongs"}},
                "targets": [
                    {"refId": "A", "expr": "sum(knhk_mesh_messages_total)"},
                    {"refId": "B", "expr": 'rate(x_total{job=~"$job", instance=~"$instance"}[5m])'},
                    {"refId": "C", "expr": "sum(rate(x[5m]"},
                ],
            },
            {"type": "stat", "id": 1, "title": "", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 2}},
        ],
    }
    rules = {f.rule for f in L.lint_dashboard("bad.json", board)}
    assert rules == {
        "dashboard-uid-rule",
        "template-datasource-rule",
        "template-instance-rule",
        "template-job-rule",
        "template-on-time-change-reload-rule",
        "panel-id-rule",
        "grid-bounds-rule",
        "panel-title-description-rule",
        "panel-datasource-rule",
        "panel-units-rule",
        "panel-no-targets-rule",
        "target-counter-agg-rule",
        "target-job-rule",
        "target-instance-rule",
        "target-rate-interval-rule",
        "target-promql-rule",
    }


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum(rate(a_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))', "sum(rate(a_total"),
        ('x{job=~"$job", instance=~"$instance"} * $tick_ns / 1000', "* 1 / 1000"),
        ('x{job=~"$job", instance=~"$instance"} * ${tick_ns}', "* 1"),
    ],
)
def test_macros_and_variables_are_substituted_before_parsing(expr: str, expected: str) -> None:
    assert expected in L.substitute(expr)
    assert '"$job"' in L.substitute(expr)  # inside a string a variable is only text
    L.parse(expr)
