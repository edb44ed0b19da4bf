"""`knhk-otel resolve`: prints the resolved registry (Weaver's resolved v1 shape) as YAML or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from knhk_otel.commands.output_paths import OutputPathError, check_output_file
from knhk_otel.commands.registry_input import add_registry_arguments, checked_registry

NAME = "resolve"
HELP = "check and resolve a registry (refs, extends, imports) and print it as YAML or JSON"

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument("-f", "--format", choices=("yaml", "json"), default="yaml", help="output format")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def run(args: argparse.Namespace) -> int:
    if args.output:
        try:
            check_output_file(args.output, "-o")
        except OutputPathError as exc:
            print(f"knhk-otel resolve: {exc}", file=sys.stderr)
            return 2
    registry = checked_registry(NAME, args)
    if registry is None:
        return 1
    data = registry.to_dict()
    if args.format == "json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    else:
        text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    if args.output:
        try:
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"knhk-otel resolve: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0
