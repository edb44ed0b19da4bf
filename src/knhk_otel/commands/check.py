"""`knhk-otel check`: run the check pipeline on a registry and print one line per diagnostic."""

from __future__ import annotations

import argparse
import sys

from knhk_otel.check.runner import run_checks

NAME = "check"
HELP = "check a registry: syntax, semantics, policies and compatibility with a baseline"

FORMATS = ("ansi", "json", "gh_workflow_command")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-r", "--registry", default="schema", help="registry folder (default: schema)")
    parser.add_argument(
        "-p",
        "--policy",
        action="append",
        default=[],
        metavar="FILE.py",
        help="extra policy file exposing POLICIES or policy_* functions (repeatable)",
    )
    parser.add_argument(
        "--baseline-registry", metavar="DIR", help="check compatibility against this registry"
    )
    parser.add_argument(
        "--diagnostic-format", choices=FORMATS, default="ansi", help="how each diagnostic is printed"
    )


def run(args: argparse.Namespace) -> int:
    report = run_checks(args.registry, args.policy, args.baseline_registry)
    fmt: str = args.diagnostic_format
    stream = sys.stdout
    for diagnostic in report.diagnostics:
        # json and gh_workflow_command escape line breaks; plain text folds them (a policy's
        # exception text may hold one), so every diagnostic stays one line
        print(" ".join(diagnostic.render(fmt).split("\n")), file=stream)
    summary = report.summary()
    if fmt == "json":
        print(summary, file=sys.stderr)  # stdout stays one JSON object per line
    elif fmt == "gh_workflow_command":
        print(f"::notice title=knhk-otel check::{summary}", file=stream)
    else:
        print(summary, file=stream)
    return 1 if report.errors else 0
