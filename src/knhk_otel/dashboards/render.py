"""Draw a Grafana dashboard as one PNG: every panel in its grid place, every query evaluated against a
live Prometheus (`query_range`), units on the axes, so a person can look at it without Grafana.

Only time series and stat panels (what the generated dashboards use) are drawn as such; any other
panel type is drawn as a labelled box saying so. matplotlib is imported when rendering starts.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knhk_otel.dashboards.lint import substitute
from knhk_otel.dashboards.prometheus import PrometheusError, Series, query_range

GRID_COLUMNS = 24
_UTC = dt.UTC
_LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MAX_SERIES = 12  # lines per panel; the rest are counted in the legend
_BG, _PANEL, _TEXT, _MUTED, _GRID = "#111217", "#181b1f", "#d8d9da", "#8e8e8e", "#2c3235"
_COLOURS = ("#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a")


def parse_duration(text: str) -> float:
    """`30m` → 1800.0; a one-line ValueError for anything else."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"invalid duration {text!r} (expected e.g. 90s, 30m, 6h)")
    return int(match.group(1)) * _SECONDS[match.group(2)]


@dataclass(slots=True)
class PanelResult:
    title: str
    kind: str
    series: int = 0  # series with at least one finite sample: what a reader sees as data
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RenderResult:
    dashboard: str
    png: Path
    panels: list[PanelResult] = field(default_factory=list)

    @property
    def with_data(self) -> list[PanelResult]:
        return [p for p in self.panels if p.series > 0]

    def summary(self) -> str:
        empty = [p.title for p in self.panels if p.series == 0]
        text = f"{self.png}: {len(self.panels)} panels, {len(self.with_data)} with data"
        return text + (f" (no data: {'; '.join(empty)})" if empty else "")


# --- units -------------------------------------------------------------------------------------


def _scaled(value: float, steps: Sequence[tuple[float, str]]) -> str:
    for factor, suffix in steps:
        if abs(value) >= factor:
            return f"{value / factor:.3g} {suffix}".rstrip()
    factor, suffix = steps[-1]
    return f"{value / factor:.3g} {suffix}".rstrip()


def format_value(value: float, unit: str) -> str:
    """A number as Grafana would show it in `unit` (the subset the generated dashboards use)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    if unit == "percentunit":
        return f"{value * 100:.3g} %"
    if unit == "percent":
        return f"{value:.3g} %"
    if unit == "s":
        return _scaled(
            value,
            [(86400, "d"), (3600, "h"), (60, "min"), (1, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")],
        )
    if unit == "ms":
        return format_value(value / 1000, "s")
    if unit == "µs":
        return format_value(value / 1e6, "s")
    if unit in ("bytes", "Bps"):
        suffix = "/s" if unit == "Bps" else ""
        return _scaled(
            value,
            [(2**30, "GiB" + suffix), (2**20, "MiB" + suffix), (2**10, "KiB" + suffix), (1, "B" + suffix)],
        )
    if unit in ("ops", "reqps", "cps"):
        return _scaled(value, [(1e6, "M/s"), (1e3, "K/s"), (1, "/s")])
    return (
        _scaled(value, [(1e9, "B"), (1e6, "M"), (1e3, "K"), (1, "")]) if abs(value) >= 1 else f"{value:.3g}"
    )


def axis_caption(panel: Mapping[str, Any]) -> str:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    unit = str(defaults.get("unit") or "short")
    label = str((defaults.get("custom") or {}).get("axisLabel") or "")
    shown = {"percentunit": "%", "short": "", "none": "", "Bps": "bytes/s", "s": "seconds"}.get(unit, unit)
    if label and shown and shown not in label:
        return f"{label} ({shown})"
    return label or shown


# --- queries -----------------------------------------------------------------------------------


def rate_interval(step_s: float, scrape_s: float) -> str:
    """Grafana's `$__rate_interval`: max(interval + scrape interval, 4 * scrape interval)."""
    return f"{int(max(step_s + scrape_s, 4 * scrape_s))}s"


def variable_values(dashboard: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Values for the dashboard's variables: given ones, else the current one (`All` → `.*`)."""
    values: dict[str, str] = {}
    for var in (dashboard.get("templating") or {}).get("list", []):
        name = str(var.get("name"))
        current = var.get("current") or {}
        value = current.get("value") if isinstance(current, Mapping) else None
        if isinstance(value, list):
            value = "|".join(str(v) for v in value)
        if value in (None, "", "$__all") or var.get("type") == "datasource":
            value = str(var.get("allValue") or ".*")
        values[name] = str(value)
    values.update(given)
    return values


def expand(expr: str, values: Mapping[str, str], rate: str) -> str:
    """The PromQL Grafana would send: `$__rate_interval` and every `$var` / `${var}` replaced."""
    expr = expr.replace("$__rate_interval", rate).replace("${__rate_interval}", rate)
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    return substitute(expr)


def legend(template: str, series: Series, fallback: str) -> str:
    if not template:
        return ", ".join(f"{k}={v}" for k, v in sorted(series.labels.items()) if k != "__name__") or fallback
    text = _LEGEND.sub(lambda m: series.labels.get(m.group(1), ""), template).strip()
    return text or fallback


# --- drawing -----------------------------------------------------------------------------------


def _panels(dashboard: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for panel in dashboard.get("panels", []) or []:
        out.append(panel)
        out.extend(panel.get("panels", []) or [])
    return out


@dataclass(frozen=True, slots=True)
class _Cell:
    """A panel's place on the page, in inches from the top left."""

    left: float
    top: float
    width: float
    height: float


class _Page:
    """The figure and the inch arithmetic of Grafana's grid (24 columns, rows of fixed height)."""

    WIDTH_IN, ROW_IN, HEADER_IN, GAP_IN = 22.0, 0.42, 0.8, 0.06

    def __init__(self, rows: int) -> None:
        import matplotlib.pyplot as plt

        self.height = self.HEADER_IN + rows * self.ROW_IN + 0.1
        self.fig = plt.figure(figsize=(self.WIDTH_IN, self.height), dpi=80, facecolor=_BG)

    def cell(self, grid: Mapping[str, int]) -> _Cell:
        col = self.WIDTH_IN / GRID_COLUMNS
        return _Cell(
            grid["x"] * col + self.GAP_IN,
            self.HEADER_IN + grid["y"] * self.ROW_IN + self.GAP_IN,
            grid["w"] * col - 2 * self.GAP_IN,
            grid["h"] * self.ROW_IN - 2 * self.GAP_IN,
        )

    def x(self, inches: float) -> float:
        return inches / self.WIDTH_IN

    def y(self, inches_from_top: float) -> float:
        return 1 - inches_from_top / self.height

    def text(self, left_in: float, top_in: float, text: str, **kw: Any) -> None:
        self.fig.text(self.x(left_in), self.y(top_in), text, **kw)

    def background(self, cell: _Cell) -> None:
        from matplotlib.patches import Rectangle

        self.fig.patches.append(
            Rectangle(
                (self.x(cell.left), self.y(cell.top + cell.height)),
                self.x(cell.width),
                cell.height / self.height,
                transform=self.fig.transFigure,
                facecolor=_PANEL,
                edgecolor=_GRID,
                linewidth=0.8,
                zorder=-1,
            )
        )

    def axes(self, left: float, top: float, width: float, height: float) -> Any:
        return self.fig.add_axes(
            (self.x(left), self.y(top + height), self.x(width), height / self.height), facecolor=_PANEL
        )


def _with_gaps(series: Series, step: float) -> tuple[list[dt.datetime], list[float]]:
    """Times and values with a NaN wherever samples are missing, so lines break instead of bridging."""
    times: list[dt.datetime] = []
    values: list[float] = []
    previous: float | None = None
    for t, v in zip(series.times, series.values, strict=True):
        if previous is not None and t - previous > 1.5 * step:
            times.append(_utc(previous + step))
            values.append(math.nan)
        times.append(_utc(t))
        values.append(v)
        previous = t
    return times, values


def _query_panel(
    panel: Mapping[str, Any],
    url: str,
    values: Mapping[str, str],
    rate: str,
    window: tuple[float, float, float],
) -> tuple[PanelResult, list[tuple[str, Series]]]:
    title = str(panel.get("title", ""))
    outcome = PanelResult(title, str(panel.get("type")))
    drawn: list[tuple[str, Series]] = []
    start, end, step = window
    for target in panel.get("targets", []) or []:
        expr = expand(str(target.get("expr", "")), values, rate)
        try:
            found = query_range(url, expr, start, end, step)
        except PrometheusError as exc:  # shown on the panel; the other panels still render
            outcome.errors.append(str(exc))
            continue
        for series in found:
            drawn.append((legend(str(target.get("legendFormat", "")), series, title), series))
    outcome.series = sum(1 for _, s in drawn if any(math.isfinite(v) for v in s.values))
    return outcome, drawn


def _draw_timeseries(
    page: _Page,
    cell: _Cell,
    panel: Mapping[str, Any],
    drawn: Sequence[tuple[str, Series]],
    step: float,
    window: tuple[float, float],
) -> None:
    import matplotlib.dates as mdates
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    unit = str(((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit") or "short")
    shown = list(drawn[:_MAX_SERIES])
    ncol = max(1, min(len(drawn), int(cell.width / 1.9)))
    legend_rows = math.ceil((len(shown) + (1 if len(drawn) > len(shown) else 0)) / ncol)
    legend_h = 0.17 * legend_rows + 0.06
    left, right, top, bottom = 0.85, 0.15, 0.36, 0.3 + legend_h
    ax = page.axes(cell.left + left, cell.top + top, cell.width - left - right, cell.height - top - bottom)
    for i, (name, series) in enumerate(shown):
        times, values = _with_gaps(series, step)
        plotted: Any = times
        ax.plot(plotted, values, color=_COLOURS[i % len(_COLOURS)], linewidth=1.4, label=name)
    start, end = window
    ax.set_xlim(_utc(start), _utc(end))
    most = max(4, int(cell.width / 1.3))
    locator = mdates.AutoDateLocator(tz=_UTC, minticks=3, maxticks=most)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    fmt = "%H:%M:%S" if end - start < 900 else "%H:%M"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz=_UTC))  # type: ignore[no-untyped-call]
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos, u=unit: format_value(v, u)))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=max(3, int((cell.height - top - bottom) / 0.35))))
    ax.set_ylabel(axis_caption(panel), color=_MUTED, fontsize=9)
    ax.tick_params(colors=_MUTED, labelsize=8)
    ax.grid(color=_GRID, linewidth=0.6)
    for spine in ax.spines.values():
        spine.set_visible(False)
    low, high = ax.get_ylim()
    if unit == "percentunit":
        ax.set_ylim(min(0.0, low), max(1.0, high))
    elif low >= 0 or (low < 0 and all(v >= 0 for _, s in shown for v in s.values if not math.isnan(v))):
        ax.set_ylim(0.0, high if high > 0 else 1.0)
    handles, labels = ax.get_legend_handles_labels()
    if len(drawn) > len(shown):
        labels[-1] += f"   (+{len(drawn) - len(shown)} more series)"
    page.fig.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(page.x(cell.left + 0.1), page.y(cell.top + cell.height - legend_h)),
        bbox_transform=page.fig.transFigure,
        ncol=ncol,
        fontsize=8,
        frameon=False,
        labelcolor=_TEXT,
        handlelength=1.2,
        borderaxespad=0.0,
        columnspacing=1.2,
    )


def _draw_stat(
    page: _Page, cell: _Cell, panel: Mapping[str, Any], drawn: Sequence[tuple[str, Series]]
) -> None:
    unit = str(((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit") or "short")
    cells = list(drawn[:8])
    size = 24 if len(cells) < 4 else 17
    for i, (name, series) in enumerate(cells):
        last = next((v for v in reversed(series.values) if not math.isnan(v)), math.nan)
        centre = cell.left + cell.width * (i + 0.5) / len(cells)
        middle = cell.top + 0.3 + (cell.height - 0.3) * 0.45
        colour = _COLOURS[i % len(_COLOURS)]
        page.text(
            centre,
            middle,
            format_value(last, unit),
            color=colour,
            fontsize=size,
            weight="bold",
            ha="center",
            va="center",
        )
        caption = name if len(cells) > 1 or name != panel.get("title") else axis_caption(panel)
        if caption:
            page.text(centre, middle + 0.38, caption, color=_MUTED, fontsize=9, ha="center", va="center")


def render_dashboard(
    dashboard: Mapping[str, Any],
    png: Path,
    prometheus_url: str,
    *,
    range_s: float = 1800.0,
    end: float | None = None,
    scrape_s: float = 15.0,
    given: Mapping[str, str] | None = None,
) -> RenderResult:
    """Query every target of `dashboard` over the last `range_s` seconds and draw it into `png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = time.time() if end is None else end
    start = end - range_s
    step = max(1.0, math.ceil(range_s / 240))
    rate = rate_interval(step, scrape_s)
    values = variable_values(dashboard, given or {})
    panels = _panels(dashboard)
    rows = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels if "gridPos" in p), default=1)
    page = _Page(rows)
    page.text(
        0.15, 0.38, str(dashboard.get("title", "")), color=_TEXT, fontsize=20, weight="bold", va="center"
    )
    chosen = ", ".join(f"{k}={v}" for k, v in sorted(values.items()) if k != "datasource")
    first, last = time.gmtime(start), time.gmtime(end)
    when = f"{time.strftime('%Y-%m-%d %H:%M:%S', first)} to {time.strftime('%H:%M:%S UTC', last)}"
    page.text(
        page.WIDTH_IN - 0.15,
        0.38,
        f"{when}   ·   {prometheus_url}   ·   {chosen}",
        color=_MUTED,
        fontsize=10,
        ha="right",
        va="center",
    )
    result = RenderResult(str(dashboard.get("title", "")), png)
    for panel in panels:
        grid = panel.get("gridPos")
        if not grid:
            continue
        kind = str(panel.get("type"))
        title = str(panel.get("title", ""))
        cell = page.cell(grid)
        if kind == "row":
            page.text(
                cell.left,
                cell.top + cell.height / 2,
                title,
                color=_TEXT,
                fontsize=13,
                weight="bold",
                va="center",
            )
            continue
        outcome, drawn = _query_panel(panel, prometheus_url, values, rate, (start, end, step))
        result.panels.append(outcome)
        page.background(cell)
        page.text(
            cell.left + 0.12, cell.top + 0.2, title, color=_TEXT, fontsize=11, weight="bold", va="center"
        )
        if kind not in ("timeseries", "stat"):
            why = f"panel type {kind!r} is not drawn here"
        elif outcome.errors and not drawn:
            why = "; ".join(outcome.errors)[:160]
        elif not outcome.series:
            why = "No data"
        elif kind == "timeseries":
            _draw_timeseries(page, cell, panel, drawn, step, (start, end))
            continue
        else:
            _draw_stat(page, cell, panel, drawn)
            continue
        page.text(
            cell.left + cell.width / 2,
            cell.top + cell.height / 2,
            why,
            color=_MUTED,
            fontsize=12,
            ha="center",
            va="center",
        )
    png.parent.mkdir(parents=True, exist_ok=True)
    page.fig.savefig(png, facecolor=_BG)
    plt.close(page.fig)
    return result


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=_UTC)
