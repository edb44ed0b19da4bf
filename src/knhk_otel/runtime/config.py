"""TelemetryConfig: the one typed telemetry configuration, built once at the edge (env or CLI)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar

Protocol = Literal["grpc", "http/protobuf"]
MetricsExporter = Literal["otlp", "prometheus"]
Compression = Literal["gzip", "none"]
ValidationMode = Literal["strict", "count", "off"]

_S = TypeVar("_S", bound=str)

PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http/protobuf")
VALIDATION_MODES: tuple[ValidationMode, ...] = ("strict", "count", "off")
COMPRESSIONS: tuple[Compression, ...] = ("gzip", "none")
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
METRICS_EXPORTERS: tuple[MetricsExporter, ...] = ("otlp", "prometheus")
DEFAULT_PROMETHEUS_PORT = 9464  # the OTel specification's default for OTEL_EXPORTER_PROMETHEUS_PORT


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def default_registry_path() -> str:
    """`schema` in the working folder, else the checkout's own `schema/` (an editable install: what
    the helpers were generated from), so a mesh started from any folder validates against it."""
    if Path("schema").is_dir():
        return "schema"
    checkout = Path(__file__).resolve().parents[3] / "schema"
    return str(checkout) if (checkout / "manifest.yaml").is_file() else "schema"


@dataclass(frozen=True)
class TelemetryConfig:
    service_name: str = "knhk-mesh"
    service_instance_id: str = ""  # empty = generate one when providers are built
    otlp_endpoint: str | None = None  # None = the protocol's default (localhost:4317 / :4318)
    otlp_protocol: Protocol = "grpc"
    otlp_compression: Compression = "none"
    validation: ValidationMode = "count"
    export: bool = True  # False: build providers without exporters (validation still runs)
    metric_export_interval_ms: int = 10_000
    resource_attributes: tuple[tuple[str, str], ...] = ()
    registry_path: str = "schema"  # what in-process validation checks against
    # OTEL_METRICS_EXPORTER: where metrics go; "prometheus" serves a scrape endpoint of its own
    metrics_exporters: tuple[MetricsExporter, ...] = ("otlp",)
    prometheus_host: str = "localhost"
    prometheus_port: int = DEFAULT_PROMETHEUS_PORT  # 0 = a free port (the bound one is logged)

    @property
    def endpoint(self) -> str:
        if self.otlp_endpoint:
            return self.otlp_endpoint
        return DEFAULT_GRPC_ENDPOINT if self.otlp_protocol == "grpc" else DEFAULT_HTTP_ENDPOINT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> TelemetryConfig:
        """Read the standard OTEL_* variables (and KNHK_OTEL_*); keyword overrides (CLI) win."""
        e = os.environ if env is None else env
        resource = _parse_resource_attributes(e.get("OTEL_RESOURCE_ATTRIBUTES", ""))
        config = cls(
            service_name=e.get("OTEL_SERVICE_NAME") or dict(resource).get("service.name") or cls.service_name,
            service_instance_id=dict(resource).get("service.instance.id", ""),
            otlp_endpoint=e.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            otlp_protocol=_choice(e, "OTEL_EXPORTER_OTLP_PROTOCOL", PROTOCOLS, "grpc"),
            otlp_compression=_choice(e, "OTEL_EXPORTER_OTLP_COMPRESSION", COMPRESSIONS, "none"),
            validation=_choice(e, "KNHK_OTEL_VALIDATION", VALIDATION_MODES, "count"),
            export=not _truthy(e.get("OTEL_SDK_DISABLED", "")) and e.get("KNHK_OTEL_EXPORT", "on") != "off",
            metric_export_interval_ms=_int(e, "OTEL_METRIC_EXPORT_INTERVAL", 10_000),
            resource_attributes=tuple(
                (k, v) for k, v in resource if k not in ("service.name", "service.instance.id")
            ),
            registry_path=e.get("KNHK_OTEL_REGISTRY") or default_registry_path(),
            metrics_exporters=_metrics_exporters(e.get("OTEL_METRICS_EXPORTER", "")),
            prometheus_host=e.get("OTEL_EXPORTER_PROMETHEUS_HOST", "").strip() or "localhost",
            prometheus_port=_port(e, "OTEL_EXPORTER_PROMETHEUS_PORT", DEFAULT_PROMETHEUS_PORT),
        )
        return config.with_overrides(**overrides)

    def with_overrides(self, **overrides: object) -> TelemetryConfig:
        """Apply CLI values; None means 'not given on the command line'."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - set(self.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown telemetry setting(s): {', '.join(sorted(unknown))}")
        out = replace(self, **given)  # type: ignore[arg-type]
        if out.otlp_protocol not in PROTOCOLS:
            raise ConfigError(
                f"otlp_protocol must be one of {', '.join(PROTOCOLS)}, not {out.otlp_protocol!r}"
            )
        if out.validation not in VALIDATION_MODES:
            raise ConfigError(
                f"validation must be one of {', '.join(VALIDATION_MODES)}, not {out.validation!r}"
            )
        bad = [m for m in out.metrics_exporters if m not in METRICS_EXPORTERS]
        if bad:
            raise ConfigError(
                f"metrics exporter must be one of {', '.join(METRICS_EXPORTERS)}, not {bad[0]!r}"
            )
        if not 0 <= out.prometheus_port <= 65535:
            raise ConfigError(f"prometheus port {out.prometheus_port} is outside 0..65535")
        return out


def _metrics_exporters(raw: str) -> tuple[MetricsExporter, ...]:
    """OTEL_METRICS_EXPORTER: a comma-separated list of otlp, prometheus, none (default otlp)."""
    names = [n.strip().lower() for n in raw.split(",") if n.strip()] or ["otlp"]
    out: list[MetricsExporter] = []
    for name in names:
        if name == "none":
            continue
        match = next((m for m in METRICS_EXPORTERS if m == name), None)
        if match is None:
            raise ConfigError(
                f"OTEL_METRICS_EXPORTER={raw!r}: expected a list of {', '.join(METRICS_EXPORTERS)}, none"
            )
        if match not in out:
            out.append(match)
    return tuple(out)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        raise ConfigError(f"{name}={raw!r}: expected a port number 0..65535")
    return int(raw)


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _choice(env: Mapping[str, str], name: str, allowed: tuple[_S, ...], default: _S) -> _S:
    value = env.get(name, "").strip().lower() or default
    for option in allowed:
        if option == value:
            return option
    raise ConfigError(f"{name}={value!r}: expected one of {', '.join(allowed)}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an integer") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r}: expected a positive integer")
    return value


def _parse_resource_attributes(raw: str) -> list[tuple[str, str]]:
    """OTEL_RESOURCE_ATTRIBUTES: `k=v,k2=v2` (values may be percent-encoded)."""
    from urllib.parse import unquote

    out: list[tuple[str, str]] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"OTEL_RESOURCE_ATTRIBUTES: {item.strip()!r} is not key=value")
        out.append((key.strip(), unquote(value.strip())))
    return out


def new_instance_id() -> str:
    return str(uuid.uuid4())
