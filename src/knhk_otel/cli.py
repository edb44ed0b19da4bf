"""`knhk-otel`: parses the command line and hands each subcommand to its module in `commands/`.

Each command module exposes `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`. The
dispatcher turns anything that escapes into one line on stderr and exit code 2: users never see a
traceback (set KNHK_OTEL_DEBUG=1 to get one).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType

#: Subcommand modules under knhk_otel.commands, in the order `--help` lists them.
COMMANDS: tuple[str, ...] = ("check", "resolve", "stats", "diff", "generate", "live_check")


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"knhk_otel.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"knhk_otel.commands.{name}":
            return None  # not built yet in this checkout
        raise


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = argparse.ArgumentParser(
        prog="knhk-otel",
        description="Weaver-style telemetry schema toolchain for the KNHK mesh.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, ModuleType] = {}
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        modules[module.NAME] = module
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="knhk-otel: %(levelname)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # the one place that turns a bug into a single line
        if os.environ.get("KNHK_OTEL_DEBUG"):
            raise
        print(f"knhk-otel {args.command}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
