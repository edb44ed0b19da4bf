"""`knhk-otel stats`: counts of what a registry defines, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from knhk_otel.commands.registry_input import add_registry_arguments, checked_registry
from knhk_otel.stats import compute_stats, render_text

NAME = "stats"
HELP = "count a registry's groups, attributes and signals by type, stability and deprecation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")


def run(args: argparse.Namespace) -> int:
    registry = checked_registry(NAME, args)
    if registry is None:
        return 1
    stats = compute_stats(registry)
    if args.format == "json":
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        print(render_text(stats))
    return 0
