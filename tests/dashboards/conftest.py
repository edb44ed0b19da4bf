"""Fixtures for the dashboard tests: the generated dashboards, the registry, Grafana's schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from knhk_otel.codegen import naming
from knhk_otel.harness.reference import GRAFANA_SCHEMAS, ReferenceData
from knhk_otel.schema import load_and_resolve
from knhk_otel.schema.model import Group

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO_ROOT / "dashboards"


@pytest.fixture(scope="session")
def grafana_schemas(reference: ReferenceData) -> Path:
    """Grafana's dashboard and panel JSON Schemas (reference data: skipped, or failed in CI, when absent)."""
    return reference.require(GRAFANA_SCHEMAS, "validation of the dashboards against Grafana's schemas")


@pytest.fixture(scope="session")
def mesh_metrics() -> list[Group]:
    registry, diagnostics = load_and_resolve(REPO_ROOT / "schema")
    assert registry is not None, [d.render() for d in diagnostics]
    own = registry.own
    return [g for g in registry.groups if g.type == "metric" and (not own or g.id in own)]


@pytest.fixture(scope="session")
def counters(mesh_metrics: list[Group]) -> frozenset[str]:
    return frozenset(naming.prometheus_name(m) for m in mesh_metrics if m.instrument == "counter")


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    found = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}
    assert found, f"no dashboards in {DASHBOARDS} (run `knhk-otel generate dashboards`)"
    return found
