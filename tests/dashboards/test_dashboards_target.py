"""The `dashboards` target as a generator: annotations steer panels, bad annotations are one-line
errors, and the core toolchain never loads the dashboard libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from knhk_otel.codegen import dashboards_plan as P
from knhk_otel.codegen.errors import CodegenError
from knhk_otel.schema.model import Attribute, EnumMember, EnumType, Group, Source

REPO_ROOT = Path(__file__).resolve().parents[2]


def _metric(instrument: str, unit: str, annotations: dict[str, object] | None = None) -> Group:
    status = Attribute(
        "x.state",
        EnumType((EnumMember("up", "up"), EnumMember("down", "down"))),
        requirement_level="required",
    )
    return Group(
        id="metric.x.thing",
        type="metric",
        brief="A thing.",
        metric_name="x.thing",
        instrument=instrument,  # type: ignore[arg-type]
        unit=unit,
        attributes=(status, Attribute("x.id", "string")),
        annotations=annotations or {},
        source=Source("reg/x.yaml", 4, 5),
    )


def test_a_counter_is_a_rate_grouped_by_its_enums_never_by_ids() -> None:
    (panel,) = P.metric_panels(_metric("counter", "{thing}"), "x")
    (query,) = panel.queries
    assert query.expr == (
        'sum by (x_state) (rate(x_thing_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))'
    )
    assert (panel.unit, panel.axis_label, query.legend) == ("short", "things/s", "{{x_state}}")


def test_a_histogram_gives_quantiles_and_a_per_label_p95() -> None:
    overall, by_state = P.metric_panels(_metric("histogram", "s"), "x")
    assert [q.legend for q in overall.queries] == ["p50", "p95", "p99"]
    assert overall.queries[1].expr == (
        "histogram_quantile(0.95, sum by (le) "
        '(rate(x_thing_seconds_bucket{job=~"$job", instance=~"$instance"}[$__rate_interval])))'
    )
    assert "sum by (le, x_state)" in by_state.queries[0].expr
    assert overall.unit == "s"


def test_annotations_override_panel_unit_aggregation_and_board() -> None:
    metric = _metric(
        "gauge",
        "{thing}",
        {"knhk": {"dashboard": {"panel": "stat", "unit": "none", "aggregation": "max", "board": "security"}}},
    )
    (panel,) = P.metric_panels(metric, "x")
    assert (panel.kind, panel.unit) == ("stat", "none")
    assert panel.queries[0].expr.startswith("max by (x_state) (x_thing{")
    assert P.board_of(metric, "reg", P.Settings()) == "security"


@pytest.mark.parametrize(
    ("dashboard", "message"),
    [
        ({"colour": "red"}, "unknown key(s) colour"),
        ({"board": "nowhere"}, "board 'nowhere' is not one of"),
        ({"group_by": ["x.nope"]}, "group_by must list attributes of the metric"),
        ({"quantiles": [1.5]}, "quantiles must be a non-empty list"),
    ],
)
def test_a_wrong_annotation_is_one_line_naming_the_place(dashboard: dict[str, object], message: str) -> None:
    with pytest.raises(CodegenError) as info:
        P.metric_panels(_metric("gauge", "1", {"knhk": {"dashboard": dashboard}}), "x")
    (line,) = info.value.lines
    assert line.startswith("reg/x.yaml:4:5: error[dashboard_annotation]: metric.x.thing: ")
    assert message in line


def test_the_core_toolchain_never_imports_the_dashboard_libraries(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from knhk_otel.cli import main\n"
        f"assert main(['check', '-r', {str(REPO_ROOT / 'schema')!r}]) == 0\n"
        f"assert main(['generate', 'python', '-r', {str(REPO_ROOT / 'schema')!r}, '-o', 'out']) == 0\n"
        "heavy = ('grafana_foundation_sdk', 'matplotlib', 'promql_parser')\n"
        "loaded = sorted(m for m in heavy if m in sys.modules)\n"
        "assert loaded == [], loaded\n"
        "assert main(['generate', 'dashboards', '-r', "
        f"{str(REPO_ROOT / 'schema')!r}, '-o', 'dash']) == 0\n"
        "assert 'grafana_foundation_sdk' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "dash").glob("*.json")) == [
        "gossip.json",
        "overview.json",
        "partitions.json",
        "security.json",
        "telemetry.json",
        "ticks.json",
    ]
    assert (tmp_path / "dash" / "provisioning" / "datasources" / "knhk-prometheus.yaml").is_file()
    assert (tmp_path / "dash" / "provisioning" / "dashboards" / "knhk.yaml").is_file()
