"""`knhk-otel`: parses the command line and hands each subcommand to its module in `commands/`.

Each command module exposes `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`. The
dispatcher turns anything that escapes into one line on stderr and exit code 2: users never see a
traceback (set KNHK_OTEL_DEBUG=1 to get one).

Conventions hold for every command, present and future, because they are applied here and not in
the modules: every `--help` shows defaults, `-v/--verbose` is accepted after the subcommand too,
and each command that takes `-r/--registry` is also `knhk-otel registry <command>` (Weaver's spelling).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from types import ModuleType
from typing import Any, NoReturn

#: Subcommand modules under knhk_otel.commands, in the order `--help` lists them.
COMMANDS: tuple[str, ...] = (
    "check",
    "resolve",
    "stats",
    "diff",
    "generate",
    "live_check",
    "dashboards",
    "emit",
)

#: `knhk-otel registry <command>`: Weaver's name for the commands that read a registry.
REGISTRY = "registry"


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"knhk_otel.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"knhk_otel.commands.{name}":
            return None  # not built yet in this checkout
        raise


class _HelpFormatter(argparse.HelpFormatter):
    """Appends `(default: X)` to every option whose default says something and whose help does not."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or default == []
            or not (action.option_strings or action.nargs in ("?", "*"))
        ):
            return action.help
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
        return f"{text} (default: {shown})"


class _Parser(argparse.ArgumentParser):
    """Every parser, nested subcommand parsers included (argparse makes them of the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """One line naming the command, the argument and what to do, instead of usage + error."""
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _version() -> str:
    try:
        return metadata.version("knhk-otel")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _add_command(sub: Any, module: ModuleType) -> argparse.ArgumentParser:
    cmd: argparse.ArgumentParser = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
    module.add_arguments(cmd)
    if "--verbose" not in cmd._option_string_actions:
        # SUPPRESS: absent after the subcommand, the top-level -v keeps its value
        cmd.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress to stderr"
        )
    return cmd


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = _Parser(
        prog="knhk-otel",
        description="Weaver-style telemetry schema toolchain for the KNHK mesh.",
    )
    parser.add_argument("--version", action="version", version=f"knhk-otel {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, ModuleType] = {}
    registry_modules: list[ModuleType] = []
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        cmd = _add_command(sub, module)
        modules[module.NAME] = module
        if "--registry" in cmd._option_string_actions:
            registry_modules.append(module)
    if registry_modules:
        names = "|".join(m.NAME for m in registry_modules)
        about = f"the registry commands under Weaver's spelling: knhk-otel registry {names} ..."
        reg = sub.add_parser(REGISTRY, help=about, description=about)
        reg.set_defaults(registry_help=reg.format_help)
        reg_sub = reg.add_subparsers(dest="registry_command", metavar="COMMAND")
        for module in registry_modules:
            _add_command(reg_sub, module)
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
    if args.command == REGISTRY:
        if args.registry_command is None:
            sys.stdout.write(args.registry_help())
            return 2
        args.command = args.registry_command
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
