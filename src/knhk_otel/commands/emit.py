"""`knhk-otel emit`: one sample of every span, metric and event of a registry, over OTLP."""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import urlparse

from knhk_otel.commands.registry_input import add_registry_arguments, checked_registry
from knhk_otel.runtime.config import PROTOCOLS, ConfigError, TelemetryConfig

NAME = "emit"
HELP = "emit one sample of every span, metric and event of the registry over OTLP (test a pipeline)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_registry_arguments(parser, policies=False)
    parser.add_argument(
        "--endpoint", help="OTLP endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4317/4318)"
    )
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, help="OTLP protocol (default: OTEL_EXPORTER_OTLP_PROTOCOL, grpc)"
    )
    parser.add_argument(
        "--service-name", default=None, help="service.name of the samples (default knhk-otel-emit)"
    )


def run(args: argparse.Namespace) -> int:
    from knhk_otel.emit import emit_registry
    from knhk_otel.runtime.providers import build_providers

    if args.endpoint is not None:
        url = urlparse(args.endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            print(
                f"knhk-otel emit: error: --endpoint {args.endpoint!r}: expected a URL like http://HOST:4317",
                file=sys.stderr,
            )
            return 2
    registry = checked_registry(NAME, args, policies=False)
    if registry is None:
        return 1
    # the exporters log each failed batch themselves; the one line below says it all
    logging.getLogger("opentelemetry.exporter").setLevel(logging.CRITICAL)
    logging.getLogger("knhk_otel.runtime.providers").setLevel(logging.ERROR)  # its bounded-shutdown note too
    try:
        config = TelemetryConfig.from_env(
            service_name=args.service_name or "knhk-otel-emit",
            otlp_endpoint=args.endpoint,
            otlp_protocol=args.protocol,
            validation="off",
            metrics_exporters=("otlp",),
        )
        telemetry = build_providers(config, registry)
    except ConfigError as exc:
        print(f"knhk-otel emit: error: {exc}", file=sys.stderr)
        return 2
    try:
        emitted = emit_registry(
            registry,
            telemetry.tracer_provider.get_tracer("knhk_otel.emit"),
            telemetry.meter_provider.get_meter("knhk_otel.emit"),
            telemetry.logger_provider.get_logger("knhk_otel.emit"),
        )
    finally:
        telemetry.shutdown()
    failed = telemetry.exports.counts
    where = f"{config.endpoint} ({config.otlp_protocol})"
    if failed:
        detail = ", ".join(f"{n} {s} batch(es)" for s, n in sorted(failed.items()))
        print(f"knhk-otel emit: error: export to {where} failed: {detail}", file=sys.stderr)
        return 1
    print(
        f"knhk-otel emit: {emitted.spans} spans, {emitted.metrics} metrics, {emitted.events} events "
        f"sent to {where}",
        file=sys.stderr,
    )
    return 0
