"""The registry a command reads: shared flags, one checked load, and where diagnostics are printed.

Every command that reads a registry runs the same checks as `knhk-otel check` (syntax, resolution,
semantics and, unless `--skip-policies`, policies) in one load+resolve, and refuses a registry with
errors after printing its diagnostics — a typo must never flow silently into generated code or a
live-check verdict. Diagnostics go to stderr unless `--diagnostic-stdout`, as Weaver does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

from knhk_otel.check.policies import DEFAULT_POLICIES
from knhk_otel.check.runner import CheckReport, run_checks
from knhk_otel.schema.diagnostics import Diagnostic
from knhk_otel.schema.model import ResolvedRegistry

DIAGNOSTIC_FORMATS = ("ansi", "json", "gh_workflow_command")


def add_registry_arguments(parser: argparse.ArgumentParser, *, policies: bool = True) -> None:
    """`-r/--registry`, the policy flags and the diagnostic flags, the same for every command."""
    parser.add_argument("-r", "--registry", default="schema", metavar="DIR", help="registry folder")
    if policies:
        parser.add_argument(
            "-p",
            "--policy",
            action="append",
            default=[],
            metavar="FILE.py|FILE.rego|DIR",
            help="extra policies (repeatable): a Python file exposing POLICIES or policy_* functions, "
            "or Weaver's Rego policies (a .rego file or a folder of them; needs the 'rego' extra)",
        )
        parser.add_argument(
            "--skip-policies",
            action="store_true",
            help="check syntax and semantics only, not the default or --policy policies",
        )
    add_diagnostic_arguments(parser)


def add_diagnostic_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--diagnostic-format",
        choices=DIAGNOSTIC_FORMATS,
        default="ansi",
        help="how each diagnostic is printed",
    )
    parser.add_argument(
        "--diagnostic-stdout",
        action="store_true",
        help="print diagnostics on stdout instead of stderr",
    )


def diagnostic_stream(args: argparse.Namespace) -> TextIO:
    return sys.stdout if getattr(args, "diagnostic_stdout", False) else sys.stderr


def print_diagnostics(diagnostics: Iterable[Diagnostic], args: argparse.Namespace) -> None:
    """One line per diagnostic: json and gh_workflow_command escape line breaks, plain text folds them."""
    fmt: str = getattr(args, "diagnostic_format", "ansi")
    stream = diagnostic_stream(args)
    for diagnostic in diagnostics:
        print(" ".join(diagnostic.render(fmt).split("\n")), file=stream)


def check_registry(
    root: str, args: argparse.Namespace, *, policies: bool = True, baseline: str | None = None
) -> CheckReport:
    """The full check of `root` (policies per the command's flags); prints nothing."""
    skip = not policies or getattr(args, "skip_policies", False)
    policy_files: Sequence[str] = () if skip else getattr(args, "policy", [])
    return run_checks(
        root,
        policy_files,
        baseline,
        default_policies=() if skip else DEFAULT_POLICIES,
        future=getattr(args, "future", False),
    )


def checked_registry(
    command: str, args: argparse.Namespace, root: str | None = None, *, policies: bool = True
) -> ResolvedRegistry | None:
    """The resolved registry when it checks without errors; else None, its diagnostics printed.

    Warnings are printed too, and do not refuse the registry.
    """
    where = root if root is not None else args.registry
    report = check_registry(where, args, policies=policies)
    print_diagnostics(report.diagnostics, args)
    if report.errors or report.registry is None:
        print(
            f"knhk-otel {command}: registry {where} has {report.errors} error(s); "
            f"nothing done (see `knhk-otel check -r {where}`)",
            file=sys.stderr,
        )
        return None
    return report.registry
