"""`knhk-otel live-check`: validate telemetry received over OTLP (gRPC, HTTP) or read from a file."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from knhk_otel.commands.registry_input import add_registry_arguments, checked_registry
from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.report import FORMATS, fails, render
from knhk_otel.validate.samples import Batch, SampleFormatError, from_json_document
from knhk_otel.validate.server import Checker, LiveCheck, LiveCheckOptions

NAME = "live-check"
HELP = "Validate emitted telemetry (OTLP gRPC/HTTP receivers or a JSON file) against the registry."

_log = logging.getLogger(__name__)


class UserError(Exception):
    """One line for the user, exit code 2."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument(
        "--input-source",
        default="otlp",
        help="`otlp` (default: run the receivers), `stdin`, or a file: OTLP JSON, JSON lines, a sample array",
    )
    parser.add_argument("--address", default="127.0.0.1", help="address every listener binds to")
    parser.add_argument(
        "--otlp-grpc-port", type=int, default=4317, help="OTLP/gRPC port (0 = pick a free one)"
    )
    parser.add_argument(
        "--otlp-http-port", type=int, default=4318, help="OTLP/HTTP port (0 = pick a free one)"
    )
    parser.add_argument("--admin-port", type=int, default=4320, help="admin port: GET /health, POST /stop")
    parser.add_argument(
        "--inactivity-timeout", type=float, default=0.0, help="stop after S seconds idle (0 = never)"
    )
    parser.add_argument(
        "--max-payload-bytes", type=int, default=16 * 1024 * 1024, help="largest request accepted"
    )
    parser.add_argument("--ports-file", help="write the bound ports as JSON to this file once listening")
    parser.add_argument("--format", choices=FORMATS, default="ansi", help="report format")
    parser.add_argument("-o", "--output", help="directory to write the report file into (instead of stdout)")
    parser.add_argument(
        "--fail-on",
        choices=("violation", "improvement", "information", "none"),
        default="violation",
        help="exit 1 when a finding at or above this level was seen (default: violation)",
    )


def load_registry(args: argparse.Namespace) -> ResolvedRegistry:
    """The checked registry (the same checks as `knhk-otel check`; diagnostics printed)."""
    registry = checked_registry("live-check", args)
    if registry is None:
        raise UserError("")  # checked_registry has said why
    if not registry.groups:
        raise UserError(f"{args.registry}: the registry defines nothing (no YAML files with groups?)")
    return registry


def read_batches(text: str, where: str) -> list[Batch]:
    """A whole JSON document, or JSON lines (one OTLP request or sample per line)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
        lines = True
    else:
        lines = False
    try:
        if not lines:
            return [from_json_document(doc)]
        batches = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}:{n}: not JSON: {exc.msg} (column {exc.colno})") from exc
            try:
                batches.append(from_json_document(item))
            except SampleFormatError as exc:
                raise UserError(f"{where}:{n}: {exc}") from exc
        return batches
    except SampleFormatError as exc:
        raise UserError(f"{where}: {exc}") from exc


def _emit(report: dict[str, Any], args: argparse.Namespace) -> None:
    text = render(report, args.format, color=args.output is None and sys.stdout.isatty())
    if args.output:
        out_dir = Path(args.output)
        out_dir.mkdir(parents=True, exist_ok=True)
        ext = {"ansi": "txt", "json": "json", "jsonl": "jsonl"}[args.format]
        path = out_dir / f"live_check.{ext}"
        path.write_text(text)
        st = report["statistics"]
        print(
            f"knhk-otel live-check: {st['total_samples']} samples, {st['total_findings']} findings "
            f"(highest: {st['highest_level'] or 'none'}); report in {path}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _run_file(registry: ResolvedRegistry, args: argparse.Namespace) -> dict[str, Any]:
    if args.input_source == "stdin":
        text, where = sys.stdin.read(), "<stdin>"
    else:
        path = Path(args.input_source)
        try:
            text = path.read_text()
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror}") from exc
        where = str(path)
    checker = Checker(registry)
    for batch in read_batches(text, where):
        checker.add_batch(batch)
    return checker.report.build()


def _run_live(registry: ResolvedRegistry, args: argparse.Namespace) -> dict[str, Any]:
    options = LiveCheckOptions(
        address=args.address,
        grpc_port=args.otlp_grpc_port,
        http_port=args.otlp_http_port,
        admin_port=args.admin_port,
        inactivity_timeout=args.inactivity_timeout,
        max_payload_bytes=args.max_payload_bytes,
    )
    live = LiveCheck(registry, options)
    try:
        ports = live.start()
    except OSError as exc:
        raise UserError(f"{args.address}: cannot listen: {exc}") from exc
    try:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda _signum, _frame: live.request_stop())
        listening = " ".join(f"{k}={args.address}:{v}" for k, v in ports.items())
        print(f"knhk-otel live-check: listening {listening}", file=sys.stderr, flush=True)
        if args.ports_file:
            Path(args.ports_file).write_text(json.dumps(ports) + "\n")
        live.wait()
        return live.stop()
    finally:
        live.stop()
        live.close()


def run(args: argparse.Namespace) -> int:
    if args.max_payload_bytes <= 0:
        print("knhk-otel live-check: --max-payload-bytes must be positive", file=sys.stderr)
        return 2
    try:
        registry = load_registry(args)
        run_input = _run_live if args.input_source == "otlp" else _run_file
        report = run_input(registry, args)
    except UserError as exc:
        if str(exc):
            print(f"knhk-otel live-check: {exc}", file=sys.stderr)
        return 2
    _emit(report, args)
    return 1 if fails(report, args.fail_on) else 0
