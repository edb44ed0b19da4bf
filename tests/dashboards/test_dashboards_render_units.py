"""The renderer's pure parts: units as Grafana shows them, Grafana's query expansion, legends, and
the command's errors for wrong input (one line, non-zero exit, no traceback)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from knhk_otel.cli import main
from knhk_otel.dashboards import render as R
from knhk_otel.dashboards.prometheus import Series


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (0.0, "s", "0"),
        (0.0042, "s", "4.2 ms"),
        (2.5e-5, "s", "25 µs"),
        (250.0, "µs", "250 µs"),
        (0.954, "percentunit", "95.4 %"),
        (3 * 2**20, "Bps", "3 MiB/s"),
        (1500.0, "short", "1.5 K"),
        (0.25, "short", "0.25"),
        (float("nan"), "short", "NaN"),
    ],
)
def test_values_are_shown_in_their_unit(value: float, unit: str, shown: str) -> None:
    assert R.format_value(value, unit) == shown


def test_queries_are_expanded_as_grafana_sends_them() -> None:
    expr = 'sum(rate(a_total{job=~"$job", instance=~"${instance}"}[$__rate_interval])) * $tick_ns / 1000'
    values = {"job": "mesh", "instance": ".*", "tick_ns": "50000"}
    assert R.expand(expr, values, "60s") == (
        'sum(rate(a_total{job=~"mesh", instance=~".*"}[60s])) * 50000 / 1000'
    )
    assert R.rate_interval(15, 15) == "60s"  # 4 x scrape interval
    assert R.rate_interval(120, 15) == "135s"  # interval + scrape interval


def test_variable_values_take_the_current_value_or_all() -> None:
    board = {
        "templating": {
            "list": [
                {"name": "job", "type": "query", "allValue": ".*", "current": {"value": "$__all"}},
                {"name": "tick_ns", "type": "textbox", "current": {"value": "40000"}},
                {"name": "datasource", "type": "datasource", "current": {"value": "prom"}},
            ]
        }
    }
    assert R.variable_values(board, {"job": "knhk"}) == {
        "job": "knhk",
        "tick_ns": "40000",
        "datasource": ".*",
    }


def test_legends_fill_labels() -> None:
    series = Series({"knhk_mesh_tick_operation": "merge", "job": "j"}, [1.0], [2.0])
    assert R.legend("{{knhk_mesh_tick_operation}}", series, "x") == "merge"
    assert R.legend("", series, "x") == "job=j, knhk_mesh_tick_operation=merge"
    assert R.legend("{{absent}}", series, "fallback") == "fallback"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_render_against_nothing_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dashboards = Path(__file__).resolve().parents[2] / "dashboards"
    url = f"http://127.0.0.1:{_closed_port()}"
    code = main(
        ["dashboards", "render", "--prometheus", url, "-o", str(tmp_path / "png"), "-d", str(dashboards)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"knhk-otel dashboards render: error[prometheus]: {url}: cannot reach Prometheus")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "no/such/dir"], "no/such/dir: no such file or folder"),
        (["--range", "ten minutes"], "invalid duration 'ten minutes'"),
        (["--var", "job"], "--var job: expected NAME=VALUE"),
    ],
)
def test_wrong_render_arguments_are_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dashboards", "render", "--prometheus", "http://127.0.0.1:1", "-o", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1 and message in err, err


def test_lint_command_reports_findings_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = Path(__file__).resolve().parents[2] / "dashboards"
    assert main(["dashboards", "lint", str(good)]) == 0
    board = json.loads((good / "security.json").read_text(encoding="utf-8"))
    board["panels"][1]["targets"][0]["expr"] = "sum(knhk_mesh_byzantine_events_total)"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(board), encoding="utf-8")
    capsys.readouterr()
    assert main(["dashboards", "lint", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "target-counter-agg-rule" in out and "target-job-rule" in out
    (tmp_path / "not.json").write_text("{", encoding="utf-8")
    assert main(["dashboards", "lint", str(tmp_path / "not.json")]) == 1
    assert "not JSON" in capsys.readouterr().err
