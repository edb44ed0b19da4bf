"""What the dashboards show, decided from the schema alone: boards, rows, panels and their PromQL.

This is the half of the `dashboards` target that needs no Grafana library: each metric becomes a
panel whose type, query and unit follow from its instrument and unit (a counter is always inside
`rate(...[$__rate_interval])`, a histogram goes through `histogram_quantile` on `rate(..._bucket)`),
and a few curated panels (overview figures, tick budgets, coverage) are added where the metrics they
need exist. A metric can steer its panel with `annotations.knhk.dashboard` (keys in `OVERRIDE_KEYS`).
`dashboards_target` turns the plan into Grafana JSON with grafana-foundation-sdk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from knhk_otel.codegen import naming
from knhk_otel.codegen.errors import CodegenError
from knhk_otel.schema.model import EnumType, Group

PanelKind = Literal["timeseries", "stat"]

#: The boards, in the order they are written, with their uid suffix and title.
BOARDS: tuple[tuple[str, str, str], ...] = (
    ("overview", "Mesh overview", "Agents, peers, messages and bytes of the mesh at a glance."),
    ("gossip", "Gossip and convergence", "Gossip rounds, fan-out and how fast writes converge."),
    ("ticks", "Tick budgets", "Time per operation in ticks (µs beside) against the schema's budgets."),
    ("security", "Byzantine and security", "Byzantine behaviour detected and messages rejected, by kind."),
    ("partitions", "Partitions and topology", "Partition status and recovery, topology and hierarchy."),
    ("telemetry", "Telemetry health", "Scrape/export health, schema findings and schema coverage."),
)

#: Which board a metric goes to by default: the stem of the schema file that defines it.
DEFAULT_BOARD_OF_FILE: Mapping[str, str] = {
    "peers": "overview",
    "transport": "overview",
    "gossip": "gossip",
    "ticks": "ticks",
    "security": "security",
    "partition": "partitions",
    "topology": "partitions",
    "hierarchy": "partitions",
    "telemetry": "telemetry",
}

#: Keys of `annotations.knhk.dashboard` on a metric.
OVERRIDE_KEYS: Mapping[str, str] = {
    "board": "the board slug the metric's panel goes to",
    "panel": "timeseries or stat",
    "unit": "Grafana unit id of the panel",
    "aggregation": "sum, avg, min or max across series (gauges; default min/avg/max lines)",
    "group_by": "attribute names the query keeps as labels (default: enum attributes and the region)",
    "quantiles": "quantiles of a histogram (default [0.5, 0.95, 0.99])",
    "title": "panel title",
}
_AGGREGATIONS = ("sum", "avg", "min", "max")
_QUANTILES = (0.5, 0.95, 0.99)
RATE = "$__rate_interval"
REGION_ATTRIBUTE = "knhk.mesh.region"
TICK_METRIC = "knhk.mesh.tick.usage"
TICK_OVERRUNS = "knhk.mesh.tick.overruns"

#: Grafana unit ids for UCUM units a metric may carry (the value and its per-second rate).
_GRAFANA_UNITS: Mapping[str, tuple[str, str]] = {
    "s": ("s", "ops"),  # a counter of seconds per second is a utilisation; shown as a rate
    "ms": ("ms", "ops"),
    "us": ("µs", "ops"),
    "ns": ("ns", "ops"),
    "By": ("bytes", "Bps"),
    "1": ("percentunit", "short"),
}


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class PanelPlan:
    title: str
    description: str
    kind: PanelKind
    unit: str  # Grafana unit id
    axis_label: str  # what the numbers count, for axes (Grafana's axisLabel and the PNG renderer)
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    metrics: tuple[str, ...] = ()  # schema metric names the panel shows


@dataclass(slots=True)
class RowPlan:
    title: str
    panels: list[PanelPlan] = field(default_factory=list)


@dataclass(slots=True)
class BoardPlan:
    slug: str
    title: str
    description: str
    rows: list[RowPlan] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return f"knhk-{self.slug}"

    def row(self, title: str) -> RowPlan:
        for row in self.rows:
            if row.title == title:
                return row
        self.rows.append(RowPlan(title))
        return self.rows[-1]

    def panels(self) -> list[PanelPlan]:
        return [p for r in self.rows for p in r.panels]


@dataclass(frozen=True, slots=True)
class Settings:
    """Target parameters (`-D key=value`) the plan depends on."""

    tick_ns: int = 50_000
    board_of_file: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_BOARD_OF_FILE))


def _where(group: Group) -> str:
    return str(group.source) if group.source is not None else group.id


def _fail(group: Group, message: str) -> CodegenError:
    return CodegenError(f"{_where(group)}: error[dashboard_annotation]: {group.id}: {message}")


def overrides(group: Group) -> dict[str, Any]:
    """`annotations.knhk.dashboard` of a metric, checked: a wrong key or value is a one-line error."""
    knhk = group.annotations.get("knhk") if isinstance(group.annotations, Mapping) else None
    raw = knhk.get("dashboard") if isinstance(knhk, Mapping) else None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(group, "`annotations.knhk.dashboard` must be a mapping")
    out = dict(raw)
    unknown = sorted(set(out) - set(OVERRIDE_KEYS))
    if unknown:
        raise _fail(group, f"unknown key(s) {', '.join(unknown)} (known: {', '.join(OVERRIDE_KEYS)})")
    slugs = [b[0] for b in BOARDS]
    if "board" in out and out["board"] not in slugs:
        raise _fail(group, f"board {out['board']!r} is not one of {', '.join(slugs)}")
    if "panel" in out and out["panel"] not in ("timeseries", "stat"):
        raise _fail(group, "panel must be `timeseries` or `stat`")
    if "aggregation" in out and out["aggregation"] not in _AGGREGATIONS:
        raise _fail(group, f"aggregation must be one of {', '.join(_AGGREGATIONS)}")
    for key in ("unit", "title"):
        if key in out and (not isinstance(out[key], str) or not out[key]):
            raise _fail(group, f"{key} must be a non-empty string")
    if "group_by" in out:
        names = {a.name for a in group.attributes}
        value = out["group_by"]
        if not isinstance(value, list) or not all(isinstance(v, str) and v in names for v in value):
            raise _fail(group, f"group_by must list attributes of the metric ({', '.join(sorted(names))})")
    if "quantiles" in out:
        value = out["quantiles"]
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(q, int | float) and not isinstance(q, bool) and 0 < q < 1 for q in value)
        ):
            raise _fail(group, "quantiles must be a non-empty list of numbers between 0 and 1")
    return out


# --- PromQL pieces -----------------------------------------------------------------------------


def selector(metric: Group) -> str:
    """The label matchers every query of a metric carries: the job and instance variables, and the
    region variable where the metric has a region attribute."""
    parts = ['job=~"$job"', 'instance=~"$instance"']
    if any(a.name == REGION_ATTRIBUTE for a in metric.attributes):
        parts.append(f'{naming.prometheus_label(REGION_ATTRIBUTE)}=~"$region"')
    return "{" + ", ".join(parts) + "}"


def group_labels(metric: Group, override: Mapping[str, Any]) -> list[str]:
    """Labels a query keeps: bounded ones (enums, the region), never ids (cardinality)."""
    if "group_by" in override:
        names = list(override["group_by"])
    else:
        names = [
            a.name for a in metric.attributes if isinstance(a.type, EnumType) or a.name == REGION_ATTRIBUTE
        ]
    return [naming.prometheus_label(n) for n in names]


def _by(labels: Sequence[str]) -> str:
    return f" by ({', '.join(labels)})" if labels else ""


def _legend(labels: Sequence[str], fallback: str) -> str:
    return " ".join("{{" + label + "}}" for label in labels) if labels else fallback


def counter_rate(metric: Group, labels: Sequence[str]) -> str:
    name = naming.prometheus_name(metric)
    return f"sum{_by(labels)} (rate({name}{selector(metric)}[{RATE}]))"


def histogram_quantile(metric: Group, q: float, labels: Sequence[str]) -> str:
    name = naming.prometheus_name(metric)
    by = ", ".join(["le", *labels])
    return f"histogram_quantile({q:g}, sum by ({by}) (rate({name}_bucket{selector(metric)}[{RATE}])))"


def _unit_word(unit: str | None) -> str:
    """`{round}` → `rounds`, `s` → `seconds`, `By` → `bytes`: what an axis says it counts."""
    if not unit:
        return "value"
    match = re.fullmatch(r"\{([^}]*)\}", unit.strip())
    if match:
        word = match.group(1) or "value"
        if word.endswith(("s", "x", "sh", "ch")):
            return word + "es"
        if word.endswith("y") and word[-2:-1] not in "aeiou":
            return word[:-1] + "ies"
        return word + "s"
    return {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "By": "bytes", "1": "ratio"}.get(
        unit, unit
    )


def _units(metric: Group, override: Mapping[str, Any], rate: bool) -> tuple[str, str]:
    grafana = _GRAFANA_UNITS.get(metric.unit or "", ("short", "short"))[1 if rate else 0]
    word = _unit_word(metric.unit)
    return str(override.get("unit", grafana)), f"{word}/s" if rate else word


def humanise(metric: Group, namespace: str | None) -> str:
    """`knhk.mesh.gossip.rounds` → `Gossip rounds` (the namespace dropped)."""
    short = naming.strip_namespace(metric.signal_name, namespace)
    words = [w for w in re.split(r"[._]+", short) if w]
    text = " ".join(words) or metric.signal_name
    return text[:1].upper() + text[1:]


def _describe(metric: Group, extra: str = "") -> str:
    series = naming.prometheus_name(metric)
    brief = " ".join(metric.brief.split())
    text = f"{brief} Schema metric `{metric.signal_name}` ({metric.instrument}, unit `{metric.unit}`), "
    text += f"Prometheus `{series}`."
    return f"{text} {extra}".strip()


# --- panels per metric -------------------------------------------------------------------------


def metric_panels(metric: Group, namespace: str | None) -> list[PanelPlan]:
    """The default panels of one metric, from its instrument and unit (and its overrides)."""
    override = overrides(metric)
    title = str(override.get("title") or humanise(metric, namespace))
    labels = group_labels(metric, override)
    kind: PanelKind = override.get("panel", "timeseries")
    width = 6 if kind == "stat" else 12
    height = 5 if kind == "stat" else 8
    names = (metric.signal_name,)
    if metric.instrument == "counter":
        unit, axis = _units(metric, override, rate=True)
        query = Query(counter_rate(metric, labels), _legend(labels, title))
        return [
            PanelPlan(
                f"{title} per second",
                _describe(metric, "Per-second rate over the rate interval."),
                kind,
                unit,
                axis,
                (query,),
                width,
                height,
                names,
            )
        ]
    if metric.instrument == "histogram":
        unit, axis = _units(metric, override, rate=False)
        quantiles = [float(q) for q in override.get("quantiles", _QUANTILES)]
        panels = [
            PanelPlan(
                f"{title} p{'/p'.join(f'{q * 100:g}' for q in quantiles)}",
                _describe(metric, "Quantiles across the selected instances."),
                kind,
                unit,
                axis,
                tuple(Query(histogram_quantile(metric, q, []), f"p{q * 100:g}") for q in quantiles),
                width,
                height,
                names,
            )
        ]
        if labels:
            shown = ", ".join(label.rsplit("_", 1)[-1] for label in labels)
            panels.append(
                PanelPlan(
                    f"{title} p95 by {shown}",
                    _describe(metric, "95th percentile per label value."),
                    kind,
                    unit,
                    axis,
                    (Query(histogram_quantile(metric, 0.95, labels), _legend(labels, title)),),
                    width,
                    height,
                    names,
                )
            )
        return panels
    # gauge, updowncounter: a level, not a rate
    unit, axis = _units(metric, override, rate=False)
    name = naming.prometheus_name(metric)
    sel = selector(metric)
    if "aggregation" in override or labels:
        agg = str(override.get("aggregation", "avg"))
        queries: tuple[Query, ...] = (
            Query(f"{agg}{_by(labels)} ({name}{sel})", _legend(labels, f"{agg} {title.lower()}")),
        )
        note = f"{agg} across series" + (f" per {', '.join(labels)}" if labels else "") + "."
    else:
        queries = tuple(Query(f"{agg} ({name}{sel})", agg) for agg in ("min", "avg", "max"))
        note = "Lowest, mean and highest value across series."
    return [PanelPlan(title, _describe(metric, note), kind, unit, axis, queries, width, height, names)]


def _component(group: Group, registry_root: str) -> str:
    if group.source is None:
        return ""
    path = PurePosixPath(group.source.path.replace("\\", "/"))
    root = PurePosixPath(registry_root.replace("\\", "/"))
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = PurePosixPath(path.name)
    return rel.with_suffix("").as_posix()


def board_of(metric: Group, registry_root: str, settings: Settings) -> str:
    override = overrides(metric)
    if "board" in override:
        return str(override["board"])
    return settings.board_of_file.get(_component(metric, registry_root), "overview")


# --- curated panels ----------------------------------------------------------------------------

_SELECT = '{job=~"$job", instance=~"$instance"}'


def recorded(record: str, aggregation: str, labels: Sequence[str] = ()) -> str | None:
    """`aggregation by (labels) (record{job, instance})` when the `alerts` target records `record`
    (its recording rules keep job and instance), else None and the caller queries the raw series."""
    from knhk_otel.codegen.alerts_target import RECORDING_RULES

    if record not in RECORDING_RULES:
        return None
    return f"{aggregation}{_by(labels)} ({record}{_SELECT})"


_RECORDED_NOTE = " Read from the recording rule `{record}` (a 5-minute window, one series per instance)."


def _find(metrics: Mapping[str, Group], name: str) -> Group | None:
    return metrics.get(name)


def tick_budgets(metric: Group) -> dict[str, int]:
    knhk = metric.annotations.get("knhk") if isinstance(metric.annotations, Mapping) else None
    raw = knhk.get("tick_budgets") if isinstance(knhk, Mapping) else None
    return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def _tick_board(board: BoardPlan, usage: Group, overruns: Group | None, settings: Settings) -> None:
    op = naming.prometheus_label("knhk.mesh.tick.operation")
    labels = [op] if any(a.name == "knhk.mesh.tick.operation" for a in usage.attributes) else []
    budgets = tick_budgets(usage)
    tick_us = settings.tick_ns / 1000
    budget_text = "; ".join(f"{k} {v} tick(s) = {v * tick_us:g} µs" for k, v in budgets.items())
    about = (
        f"One tick is KNHK_TICK_NS nanoseconds (dashboard variable `tick_ns`, default {settings.tick_ns}). "
        f"Budgets from the schema: {budget_text}."
    )
    usage_name = naming.prometheus_name(usage)
    names = (usage.signal_name,)
    if overruns is not None:
        count = f"sum{_by(labels)} (rate({usage_name}_count{selector(usage)}[{RATE}]))"
        over = counter_rate(overruns, labels)
        compliance = f"1 - (({over} or {count} * 0) / {count})"
        rule, compliance_note = "knhk_mesh:tick_budget_compliance:ratio", ""
        if (fast := recorded(rule, "min", labels)) is not None:  # the worst instance per operation
            compliance, compliance_note = fast, _RECORDED_NOTE.format(record=rule)
        both = (usage.signal_name, overruns.signal_name)
        row = board.row("Budget compliance")
        row.panels.append(
            PanelPlan(
                "Budget compliance by operation",
                "Share of operations that finished within their tick budget: 1 - overruns / operations "
                "(the worst instance). " + about + compliance_note,
                "stat",
                "percentunit",
                "within budget",
                (Query(compliance, _legend(labels, "compliance")),),
                12,
                6,
                both,
            )
        )
        row.panels.append(
            PanelPlan(
                "Budget compliance over time",
                "1 - overruns / operations per operation; the alert threshold is 95 %. "
                + about
                + compliance_note,
                "timeseries",
                "percentunit",
                "within budget",
                (Query(compliance, _legend(labels, "compliance")),),
                12,
                6,
                both,
            )
        )
    for q in _QUANTILES:
        pct = f"p{q * 100:g}"
        rule = f"knhk_mesh:tick_usage:{pct}"
        expr = recorded(rule, "max", labels) or histogram_quantile(usage, q, labels)
        note = _RECORDED_NOTE.format(record=rule) if rule in expr else ""
        row = board.row(f"{pct} per operation")
        row.panels.append(
            PanelPlan(
                f"{pct} ticks by operation",
                f"{pct} of the ticks each operation took (the worst instance). " + about + note,
                "timeseries",
                "short",
                "ticks",
                (Query(expr, _legend(labels, pct)),),
                12,
                7,
                names,
            )
        )
        row.panels.append(
            PanelPlan(
                f"{pct} µs by operation",
                f"{pct} of the same operations in microseconds (ticks * tick_ns / 1000). " + about + note,
                "timeseries",
                "µs",
                "microseconds",
                (Query(f"{expr} * $tick_ns / 1000", _legend(labels, pct)),),
                12,
                7,
                names,
            )
        )


def _overview(board: BoardPlan, metrics: Mapping[str, Group]) -> None:
    """Headline figures: each a stat over a metric that a derived panel also shows in detail."""
    row = board.row("At a glance")
    stats: list[tuple[str, str, str, str, str, Group]] = []
    if (m := _find(metrics, "knhk.mesh.peer.count")) is not None:
        expr = f"avg ({naming.prometheus_name(m)}{selector(m)})"
        stats.append(("Peers per agent", "Mean peers in an agent's registry.", "short", "peers", expr, m))
    if (m := _find(metrics, "knhk.mesh.gossip.rounds")) is not None:
        expr = recorded("knhk_mesh:gossip_rounds:rate", "sum") or counter_rate(m, [])
        stats.append(("Gossip rounds/s", "Rounds per second, all agents.", "short", "rounds/s", expr, m))
    if (m := _find(metrics, "knhk.mesh.messages")) is not None:
        expr = recorded("knhk_mesh:messages:rate", "sum") or counter_rate(m, [])
        stats.append(("Messages/s", "Messages sent and received per second.", "short", "messages/s", expr, m))
    if (m := _find(metrics, "knhk.mesh.convergence.rounds")) is not None:
        expr = recorded("knhk_mesh:convergence_rounds:p95", "max") or histogram_quantile(m, 0.95, [])
        stats.append(("Convergence p95", "Rounds for a write to converge, p95.", "short", "rounds", expr, m))
    if (m := _find(metrics, "knhk.mesh.byzantine.events")) is not None:
        expr = recorded("knhk_mesh:byzantine_events:rate", "sum") or counter_rate(m, [])
        stats.append(("Byzantine detections/s", "All kinds.", "short", "events/s", expr, m))
    if (m := _find(metrics, "knhk.mesh.messages.rejected")) is not None:
        expr = recorded("knhk_mesh:messages_rejected:rate", "sum") or counter_rate(m, [])
        stats.append(("Rejected messages/s", "All reasons.", "short", "messages/s", expr, m))
    width = 24 // max(1, len(stats)) if stats else 24
    for title, desc, unit, axis, expr, m in stats:
        row.panels.append(
            PanelPlan(title, desc, "stat", unit, axis, (Query(expr, title),), width, 4, (m.signal_name,))
        )
    if not row.panels:
        board.rows.remove(row)


def _security(board: BoardPlan, metrics: Mapping[str, Group]) -> None:
    """Who is distrusted now, beside the detections that led there."""
    row = board.row("At a glance")
    if (m := _find(metrics, "knhk.mesh.peer.distrusted")) is not None:
        expr = f"sum ({naming.prometheus_name(m)}{selector(m)})"
        row.panels.append(
            PanelPlan(
                "Distrusted peers",
                "Peers whose reputation fell under 0.5, summed over the selected agents' registries "
                "(the reputation events carry which peers they are).",
                "stat",
                "short",
                "peers",
                (Query(expr, "distrusted"),),
                12,
                4,
                (m.signal_name,),
            )
        )
    if (m := _find(metrics, "knhk.mesh.byzantine.events")) is not None:
        labels = group_labels(m, overrides(m))
        row.panels.append(
            PanelPlan(
                "Byzantine detections per second by kind",
                "Detections per second now, per kind of misbehaviour.",
                "stat",
                "short",
                "events/s",
                (
                    Query(
                        recorded("knhk_mesh:byzantine_events:rate", "sum", labels) or counter_rate(m, labels),
                        _legend(labels, "detections"),
                    ),
                ),
                12,
                4,
                (m.signal_name,),
            )
        )
    if not row.panels:
        board.rows.remove(row)


def coverage_expr(metrics: Sequence[Group]) -> str:
    """Share of the schema's metrics with at least one series in the selection."""
    primary = []
    for m in metrics:
        name = naming.prometheus_name(m)
        primary.append(f"{name}_count" if m.instrument == "histogram" else name)
    pattern = "|".join(sorted(primary))
    return (
        f'count(count by (__name__) ({{__name__=~"{pattern}", job=~"$job", instance=~"$instance"}}))'
        f" / {len(primary)}"
    )


def _export(board: BoardPlan) -> None:
    """Scrape health of the selected endpoints, from the series Prometheus itself records."""
    row = board.row("Export")
    sel = '{job=~"$job", instance=~"$instance"}'
    row.panels.append(
        PanelPlan(
            "Targets up",
            "Scrape targets Prometheus reaches (1 = the endpoint answered the last scrape).",
            "timeseries",
            "short",
            "targets",
            (Query(f"sum by (job) (up{sel})", "{{job}} up"),),
            8,
            7,
        )
    )
    row.panels.append(
        PanelPlan(
            "Samples per scrape",
            "Samples each scrape of the selected endpoints returned.",
            "timeseries",
            "short",
            "samples",
            (Query(f"sum by (instance) (scrape_samples_scraped{sel})", "{{instance}}"),),
            8,
            7,
        )
    )
    row.panels.append(
        PanelPlan(
            "Scrape duration",
            "How long Prometheus took to read the endpoint (a slow exporter shows here first).",
            "timeseries",
            "s",
            "seconds",
            (Query(f"max by (instance) (scrape_duration_seconds{sel})", "{{instance}}"),),
            8,
            7,
        )
    )


def _coverage(board: BoardPlan, metrics: Sequence[Group]) -> None:
    if metrics:
        cov = board.row("Schema coverage")
        cov.panels.append(
            PanelPlan(
                "Schema metrics with data",
                f"Share of the schema's {len(metrics)} metrics that have at least one series in the "
                "selection; a metric no component emits keeps this under 100 %.",
                "stat",
                "percentunit",
                "of schema metrics",
                (Query(coverage_expr(metrics), "coverage"),),
                24,
                4,
            )
        )


# --- the whole plan ----------------------------------------------------------------------------


def plan(
    metrics: Sequence[Group], namespace: str | None, registry_root: str, settings: Settings
) -> list[BoardPlan]:
    """Every board with its rows and panels; every metric of the registry appears in at least one."""
    boards = {slug: BoardPlan(slug, title, desc) for slug, title, desc in BOARDS}
    by_name = {m.signal_name: m for m in metrics}
    _overview(boards["overview"], by_name)
    _export(boards["telemetry"])
    _security(boards["security"], by_name)
    usage, overruns = by_name.get(TICK_METRIC), by_name.get(TICK_OVERRUNS)
    if usage is not None and board_of(usage, registry_root, settings) == "ticks":
        _tick_board(boards["ticks"], usage, overruns, settings)
    for metric in sorted(metrics, key=lambda m: m.signal_name):
        board = boards[board_of(metric, registry_root, settings)]
        component = _component(metric, registry_root).rsplit("/", 1)[-1]
        if not component:
            component = naming.strip_namespace(metric.signal_name, namespace).split(".")[0]
        row = board.row(component.replace("_", " ").replace("-", " ").capitalize())
        row.panels.extend(metric_panels(metric, namespace))
    _coverage(boards["telemetry"], metrics)
    return [boards[slug] for slug, _, _ in BOARDS if boards[slug].panels()]
