"""`knhk-otel check`: run the check pipeline on a registry and print one line per diagnostic."""

from __future__ import annotations

import argparse
import sys

from knhk_otel.commands.registry_input import (
    add_registry_arguments,
    check_registry,
    diagnostic_stream,
    print_diagnostics,
)

NAME = "check"
HELP = "check a registry: syntax, semantics, policies and compatibility with a baseline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument(
        "--baseline-registry", metavar="DIR", help="check compatibility against this registry"
    )
    parser.add_argument(
        "--future",
        action="store_true",
        help="make our rules that are stricter than Weaver's (name format, stable signals using "
        "unstable attributes) errors instead of warnings",
    )


def run(args: argparse.Namespace) -> int:
    report = check_registry(args.registry, args, baseline=args.baseline_registry)
    print_diagnostics(report.diagnostics, args)
    fmt: str = args.diagnostic_format
    stream = diagnostic_stream(args)
    summary = report.summary()
    if fmt == "json":
        # the diagnostic stream stays one JSON object per line; the summary takes the other stream
        print(summary, file=sys.stderr if stream is sys.stdout else sys.stdout)
    elif fmt == "gh_workflow_command":
        print(f"::notice title=knhk-otel check::{summary}", file=stream)
    else:
        print(summary, file=stream)
    return 1 if report.errors else 0
