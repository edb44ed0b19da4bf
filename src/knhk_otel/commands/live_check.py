"""`knhk-otel live-check`: validate telemetry received over OTLP (gRPC, HTTP) or read from a file."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from knhk_otel.commands.output_paths import OutputPathError, check_output_file, check_output_folder
from knhk_otel.commands.registry_input import add_registry_arguments, checked_registry
from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.advice import AdvicePolicies, AdvicePolicyError
from knhk_otel.validate.expectations import ALL_OWN, ExpectationError, Expected, load_expected
from knhk_otel.validate.report import FORMATS, fails, render
from knhk_otel.validate.samples import Batch, SampleFormatError, from_json_document
from knhk_otel.validate.server import Checker, LiveCheck, LiveCheckOptions

NAME = "live-check"
HELP = "Validate emitted telemetry (OTLP gRPC/HTTP receivers or a JSON file) against the registry."

_log = logging.getLogger(__name__)

# Exit codes (docs/findings.md). When several apply, the first of 2, 3, 1, 4 wins; stderr names all.
EXIT_OK = 0
EXIT_FINDINGS = 1  # a finding at or above --fail-on
EXIT_USAGE = 2  # bad arguments, registry or input: one line, no report
EXIT_NO_SAMPLES = 3  # no span, metric point, event or log record arrived: nothing was judged
EXIT_MISSING_SIGNALS = 4  # --expect-signals: a listed span, metric or event never arrived


class UserError(Exception):
    """One line for the user, exit code 2."""


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535; 0 picks a free one)")
    return port


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text} must be a finite number of seconds >= 0 (0 = never)")
    return value


def _positive_bytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be a positive number of bytes")
    return value


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an IP address to listen on (e.g. 127.0.0.1, ::1, 0.0.0.0)"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser)
    parser.add_argument(
        "--input-source",
        default="otlp",
        help="`otlp` (default: run the receivers), `stdin`, or a file: OTLP JSON, JSON lines, a sample array",
    )
    parser.add_argument(
        "--address", type=_address, default="127.0.0.1", help="IP address every listener binds to"
    )
    parser.add_argument(
        "--otlp-grpc-port", type=_port, default=4317, help="OTLP/gRPC port (0 = pick a free one)"
    )
    parser.add_argument(
        "--otlp-http-port", type=_port, default=4318, help="OTLP/HTTP port (0 = pick a free one)"
    )
    parser.add_argument("--admin-port", type=_port, default=4320, help="admin port: GET /health, POST /stop")
    parser.add_argument(
        "--inactivity-timeout", type=_seconds, default=0.0, help="stop after S seconds idle (0 = never)"
    )
    parser.add_argument(
        "--max-payload-bytes",
        type=_positive_bytes,
        default=16 * 1024 * 1024,
        help="largest request accepted",
    )
    parser.add_argument(
        "--advice-policies",
        metavar="DIR",
        help="Weaver `live_check_advice` Rego policies (a folder of .rego files, or one) run on every "
        "sample in place of the default advice (as in Weaver); needs the 'rego' extra",
    )
    parser.add_argument(
        "--ports-file", metavar="FILE", help="write the bound ports as JSON to this file once listening"
    )
    parser.add_argument("--format", choices=FORMATS, default="ansi", help="report format")
    parser.add_argument(
        "-o", "--output", metavar="DIR", help="folder to write the report file into (instead of stdout)"
    )
    parser.add_argument(
        "--fail-on",
        choices=("violation", "improvement", "information", "none"),
        default="violation",
        help="exit 1 when a finding at or above this level was seen (default: violation)",
    )
    parser.add_argument(
        "--expect-signals",
        metavar="FILE|all-own",
        help="exit 4 unless every listed signal arrived: a file of `span|metric|event NAME` lines, or "
        f"`{ALL_OWN}` (every span, metric and event the registry itself defines)",
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
        try:
            path.write_text(text)
        except OSError as exc:  # checked at start-up, but the disk may have filled since: lose nothing
            print(
                f"knhk-otel live-check: cannot write {path} ({exc.strerror}); the report follows",
                file=sys.stderr,
            )
            sys.stdout.write(text)
            return
        st = report["statistics"]
        print(
            f"knhk-otel live-check: {st['total_samples']} samples, {st['total_findings']} findings "
            f"(highest: {st['highest_level'] or 'none'}); report in {path}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _read_input(source: str) -> tuple[str, str]:
    """The input text and how to name it; bytes that are not UTF-8 are a one-line error."""
    if source == "stdin":
        data, where = sys.stdin.buffer.read(), "<stdin>"
    else:
        path = Path(source)
        if path.is_dir():
            raise UserError(f"{path}: is a folder; --input-source takes a file, `stdin` or `otlp`")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror}") from exc
        where = str(path)
    try:
        return data.decode("utf-8"), where
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(
            f"{where}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "OTLP JSON is UTF-8"
        ) from exc


def advice_policies(registry: ResolvedRegistry, args: argparse.Namespace) -> AdvicePolicies | None:
    """The `--advice-policies` compiled once; a policy that does not compile is a usage error."""
    if not getattr(args, "advice_policies", None):
        return None
    try:
        return AdvicePolicies([args.advice_policies], registry)
    except AdvicePolicyError as exc:
        raise UserError(str(exc)) from exc


def _run_file(registry: ResolvedRegistry, args: argparse.Namespace) -> dict[str, Any]:
    text, where = _read_input(args.input_source)
    checker = Checker(registry, advice_policies(registry, args))
    try:
        batches = read_batches(text, where)
    except RecursionError:
        raise UserError(f"{where}: JSON nested too deeply to be telemetry") from None
    for batch in batches:
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
    live = LiveCheck(registry, options, advice_policies(registry, args))
    try:
        ports = live.start()
    except OSError as exc:
        raise UserError(f"cannot listen: {exc}") from exc
    try:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda _signum, _frame: live.request_stop())
        listening = " ".join(f"{k}={args.address}:{v}" for k, v in ports.items())
        print(f"knhk-otel live-check: listening {listening}", file=sys.stderr, flush=True)
        if args.ports_file:
            ports_file = Path(args.ports_file)
            ports_file.parent.mkdir(parents=True, exist_ok=True)
            ports_file.write_text(json.dumps(ports) + "\n")
        live.wait()
        return live.stop()
    finally:
        live.stop()
        live.close()


def received_samples(report: dict[str, Any]) -> int:
    """Spans, metric points, events, plain log records and attribute samples: resources alone are none."""
    st = report["statistics"]
    by_type: dict[str, int] = st["samples_by_type"]
    plain_logs: int = st["log_records_without_event"]
    return sum(n for kind, n in by_type.items() if kind != "resource") + plain_logs


def verdict(report: dict[str, Any], fail_on: str, expected: Expected | None) -> tuple[int, list[str]]:
    """The exit code and one line per reason the run fails beyond findings (docs/findings.md).

    Adds `statistics.expected_signals` to the report when signals were expected.
    """
    codes: list[int] = []
    lines: list[str] = []
    if not received_samples(report):
        codes.append(EXIT_NO_SAMPLES)
        lines.append(f"NO TELEMETRY received: nothing was judged (exit {EXIT_NO_SAMPLES})")
    if fails(report, fail_on):
        codes.append(EXIT_FINDINGS)
    if expected is not None:
        missing = expected.missing(report)
        report["statistics"]["expected_signals"] = {
            "source": expected.source,
            "listed": expected.count(),
            "missing": missing,
        }
        if missing:
            n = sum(len(names) for names in missing.values())
            listed = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in missing.items())
            codes.append(EXIT_MISSING_SIGNALS)
            lines.append(
                f"{n} of {expected.count()} EXPECTED SIGNALS NEVER ARRIVED ({expected.source}; "
                f"exit {EXIT_MISSING_SIGNALS}): {listed}"
            )
    return (codes[0] if codes else EXIT_OK), lines


def _check_outputs(args: argparse.Namespace) -> None:
    """Before a live-check that may run for hours: can its report and ports file be written?"""
    try:
        if args.output:
            check_output_folder(args.output, "-o")
        if args.ports_file:
            check_output_file(args.ports_file, "--ports-file")
    except OutputPathError as exc:
        raise UserError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    try:
        _check_outputs(args)
        registry = load_registry(args)
        expected = load_expected(args.expect_signals, registry) if args.expect_signals else None
        run_input = _run_live if args.input_source == "otlp" else _run_file
        report = run_input(registry, args)
    except (UserError, ExpectationError) as exc:
        if str(exc):
            print(f"knhk-otel live-check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    code, reasons = verdict(report, args.fail_on, expected)
    _emit(report, args)
    for line in reasons:
        print(f"knhk-otel live-check: {line}", file=sys.stderr)
    return code
