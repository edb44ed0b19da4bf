"""`knhk-otel generate`: render code and docs from the registry, or (`--check`) report what is stale."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from knhk_otel.codegen import CodegenError, builtin_names, generate_target, load_target, target_dirs
from knhk_otel.commands.output_paths import OutputPathError, check_output_folder
from knhk_otel.commands.registry_input import add_registry_arguments, checked_registry
from knhk_otel.schema.model import ResolvedRegistry

NAME = "generate"
HELP = "generate typed Python helpers, docs (and other targets) from the registry; --check finds stale files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets", nargs="*", metavar="TARGET", help="targets to render (default: all built-in)"
    )
    add_registry_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
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


def _display(registry: ResolvedRegistry, root: Path) -> str:
    """How generated headers name the registry: its manifest name and version, never a local path."""
    manifest = registry.manifest
    if manifest is None:
        return root.resolve().name
    return f"{manifest.name} {manifest.semconv_version}" if manifest.semconv_version else manifest.name


def _refresh_command(args: argparse.Namespace) -> str:
    """The exact `knhk-otel generate` call (same targets, registry, output, templates, params) that
    rewrites what `--check` found stale."""
    words = ["knhk-otel", "generate", *args.targets]
    if args.registry != "schema":
        words += ["-r", args.registry]
    if args.output:
        words += ["-o", args.output]
    for folder in args.templates:
        words += ["-t", folder]
    for item in args.param:
        words += ["-D", item]
    if args.params:
        words += ["--params", args.params]
    return shlex.join(words)


def _looks_like_a_folder(name: str) -> bool:
    return "/" in name or os.sep in name or name in (".", "..") or Path(name).is_dir()


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.params:
        try:
            loaded = yaml.safe_load(Path(args.params).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CodegenError(f"{args.params}: error[params]: cannot read: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise CodegenError(
                f"{args.params}: error[params]: not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset "
                f"{exc.start}); save the file as UTF-8"
            ) from exc
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
    targets = target_dirs([Path(t) for t in args.templates])
    names: list[str] = list(args.targets) or builtin_names()
    unknown = [n for n in names if n not in targets]
    folders = [n for n in unknown if _looks_like_a_folder(n)]
    if folders:
        known = [n for n in names if n in targets]
        raise CodegenError(
            f"knhk-otel generate: error[unknown_target]: {folders[0]} is not a target but a folder; "
            f"targets are names ({', '.join(sorted(targets))}) and the output folder is given with -o: "
            + shlex.join(["knhk-otel", "generate", *known, "-o", folders[0]])
        )
    if unknown:
        raise CodegenError(
            f"knhk-otel generate: error[unknown_target]: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(targets))})"
        )
    params = _params(args)
    if args.output and not args.check:
        try:
            check_output_folder(args.output, "-o")
        except OutputPathError as exc:
            raise CodegenError(f"knhk-otel generate: {exc}") from exc
    root = Path(args.registry)
    registry = checked_registry(NAME, args)
    if registry is None:
        return 1
    display = _display(registry, root)
    stale: list[str] = []
    loaded = [load_target(targets[name]) for name in names]  # only the targets asked for
    for target in loaded:
        name = target.name
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
            continue
        for change in changes:
            verb = "deleted" if change.kind == "extra" else "wrote"
            print(f"{verb} {change.path.as_posix()}")
        written = sum(1 for c in changes if c.kind != "extra")
        deleted = len(changes) - written
        state = f"{written} written, {deleted} deleted" if changes else "up to date"
        print(f"knhk-otel generate: {name} -> {out_dir.as_posix()}: {state}")
    if stale:
        for line in stale:
            print(line)
        print(
            f"knhk-otel generate: {len(stale)} file(s) out of date; refresh them with: "
            f"{_refresh_command(args)}",
            file=sys.stderr,
        )
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except CodegenError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1
