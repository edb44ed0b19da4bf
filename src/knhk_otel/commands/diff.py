"""`knhk-otel diff`: what changed between a registry and its baseline (informational, exit 0)."""

from __future__ import annotations

import argparse
import json

from knhk_otel.commands.registry_input import add_registry_arguments, checked_registry
from knhk_otel.diff import compute_diff, render_markdown, render_text

NAME = "diff"
HELP = "list attributes, metrics, spans and events added, removed, renamed, updated or obsoleted"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument(
        "--baseline-registry", required=True, metavar="DIR", help="the registry to compare with"
    )
    parser.add_argument(
        "--format", choices=("ansi", "json", "markdown"), default="ansi", help="output format"
    )


def run(args: argparse.Namespace) -> int:
    current = checked_registry(NAME, args)
    if current is None:
        return 1
    # the baseline is an older release: its syntax and semantics must hold, today's policies need not
    baseline = checked_registry(NAME, args, args.baseline_registry, policies=False)
    if baseline is None:
        return 1
    diff = compute_diff(current, baseline)
    if args.format == "json":
        print(json.dumps(diff, indent=2, sort_keys=True))
    elif args.format == "markdown":
        print(render_markdown(diff), end="")
    else:
        print(render_text(diff))
    return 0
