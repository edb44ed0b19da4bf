"""Hook of the `dashboards` target: the schema's dashboard plan built as Grafana JSON (foundation SDK).

grafana-foundation-sdk is imported here and nowhere else in the toolchain, so the core commands
never load it: the generator imports this module only when the `dashboards` target renders.
Each dashboard is written with the generated-file header as the start of its `description` (Grafana's
dashboard schema allows no other place), followed by provisioning files for Grafana.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from knhk_otel.codegen import dashboards_plan as P
from knhk_otel.codegen.engine import GenerationInput, header_text
from knhk_otel.codegen.errors import CodegenError

DATASOURCE_UID = "knhk-prometheus"
_DS_REF = {"type": "prometheus", "uid": "${datasource}"}
_GRID_WIDTH = 24


def _settings(params: Mapping[str, Any]) -> P.Settings:
    tick_ns = params.get("tick_ns", 50_000)
    if not isinstance(tick_ns, int) or isinstance(tick_ns, bool) or tick_ns <= 0:
        raise CodegenError(f"-D tick_ns={tick_ns}: error[params]: must be a positive integer (nanoseconds)")
    boards = dict(P.DEFAULT_BOARD_OF_FILE)
    extra = params.get("boards", {}) or {}
    slugs = {b[0] for b in P.BOARDS}
    if not isinstance(extra, Mapping) or not all(v in slugs for v in extra.values()):
        raise CodegenError(
            f"boards: error[params]: must map schema file stems to one of {', '.join(sorted(slugs))}"
        )
    boards.update({str(k): str(v) for k, v in extra.items()})
    return P.Settings(tick_ns=tick_ns, board_of_file=boards)


def _variables(tick_ns: int, region_series: str | None) -> list[Any]:
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models import dashboard as dm

    ds = common.DataSourceRef(type_val="prometheus", uid="${datasource}")
    on_range = dm.VariableRefresh.ON_TIME_RANGE_CHANGED

    def query_var(name: str, label: str, query: str, description: str) -> Any:
        return (
            db.QueryVariable(name)
            .label(label)
            .description(description)
            .datasource(ds)
            .query(query)
            .definition(query)
            .refresh(on_range)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
        )

    variables = [
        db.DatasourceVariable("datasource")
        .label("Data source")
        .description("The Prometheus that scrapes the mesh.")
        .type("prometheus")
        .current(dm.VariableOption(selected=True, text="KNHK Prometheus", value=DATASOURCE_UID)),
        query_var("job", "Job", "label_values(up, job)", "Prometheus scrape job(s) of the mesh."),
        query_var(
            "instance",
            "Instance",
            'label_values(up{job=~"$job"}, instance)',
            "Scraped endpoints (a node, or a Collector).",
        ),
    ]
    region_query = (
        f'label_values({region_series}{{job=~"$job", instance=~"$instance"}}, knhk_mesh_region)'
        if region_series
        else 'label_values(target_info{job=~"$job", instance=~"$instance"}, knhk_mesh_region)'
    )
    variables.append(query_var("region", "Region", region_query, "Agent region (knhk.mesh.region)."))
    variables.append(
        db.TextBoxVariable("tick_ns")
        .label("Tick (ns)")
        .description("KNHK_TICK_NS of the nodes: nanoseconds per tick, to show ticks as microseconds.")
        .default_value(str(tick_ns))
        .current(dm.VariableOption(selected=True, text=str(tick_ns), value=str(tick_ns)))
    )
    return variables


def _panel(plan: P.PanelPlan, panel_id: int, x: int, y: int) -> Any:
    from grafana_foundation_sdk.builders import common as cb
    from grafana_foundation_sdk.builders import prometheus as pq
    from grafana_foundation_sdk.builders import stat, timeseries
    from grafana_foundation_sdk.models import common
    from grafana_foundation_sdk.models import dashboard as dm
    from grafana_foundation_sdk.models.prometheus import QueryEditorMode

    ds = common.DataSourceRef(type_val="prometheus", uid="${datasource}")
    builder: Any
    if plan.kind == "stat":
        builder = (
            stat.Panel()
            .graph_mode(common.BigValueGraphMode.AREA)
            .color_mode(common.BigValueColorMode.VALUE)
            .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
    else:
        builder = (
            timeseries.Panel()
            .axis_label(plan.axis_label)
            .line_width(1)
            .fill_opacity(10)
            .show_points(common.VisibilityMode.NEVER)
            .legend(
                cb.VizLegendOptions()
                .show_legend(True)
                .display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM)
            )
        )
    builder = (
        builder.id(panel_id)
        .title(plan.title)
        .description(plan.description)
        .datasource(ds)
        .unit(plan.unit)
        .grid_pos(dm.GridPos(h=plan.height, w=plan.width, x=x, y=y))
    )
    if plan.unit == "percentunit":
        builder = builder.min(0).max(1)
    for index, query in enumerate(plan.queries):
        target = (
            pq.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(chr(ord("A") + index))
            .datasource(ds)
            .editor_mode(QueryEditorMode.CODE)
        )
        builder = builder.with_target(target.instant() if plan.kind == "stat" else target.range())
    return builder


def build_dashboard(
    board: P.BoardPlan, header: str, tick_ns: int, region_series: str | None
) -> dict[str, Any]:
    """One board as Grafana dashboard JSON (a dict), laid out row by row on the 24-column grid."""
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import dashboard as dm

    dash = (
        db.Dashboard(board.title)
        .uid(board.uid)
        .description(f"{header} {board.description}")
        .tags(["knhk", "knhk-mesh", "generated"])
        .time("now-30m", "now")
        .refresh("30s")
        .timezone("utc")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .readonly()
    )
    for variable in _variables(tick_ns, region_series):
        dash = dash.with_variable(variable)
    panel_id, y = 1, 0
    for row in board.rows:
        dash = dash.with_row(db.Row(row.title).id(panel_id).grid_pos(dm.GridPos(h=1, w=24, x=0, y=y)))
        panel_id, y = panel_id + 1, y + 1
        x, line_height = 0, 0
        for plan in row.panels:
            if x + plan.width > _GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            dash = dash.with_panel(_panel(plan, panel_id, x, y))
            panel_id += 1
            x += plan.width
            line_height = max(line_height, plan.height)
        y += line_height
    built: dict[str, Any] = json.loads(json.dumps(dash.build(), cls=JSONEncoder))
    # the header first, so `generate --check` finds the generated-file marker near the top
    ordered = {"title": built.pop("title"), "description": built.pop("description"), "uid": built.pop("uid")}
    ordered.update(built)
    return ordered


def context(inp: GenerationInput) -> dict[str, Any]:
    settings = _settings(inp.params)
    metrics = [g for g in inp.own_groups() if g.type == "metric"]
    boards = P.plan(metrics, inp.namespace, str(inp.registry_root), settings)
    header = header_text(inp.target, inp.registry_display)
    region = next(
        (
            m
            for m in sorted(metrics, key=lambda g: g.signal_name)
            if any(a.name == P.REGION_ATTRIBUTE for a in m.attributes)
        ),
        None,
    )
    region_series = None
    if region is not None:
        from knhk_otel.codegen import naming

        region_series = naming.prometheus_name(region) + (
            "_count" if region.instrument == "histogram" else ""
        )
    dashboards = [
        {
            "slug": board.slug,
            "uid": board.uid,
            "title": board.title,
            "json": json.dumps(
                build_dashboard(board, header, settings.tick_ns, region_series), indent=2, ensure_ascii=False
            ),
        }
        for board in boards
    ]
    return {
        "dashboards": dashboards,
        "datasource_uid": DATASOURCE_UID,
        "prometheus_url": str(inp.params.get("prometheus_url", "http://localhost:9090")),
        "dashboards_path": str(inp.params.get("dashboards_path", "/var/lib/grafana/dashboards/knhk")),
    }
