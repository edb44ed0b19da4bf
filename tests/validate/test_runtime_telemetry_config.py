"""TelemetryConfig from OTEL_* env and CLI, and providers built from it exporting to a live-check."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind

from knhk_otel.runtime.config import ConfigError, TelemetryConfig
from knhk_otel.runtime.providers import build_providers
from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.findings import SchemaViolation
from knhk_otel.validate.server import LiveCheck, LiveCheckOptions


def test_defaults_without_any_environment() -> None:
    config = TelemetryConfig.from_env({})
    assert (config.service_name, config.otlp_protocol, config.endpoint) == (
        "knhk-mesh",
        "grpc",
        "http://localhost:4317",
    )
    assert (config.validation, config.export, config.metric_export_interval_ms) == ("count", True, 10_000)


def test_standard_variables_are_read_once_and_cli_values_win() -> None:
    env = {
        "OTEL_SERVICE_NAME": "node-a",
        "OTEL_RESOURCE_ATTRIBUTES": "service.instance.id=i-7,deployment.environment.name=ci%20run",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9999",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "KNHK_OTEL_VALIDATION": "strict",
    }
    config = TelemetryConfig.from_env(env, service_name="node-b", validation=None)
    assert config.service_name == "node-b"
    assert config.service_instance_id == "i-7"
    assert config.resource_attributes == (("deployment.environment.name", "ci run"),)
    assert (config.endpoint, config.otlp_protocol, config.otlp_compression) == (
        "http://127.0.0.1:9999",
        "http/protobuf",
        "gzip",
    )
    assert (config.validation, config.metric_export_interval_ms) == ("strict", 500)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}, "OTEL_EXPORTER_OTLP_PROTOCOL='carrier-pigeon'"),
        ({"KNHK_OTEL_VALIDATION": "loud"}, "KNHK_OTEL_VALIDATION='loud'"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "OTEL_METRIC_EXPORT_INTERVAL='soon'"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "OTEL_RESOURCE_ATTRIBUTES: 'novalue'"),
    ],
)
def test_bad_settings_are_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        TelemetryConfig.from_env(env)


def test_otel_sdk_disabled_turns_export_off() -> None:
    assert not TelemetryConfig.from_env({"OTEL_SDK_DISABLED": "true"}).export


@pytest.fixture
def live(shop: ResolvedRegistry) -> Iterator[LiveCheck]:
    lc = LiveCheck(shop, LiveCheckOptions(grpc_port=0, http_port=0, admin_port=None))
    lc.start()
    yield lc
    lc.stop()
    lc.close()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_providers_export_to_the_configured_endpoint_and_validate_in_process(
    shop: ResolvedRegistry, live: LiveCheck, protocol: str
) -> None:
    port = live.ports["grpc" if protocol == "grpc" else "http"]
    config = TelemetryConfig.from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol},
        service_name="shop",
        validation="count",
        service_instance_id="i-1",
    )
    telemetry = build_providers(config, shop)
    tracer = telemetry.tracer_provider.get_tracer("t")
    with tracer.start_as_current_span(
        "shop.refund", kind=SpanKind.INTERNAL, attributes={"shop.order.id": "o"}
    ):
        pass
    telemetry.meter_provider.get_meter("t").create_up_down_counter("shop.queue.depth", unit="{order}").add(2)
    telemetry.logger_provider.get_logger("t").emit(
        event_name="shop.order.placed", attributes={"shop.order.id": "o"}
    )
    telemetry.shutdown()
    telemetry.shutdown()  # idempotent
    st = live.stop()["statistics"]
    assert st["samples_by_type"] == {"event": 1, "metric": 1, "resource": 1, "span": 1}
    assert st["findings_by_id"] == {
        "missing_attribute": 3,  # telemetry.sdk.* on the resource (information)
        "recommended_attribute_not_present": 1,  # shop.item.count on the event
    }


@pytest.mark.allow_schema_findings
def test_strict_validation_from_config_raises_at_the_emission_point(shop: ResolvedRegistry) -> None:
    config = TelemetryConfig.from_env({}, validation="strict", export=False)
    telemetry = build_providers(config, shop)
    try:
        with (
            pytest.raises(SchemaViolation),
            telemetry.tracer_provider.get_tracer("t").start_as_current_span("x"),
        ):
            pass
    finally:
        telemetry.shutdown()


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_validation_needs_a_loadable_registry(tmp_path: Path, where: str) -> None:
    path = tmp_path if where == "empty" else tmp_path / "missing"
    config = TelemetryConfig.from_env({}, validation="count", export=False, registry_path=str(path))
    with pytest.raises(ConfigError, match="cannot load the registry"):
        build_providers(config)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_shutdown_with_the_backend_down_stops_within_its_budget(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A node stopping while its Collector is down: the exporters would retry each signal for 10 s
    in turn; the shutdown aborts them after its budget and says so in one line."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    config = TelemetryConfig(
        validation="off", export=True, otlp_endpoint=f"http://127.0.0.1:{closed}", otlp_protocol=protocol
    )
    telemetry = build_providers(config)
    with telemetry.tracer_provider.get_tracer("t").start_as_current_span("s"):
        telemetry.meter_provider.get_meter("t").create_counter("c").add(1)
    start = time.monotonic()
    telemetry.shutdown(budget_s=0.5)
    took = time.monotonic() - start
    assert took < 8.0  # unbounded, the exporters' retries take 13-15 s here
    lines = [r.getMessage() for r in caplog.records if "did not take the last batches" in r.getMessage()]
    assert len(lines) == 1 and str(closed) in lines[0]
    telemetry.shutdown()  # idempotent
