"""pytest plugin: strict schema mode in every test; a test whose telemetry breaks the schema fails.

Load it from the root conftest (`pytest_plugins = ["knhk_otel.harness.pytest_plugin"]`). Per test
it installs a recorder that every validating SDK hook reports to (whatever provider the test
built), turns the generated helpers' strict mode on, and after the test fails it with the
violations listed. Tests that emit nothing pay for one small object; the project's schema is
loaded only when a test asks for it, once per session.
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from knhk_otel.runtime import strict as strict_mode
from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.findings import Finding
from knhk_otel.validate.sdk import (
    FindingRecorder,
    Mode,
    ValidatingLogProcessor,
    ValidatingMetricReader,
    ValidatingSpanProcessor,
    ValidationHook,
    install_recorder,
    uninstall_recorder,
)

ALLOW_MARKER = "allow_schema_findings"
_STATE = pytest.StashKey["_TestState"]()


@functools.cache
def project_registry(root: str) -> ResolvedRegistry:
    """The registry at `root` (the project's schema/), loaded once per session on first use."""
    from knhk_otel.runtime.providers import load_registry

    return load_registry(root)


@dataclass
class ValidatedProviders:
    """SDK providers with in-memory exporters and validation hooks (for tests)."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter
    metric_reader: ValidatingMetricReader
    hook: ValidationHook

    def collect_metrics(self) -> Any:
        """Collect (and validate) the metrics now; strict mode raises here."""
        return self.metric_reader.get_metrics_data()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


def validated_providers(
    registry: ResolvedRegistry | Any, mode: Mode = "strict", resource: Resource | None = None
) -> ValidatedProviders:
    hook = ValidationHook(registry, mode)
    resource = resource or Resource({"service.name": "test"})
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer_provider.add_span_processor(ValidatingSpanProcessor(hook))
    reader = ValidatingMetricReader(hook)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    hook.bind_meter(meter_provider.get_meter("knhk_otel.validate"))
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger_provider.add_log_record_processor(ValidatingLogProcessor(hook))
    return ValidatedProviders(tracer_provider, meter_provider, logger_provider, spans, logs, reader, hook)


@dataclass
class _TestState:
    recorder: FindingRecorder
    previous_strict: bool
    allowed: bool = False
    reported: int = 0
    providers: list[ValidatedProviders] = field(default_factory=list)


class SchemaValidation:
    """What the `schema_validation` fixture gives a test."""

    def __init__(self, state: _TestState, rootpath: Path) -> None:
        self._state = state
        self._rootpath = rootpath

    @property
    def findings(self) -> list[Finding]:
        return list(self._state.recorder.findings)

    def violations(self) -> list[Finding]:
        return self._state.recorder.violations()

    def allow(self) -> None:
        """This test emits findings on purpose: record them, do not fail the test."""
        self._state.allowed = True

    @property
    def registry(self) -> ResolvedRegistry:
        return project_registry(str(self._rootpath / "schema"))

    def providers(
        self, registry: ResolvedRegistry | None = None, mode: Mode = "strict"
    ) -> ValidatedProviders:
        """Validated SDK providers on `registry` (default: the project's schema), shut down after the test."""
        built = validated_providers(registry if registry is not None else self.registry, mode)
        self._state.providers.append(built)
        return built


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{ALLOW_MARKER}: the test emits telemetry findings on purpose; do not fail it for them"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    recorder = FindingRecorder()
    state = _TestState(
        recorder, strict_mode.is_strict(), allowed=item.get_closest_marker(ALLOW_MARKER) is not None
    )
    item.stash[_STATE] = state
    install_recorder(recorder)
    strict_mode.set_strict(True)


def _fail_on_violations(item: pytest.Item, when: str) -> None:
    state = item.stash.get(_STATE, None)
    if state is None or state.allowed:
        return
    violations = state.recorder.violations()[state.reported :]
    state.reported += len(violations)
    if violations:
        listed = "\n".join(f"  {f}" for f in violations)
        pytest.fail(f"telemetry broke the schema during {when}:\n{listed}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    result = yield
    _fail_on_violations(item, "the test")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    state = item.stash.get(_STATE, None)
    try:
        result = yield
    finally:
        if state is not None:
            for built in state.providers:
                built.shutdown()
            uninstall_recorder(state.recorder)
            strict_mode.set_strict(state.previous_strict)
    _fail_on_violations(item, "teardown")
    return result


@pytest.fixture
def schema_validation(request: pytest.FixtureRequest) -> SchemaValidation:
    """Strict schema validation for this test: findings, validated providers, `allow()`."""
    state = request.node.stash[_STATE]
    return SchemaValidation(state, Path(str(request.config.rootpath)))
