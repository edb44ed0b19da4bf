"""Fixtures for the code generation tests: registries (real and hand-built), SDK providers, the CLI."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from knhk_otel.cli import main as cli_main
from knhk_otel.runtime import strict
from knhk_otel.schema import load_and_resolve
from knhk_otel.schema.model import (
    Attribute,
    AttributeType,
    Group,
    Manifest,
    ResolvedRegistry,
    Source,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = REPO_ROOT / "schema"
VENV_BIN = REPO_ROOT / ".venv" / "bin"


@pytest.fixture(scope="session")
def mesh_registry() -> ResolvedRegistry:
    registry, diagnostics = load_and_resolve(SCHEMA)
    assert registry is not None, [d.render() for d in diagnostics]
    assert not [d for d in diagnostics if d.is_error], [d.render() for d in diagnostics]
    return registry


def attr(name: str, type_: AttributeType = "string", level: str = "recommended", **kw: object) -> Attribute:
    return Attribute(name=name, type=type_, requirement_level=level, **kw)  # type: ignore[arg-type]


def registry_of(*groups: Group, namespace: str | None = "acme") -> ResolvedRegistry:
    """A resolved registry built directly, for cases the project's schema does not contain."""
    return ResolvedRegistry(
        groups=tuple(groups),
        manifest=Manifest(name="acme", namespace=namespace),
        own=frozenset(g.id for g in groups),
    )


def group(gid: str, type_: str, *attrs: Attribute, line: int = 1, **kw: object) -> Group:
    return Group(id=gid, type=type_, attributes=attrs, source=Source("acme/defs.yaml", line, 3), **kw)  # type: ignore[arg-type]


@dataclass
class Cli:
    """`knhk-otel` run in-process with a chosen working directory; output captured."""

    capsys: pytest.CaptureFixture[str]
    cwd: Path

    def __call__(self, *args: str) -> tuple[int, str, str]:
        import os

        old = Path.cwd()
        os.chdir(self.cwd)
        try:
            code = cli_main(list(args))
        finally:
            os.chdir(old)
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A copy of the project's schema and generated outputs, to break without touching the repo."""
    root = tmp_path / "repo"
    shutil.copytree(SCHEMA, root / "schema")
    shutil.copytree(
        REPO_ROOT / "src" / "knhk_otel" / "semconv",
        root / "src" / "knhk_otel" / "semconv",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copytree(REPO_ROOT / "docs" / "schema", root / "docs" / "schema")
    shutil.copytree(REPO_ROOT / "dashboards", root / "dashboards")
    shutil.copytree(REPO_ROOT / "collector", root / "collector")
    return root


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Callable[..., Cli]:
    def make(cwd: Path | None = None) -> Cli:
        return Cli(capsys, cwd or tmp_path)

    return make


@dataclass
class Sdk:
    tracer_provider: TracerProvider
    spans: InMemorySpanExporter
    meter_provider: MeterProvider
    metrics: InMemoryMetricReader
    logger_provider: LoggerProvider
    logs: InMemoryLogRecordExporter


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    """Real SDK providers with in-memory exporters (not installed globally)."""
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    logs = InMemoryLogRecordExporter()
    lp = LoggerProvider()
    lp.add_log_record_processor(SimpleLogRecordProcessor(logs))
    yield Sdk(tp, spans, mp, reader, lp, logs)
    tp.shutdown()
    mp.shutdown()
    lp.shutdown()


@pytest.fixture
def strict_off() -> Iterator[None]:
    previous = strict.is_strict()
    strict.set_strict(False)
    yield
    strict.set_strict(previous)


@pytest.fixture
def strict_on() -> Iterator[None]:
    previous = strict.is_strict()
    strict.set_strict(True)
    yield
    strict.set_strict(previous)
