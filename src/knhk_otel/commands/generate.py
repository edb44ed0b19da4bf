"""`knhk-otel generate`: render code and docs from the registry, or (`--check`) report what is stale."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from knhk_otel.codegen import CodegenError, builtin_names, discover, generate_target

NAME = "generate"
HELP = "generate typed Python helpers, docs (and other targets) from the registry; --check finds stale files"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets", nargs="*", metavar="TARGET", help="targets to render (default: all built-in)"
    )
    parser.add_argument("-r", "--registry", default="schema", help="registry folder (default: schema)")
    parser.add_argument(
        "-o",
        "--output",
        help="output folder (default: each target's own; with several targets, DIR/<target>)",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 naming stale/missing/extra files"
    )
    parser.add_argument(
        "-t",
        "--templates",
        action="append",
        default=[],
        metavar="DIR",
        help="folder of target folders adding or overriding targets (repeatable)",
    )
    parser.add_argument(
        "-D",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter (YAML value)",
    )
    parser.add_argument("--params", metavar="FILE.yaml", help="YAML mapping of template parameters")


def _display(path: Path) -> str:
    """The registry path as generated headers show it: relative to the working directory, never absolute."""
    try:
        rel = os.path.relpath(path.resolve(), Path.cwd().resolve())
    except ValueError:
        rel = path.resolve().name
    if rel.startswith(".."):
        rel = path.resolve().name
    return Path(rel).as_posix()


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.params:
        try:
            loaded = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CodegenError(f"{args.params}: error[params]: cannot read: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise CodegenError(
                f"{args.params}: error[params]: invalid YAML: {exc}".replace("\n", " ")
            ) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise CodegenError(f"{args.params}: error[params]: must be a mapping of names to values")
        params.update(loaded or {})
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CodegenError(f"-D {item}: error[params]: expected KEY=VALUE")
        try:
            params[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            params[key.strip()] = value
    return params


def _run(args: argparse.Namespace) -> int:
    from knhk_otel.schema import load_and_resolve

    targets = discover([Path(t) for t in args.templates])
    names: list[str] = list(args.targets) or builtin_names()
    unknown = [n for n in names if n not in targets]
    if unknown:
        raise CodegenError(
            f"knhk-otel generate: error[unknown_target]: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(targets))})"
        )
    params = _params(args)
    root = Path(args.registry)
    registry, diagnostics = load_and_resolve(root)
    errors = [d for d in diagnostics if d.is_error]
    for diag in diagnostics:
        if not diag.is_error:
            log.warning("%s", diag.render())
    if registry is None or errors:
        for diag in errors or diagnostics:
            print(diag.render(), file=sys.stderr)
        if not errors:
            print(f"{root}: error[registry]: nothing could be loaded", file=sys.stderr)
        return 1
    display = _display(root)
    stale: list[str] = []
    for name in names:
        target = targets[name]
        if args.output:
            out_dir = Path(args.output) if len(names) == 1 else Path(args.output) / name
        elif target.output:
            out_dir = Path(target.output)
        else:
            raise CodegenError(
                f"{target.directory}/target.yaml: error[target_config]: no `output`; pass -o DIR"
            )
        changes = generate_target(
            target, registry, root, out_dir, registry_display=display, params=params, check=args.check
        )
        if args.check:
            stale.extend(c.render() for c in changes)
        else:
            log.info("%s: %d file(s) changed in %s", name, len(changes), out_dir)
    if stale:
        for line in stale:
            print(line)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except CodegenError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1
