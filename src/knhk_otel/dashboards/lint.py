"""Lint Grafana dashboards the way Grafana's dashboard-linter does, plus grid and id checks of our own.

Rules (ids after the linter's): template-datasource-rule, template-job-rule, template-instance-rule,
template-label-promql-rule, template-on-time-change-reload-rule, panel-datasource-rule,
panel-title-description-rule, panel-units-rule, panel-no-targets-rule, target-promql-rule,
target-rate-interval-rule, target-job-rule, target-instance-rule, target-counter-agg-rule,
dashboard-uid-rule, panel-id-rule, grid-bounds-rule. Every PromQL expression is parsed with
promql-parser after Grafana's macros and variables are substituted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser

GRID_COLUMNS = 24
#: What `$__rate_interval` becomes before parsing: an odd duration nobody writes, so the
#: rate-interval rule can tell the macro from a hard-coded range after parsing.
RATE_SENTINEL = "7777s"
_MACROS = {
    "$__rate_interval": RATE_SENTINEL,
    "${__rate_interval}": RATE_SENTINEL,
    "$__interval_ms": "15000",
    "${__interval_ms}": "15000",
    "$__interval": "15s",
    "${__interval}": "15s",
    "$__range_s": "3600",
    "$__range_ms": "3600000",
    "$__range": "1h",
    "${__range}": "1h",
}
_RATE_RANGE = promql_parser.parse_duration(RATE_SENTINEL)
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}?")
_RATE_FUNCS = {"rate", "irate", "increase"}
_DS_REFS = {"$datasource", "${datasource}"}

#: Grafana unit ids (the common ones; custom `suffix:`/`prefix:` units are accepted too).
_UNIT_TEXT = """
none short percent percentunit humidity dB hex0x hex sci locale pixel
ns µs ms s m h d dtdurationms dtdurations dthms dtdhms timeticks clockms clocks
bits bytes kbytes mbytes gbytes tbytes decbits decbytes deckbytes decmbytes decgbytes
bps Bps binbps binBps KBs Kbits MBs Mbits GBs Gbits pps
ops reqps rps wps iops cps opm rpm wpm cpm hertz rothz
"""
GRAFANA_UNITS = frozenset(_UNIT_TEXT.split())


@dataclass(frozen=True, slots=True)
class LintFinding:
    file: str
    rule: str
    where: str  # panel / variable / target the finding is about
    message: str

    def render(self) -> str:
        return f"{self.file}: {self.rule}: {self.where}: {self.message}"


def substitute(expr: str, values: Mapping[str, str] | None = None) -> str:
    """PromQL as Prometheus would receive it: macros replaced, variables outside quotes replaced by
    their value (or `1`); variables inside label-matcher strings stay (they are only text there)."""
    for macro, value in _MACROS.items():
        expr = expr.replace(macro, value)
    parts = expr.split('"')
    for i in range(0, len(parts), 2):  # even parts are outside double quotes
        parts[i] = _VARIABLE.sub(lambda m: (values or {}).get(m.group(1), "1"), parts[i])
    return '"'.join(parts)


def parse(expr: str, values: Mapping[str, str] | None = None) -> Any:
    """The promql-parser AST of a Grafana expression; ValueError when it does not parse."""
    return promql_parser.parse(substitute(expr, values))


def _children(node: Any) -> list[Any]:
    kind = type(node).__name__
    if kind == "AggregateExpr":
        return [c for c in (node.expr, node.param) if c is not None]
    if kind == "BinaryExpr":
        return [node.lhs, node.rhs]
    if kind == "Call":
        return list(node.args)
    if kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
        return [node.expr]
    if kind == "MatrixSelector":
        return [node.vector_selector]
    return []


def _walk(node: Any, in_rate: bool = False) -> Iterator[tuple[Any, bool]]:
    """Every node with whether it sits inside rate()/irate()/increase()."""
    yield node, in_rate
    inside = in_rate or (type(node).__name__ == "Call" and node.func.name in _RATE_FUNCS)
    for child in _children(node):
        yield from _walk(child, inside)


def _matchers(selector: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in selector.matchers.matchers:
        out[m.name] = m.value
    return out


def check_expression(
    expr: str, counters: frozenset[str] = frozenset(), values: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """(rule, message) pairs for one PromQL target expression."""
    try:
        tree = parse(expr, values)
    except (ValueError, TypeError) as exc:
        return [("target-promql-rule", f"does not parse: {exc} in {expr!r}")]
    problems: list[tuple[str, str]] = []
    for node, in_rate in _walk(tree):
        kind = type(node).__name__
        if kind == "Call" and node.func.name in _RATE_FUNCS:
            for arg in node.args:
                if type(arg).__name__ == "MatrixSelector" and arg.range != _RATE_RANGE:
                    problems.append(
                        ("target-rate-interval-rule", f"{node.func.name}() should use [$__rate_interval]")
                    )
        if kind == "VectorSelector":
            name = node.name or ""
            is_counter = name in counters or name.endswith("_total")
            if name and is_counter and not in_rate:
                problems.append(
                    ("target-counter-agg-rule", f"counter {name} must be inside rate()/irate()/increase()")
                )
            matchers = _matchers(node)
            if matchers.get("job") != "$job":
                problems.append(("target-job-rule", f'{name or "selector"} lacks job=~"$job"'))
            if matchers.get("instance") != "$instance":
                problems.append(("target-instance-rule", f'{name or "selector"} lacks instance=~"$instance"'))
    return problems


def _variables(dashboard: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    templating = dashboard.get("templating") or {}
    return {str(v.get("name")): v for v in templating.get("list", []) if isinstance(v, Mapping)}


def _variable_values(variables: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, var in variables.items():
        current = var.get("current") or {}
        value = current.get("value") if isinstance(current, Mapping) else None
        if isinstance(value, str) and re.fullmatch(r"-?[0-9.]+", value):
            values[name] = value
    return values


def _check_query_variable(var: Mapping[str, Any], name: str) -> Iterator[tuple[str, str]]:
    if var.get("type") != "query":
        yield (f"template-{name}-rule", f"`{name}` must be a query variable")
        return
    ds = var.get("datasource") or {}
    if not isinstance(ds, Mapping) or ds.get("uid") not in _DS_REFS:
        yield (f"template-{name}-rule", f"`{name}` must query the `$datasource` variable")
    if not var.get("multi") or not var.get("includeAll"):
        yield (f"template-{name}-rule", f"`{name}` should allow several values and All")


def _panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in dashboard.get("panels", []) or []:
        yield panel
        if panel.get("type") == "row":
            yield from panel.get("panels", []) or []


def _overlaps(boxes: Sequence[tuple[str, int, int, int, int]]) -> Iterator[tuple[str, str]]:
    for i, (a, ax, ay, aw, ah) in enumerate(boxes):
        for b, bx, by, bw, bh in boxes[i + 1 :]:
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                yield a, b


def lint_dashboard(
    file: str, dashboard: Mapping[str, Any], counters: frozenset[str] = frozenset()
) -> list[LintFinding]:
    """Every finding of one dashboard (an empty list when it is clean)."""
    out: list[LintFinding] = []

    def add(rule: str, where: str, message: str) -> None:
        out.append(LintFinding(file, rule, where, message))

    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        add("dashboard-uid-rule", "dashboard", f"uid {uid!r} must be 1-40 letters, digits, - or _")
    if not dashboard.get("title"):
        add("panel-title-description-rule", "dashboard", "dashboard has no title")
    variables = _variables(dashboard)
    ds = variables.get("datasource")
    if ds is None or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        add("template-datasource-rule", "templating", "needs a `datasource` variable of type prometheus")
    for name in ("job", "instance"):
        if name not in variables:
            add(f"template-{name}-rule", "templating", f"needs a `{name}` variable")
        else:
            for rule, message in _check_query_variable(variables[name], name):
                add(rule, f"variable {name}", message)
    values = _variable_values(variables)
    for name, var in variables.items():
        if var.get("type") != "query":
            continue
        if var.get("refresh") != 2:
            add(
                "template-on-time-change-reload-rule",
                f"variable {name}",
                "should refresh on time range change",
            )
        query = var.get("query")
        text = query.get("query") if isinstance(query, Mapping) else query
        match = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", str(text or ""))
        if not match:
            add(
                "template-label-promql-rule",
                f"variable {name}",
                f"expected label_values(expr, label): {text!r}",
            )
            continue
        try:
            parse(match.group(1), values)
        except (ValueError, TypeError) as exc:
            add("template-label-promql-rule", f"variable {name}", f"does not parse: {exc}")
    ids: dict[int, str] = {}
    boxes: list[tuple[str, int, int, int, int]] = []
    for panel in _panels(dashboard):
        title = str(panel.get("title") or "")
        where = f"panel {panel.get('id')} {title!r}"
        pid = panel.get("id")
        if not isinstance(pid, int):
            add("panel-id-rule", where, "panel has no integer id")
        elif pid in ids:
            add("panel-id-rule", where, f"id {pid} is also used by {ids[pid]}")
        else:
            ids[pid] = where
        grid = panel.get("gridPos") or {}
        x, y, w, h = (grid.get(k) for k in ("x", "y", "w", "h"))
        if not all(isinstance(v, int) for v in (x, y, w, h)):
            add("grid-bounds-rule", where, "gridPos needs integer x, y, w, h")
        else:
            assert isinstance(x, int) and isinstance(y, int) and isinstance(w, int) and isinstance(h, int)
            if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > GRID_COLUMNS:
                add("grid-bounds-rule", where, f"gridPos x={x} w={w} y={y} h={h} leaves the 24-column grid")
            boxes.append((where, x, y, w, h))
        if not title:
            add("panel-title-description-rule", where, "panel has no title")
        if panel.get("type") == "row":
            continue
        if not panel.get("description"):
            add("panel-title-description-rule", where, "panel has no description")
        pds = panel.get("datasource") or {}
        if not isinstance(pds, Mapping) or pds.get("uid") not in _DS_REFS:
            add("panel-datasource-rule", where, "panel must use the `$datasource` variable")
        unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        if not isinstance(unit, str) or not (
            unit in GRAFANA_UNITS or unit.startswith(("suffix:", "prefix:"))
        ):
            add("panel-units-rule", where, f"unit {unit!r} is not a Grafana unit")
        targets = panel.get("targets") or []
        if not targets:
            add("panel-no-targets-rule", where, "panel has no query")
        for target in targets:
            tds = target.get("datasource")
            if tds is not None and (not isinstance(tds, Mapping) or tds.get("uid") not in _DS_REFS):
                add("panel-datasource-rule", f"{where} target {target.get('refId')}", "target datasource")
            for rule, message in check_expression(str(target.get("expr", "")), counters, values):
                add(rule, f"{where} target {target.get('refId')}", message)
    for a, b in _overlaps(boxes):
        add("grid-bounds-rule", a, f"overlaps {b}")
    return out


def lint_files(paths: Iterable[Path], counters: frozenset[str] = frozenset()) -> list[LintFinding]:
    """Lint dashboard files; dashboard uids must also be unique across them."""
    out: list[LintFinding] = []
    uids: dict[str, str] = {}
    for path in paths:
        try:
            dashboard = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            out.append(LintFinding(str(path), "dashboard-json", "file", f"cannot read: {exc}"))
            continue
        if not isinstance(dashboard, dict):
            out.append(LintFinding(str(path), "dashboard-json", "file", "not a JSON object"))
            continue
        out.extend(lint_dashboard(str(path), dashboard, counters))
        uid = dashboard.get("uid")
        if isinstance(uid, str):
            if uid in uids:
                out.append(
                    LintFinding(
                        str(path), "dashboard-uid-rule", "dashboard", f"uid {uid} also in {uids[uid]}"
                    )
                )
            uids[uid] = str(path)
    return out
