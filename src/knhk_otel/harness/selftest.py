"""Emit one of every span, metric and event of the generated helpers, over OTLP, then flush.

The telemetry a CI live-check judges before the mesh exists: it calls every `start_*`, every
metric class and every `emit_*` of `knhk_otel.semconv` with every argument filled (values made
from each parameter's type), so a helper that emits something its schema does not say shows up
as a finding. Providers come from OTEL_* (TelemetryConfig); run it with
OTEL_EXPORTER_OTLP_ENDPOINT pointing at `knhk-otel live-check`. Exit codes: 0 everything exported,
2 bad configuration, 3 an export failed (the SDK only logs that; this exits non-zero).
"""

from __future__ import annotations

import argparse
import enum
import importlib
import inspect
import logging
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from knhk_otel.runtime import strict
from knhk_otel.runtime.config import ConfigError, TelemetryConfig
from knhk_otel.runtime.providers import build_providers

_log = logging.getLogger(__name__)
#: Exit code when any export failed (the endpoint was unreachable or refused a batch).
EXIT_EXPORT_FAILED = 3


@dataclass
class Emitted:
    spans: int = 0
    metrics: int = 0
    events: int = 0


def value_for(hint: Any, name: str) -> Any:
    """A valid value of the annotated type (first enum member, 1, 1.0, True, a name-based string)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return value_for(options[0], name)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return next(iter(hint))
    if hint is bool:
        return True
    if hint is int:
        return 1
    if hint is float:
        return 1.0
    if hint is str:
        return f"selftest-{name}"
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return {"selftest": value_for(typing.get_args(hint)[1], name)}
    if origin is not None and isinstance(origin, type) and issubclass(origin, Sequence):
        return [value_for(typing.get_args(hint)[0], name)]
    raise TypeError(f"selftest cannot make a value for `{name}` of type {hint!r}")


def keyword_values(fn: Callable[..., Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(fn)
    return {
        p.name: value_for(hints[p.name], p.name)
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


_METHODS = {"counter": "add", "updowncounter": "add", "histogram": "record", "gauge": "set"}


def exercise(tracer: Any, meter: Any, logger: Any) -> Emitted:
    """Call every generated helper once with every argument filled."""
    spans = importlib.import_module("knhk_otel.semconv.spans")
    metrics = importlib.import_module("knhk_otel.semconv.metrics")
    events = importlib.import_module("knhk_otel.semconv.events")
    out = Emitted()
    for name, fn in sorted(inspect.getmembers(spans, inspect.isfunction)):
        if name.startswith("start_") and fn.__module__ == spans.__name__:
            with fn(tracer, **keyword_values(fn)):
                out.spans += 1
    for _, cls in sorted(inspect.getmembers(metrics, inspect.isclass)):
        instrument = getattr(cls, "INSTRUMENT", None)
        if cls.__module__ != metrics.__name__ or instrument not in _METHODS:
            continue
        factory: Callable[[Any], Any] = cls
        method = getattr(factory(meter), _METHODS[instrument])
        method(1, **keyword_values(method))
        out.metrics += 1
    for name, fn in sorted(inspect.getmembers(events, inspect.isfunction)):
        if name.startswith("emit_") and fn.__module__ == events.__name__:
            fn(logger, **keyword_values(fn))
            out.events += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m knhk_otel.harness.selftest", description=__doc__)
    parser.add_argument("--validation", choices=("strict", "count", "off"), help="in-process validation mode")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="selftest: %(levelname)s: %(message)s")
    try:
        config = TelemetryConfig.from_env(service_name="knhk-otel-selftest", validation=args.validation)
        telemetry = build_providers(config)
    except ConfigError as exc:
        print(f"selftest: {exc}", file=sys.stderr)
        return 2
    strict.set_strict(True)
    try:
        emitted = exercise(
            telemetry.tracer_provider.get_tracer("knhk_otel.selftest"),
            telemetry.meter_provider.get_meter("knhk_otel.selftest"),
            telemetry.logger_provider.get_logger("knhk_otel.selftest"),
        )
    finally:
        telemetry.shutdown()
    where = f"{config.endpoint} ({config.otlp_protocol})" if config.export else "nowhere (export off)"
    print(
        f"selftest: emitted {emitted.spans} spans, {emitted.metrics} metrics, {emitted.events} events "
        f"to {where}",
        file=sys.stderr,
    )
    failed = telemetry.exports.counts
    if failed:
        # the SDK only logs a failed export; a CI step that lost telemetry must not pass
        listed = ", ".join(f"{signal} {n}" for signal, n in sorted(failed.items()))
        print(f"selftest: exports failed (batches per signal): {listed}", file=sys.stderr)
        return EXIT_EXPORT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
