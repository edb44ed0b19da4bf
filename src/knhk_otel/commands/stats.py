"""`knhk-otel stats`: counts of what a registry defines, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys

from knhk_otel.schema import load_and_resolve
from knhk_otel.stats import compute_stats, render_text

NAME = "stats"
HELP = "count a registry's groups, attributes and signals by type, stability and deprecation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--registry", default="schema", help="registry folder (default: schema)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def run(args: argparse.Namespace) -> int:
    registry, diagnostics = load_and_resolve(args.registry)
    errors = [d for d in diagnostics if d.is_error]
    for d in errors:
        print(d.render(), file=sys.stderr)
    if registry is None or errors:
        print(f"knhk-otel stats: {args.registry} does not resolve; run `knhk-otel check`", file=sys.stderr)
        return 1
    stats = compute_stats(registry)
    if args.format == "json":
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        print(render_text(stats))
    return 0
