"""`knhk-otel diff`: what changed between a registry and its baseline (informational, exit 0)."""

from __future__ import annotations

import argparse
import json
import sys

from knhk_otel.diff import compute_diff, render_markdown, render_text
from knhk_otel.schema import load_and_resolve

NAME = "diff"
HELP = "list attributes, metrics, spans and events added, removed, renamed, updated or obsoleted"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--registry", default="schema", help="registry folder (default: schema)")
    parser.add_argument(
        "--baseline-registry", required=True, metavar="DIR", help="the registry to compare with"
    )
    parser.add_argument(
        "--format", choices=("ansi", "json", "markdown"), default="ansi", help="output format"
    )


def run(args: argparse.Namespace) -> int:
    current, current_diags = load_and_resolve(args.registry)
    baseline, baseline_diags = load_and_resolve(args.baseline_registry)
    errors = [d for d in (*current_diags, *baseline_diags) if d.is_error]
    for d in errors:
        print(d.render(), file=sys.stderr)
    if current is None or baseline is None or errors:
        print("knhk-otel diff: both registries must resolve; run `knhk-otel check`", file=sys.stderr)
        return 1
    diff = compute_diff(current, baseline)
    if args.format == "json":
        print(json.dumps(diff, indent=2, sort_keys=True))
    elif args.format == "markdown":
        print(render_markdown(diff), end="")
    else:
        print(render_text(diff))
    return 0
