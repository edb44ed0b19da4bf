"""`knhk-otel dashboards`: lint Grafana dashboards, or render them to PNG from a live Prometheus."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

NAME = "dashboards"
HELP = "lint Grafana dashboards, or render each to a PNG with data from a live Prometheus"

_MISSING = (
    "knhk-otel dashboards: error[missing_dependency]: {what} needs {pkg}: pip install 'knhk-otel[dashboards]'"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    render = sub.add_parser("render", help="one PNG per dashboard, every query evaluated by Prometheus")
    render.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    render.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the PNG files")
    render.add_argument(
        "-d",
        "--dashboards",
        default="dashboards",
        metavar="DIR|FILE",
        help="dashboards (default: dashboards)",
    )
    render.add_argument("--range", default="30m", help="time range ending now (default 30m)")
    render.add_argument(
        "--scrape-interval",
        default="15s",
        help="Prometheus scrape interval, for $__rate_interval (default 15s)",
    )
    render.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="dashboard variable value (default: each variable's current value; All = .*)",
    )
    lint = sub.add_parser("lint", help="Grafana dashboard-linter rules, and Grafana's JSON Schemas if given")
    lint.add_argument("dashboards", nargs="?", default="dashboards", metavar="DIR|FILE")
    lint.add_argument(
        "--grafana-schemas", metavar="DIR", help="folder of Grafana's *.jsonschema.json to validate against"
    )


def _files(where: str) -> list[Path]:
    path = Path(where)
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(path.glob("*.json"))
        if found:
            return found
        raise ValueError(f"{where}: no *.json dashboards in this folder")
    raise ValueError(f"{where}: no such file or folder")


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(data, dict) or "panels" not in data:
        raise ValueError(f"{path}: not a Grafana dashboard (no `panels`)")
    return data


def _lint(args: argparse.Namespace) -> int:
    try:
        from knhk_otel.dashboards import lint
    except ModuleNotFoundError as exc:
        print(_MISSING.format(what="lint", pkg=exc.name), file=sys.stderr)
        return 2
    files = _files(args.dashboards)
    for path in files:
        _load(path)
    findings = [f.render() for f in lint.lint_files(files)]
    if args.grafana_schemas:
        from knhk_otel.dashboards.schemas import validate_dashboard

        schemas = Path(args.grafana_schemas)
        if not (schemas / "dashboard.jsonschema.json").is_file():
            raise ValueError(f"{schemas}: no dashboard.jsonschema.json here")
        for path in files:
            findings.extend(f"{path}: grafana-schema: {e}" for e in validate_dashboard(_load(path), schemas))
    for line in findings:
        print(line)
    print(f"{len(files)} dashboard(s), {len(findings)} finding(s)", file=sys.stderr)
    return 1 if findings else 0


def _render(args: argparse.Namespace) -> int:
    from knhk_otel.dashboards.prometheus import PrometheusError, check_ready

    if importlib.util.find_spec("matplotlib") is None:  # found, not loaded: rendering loads it
        print(_MISSING.format(what="render", pkg="matplotlib"), file=sys.stderr)
        return 2
    from knhk_otel.dashboards.render import parse_duration, render_dashboard

    range_s = parse_duration(args.range)
    scrape_s = parse_duration(args.scrape_interval)
    given: dict[str, str] = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--var {item}: expected NAME=VALUE")
        given[name.strip()] = value
    files = _files(args.dashboards)
    boards = [(path, _load(path)) for path in files]
    try:
        check_ready(args.prometheus)
    except PrometheusError as exc:
        print(f"knhk-otel dashboards render: error[prometheus]: {exc}", file=sys.stderr)
        return 1
    out = Path(args.output)
    for path, board in boards:
        result = render_dashboard(
            board, out / f"{path.stem}.png", args.prometheus, range_s=range_s, scrape_s=scrape_s, given=given
        )
        print(result.summary())
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _lint(args) if args.action == "lint" else _render(args)
    except ValueError as exc:
        print(f"knhk-otel dashboards {args.action}: error: {exc}", file=sys.stderr)
        return 1
