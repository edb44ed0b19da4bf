"""The generated operator configs: Collector agent and gateway (otelbin JSON Schema + structural
lint), prometheus.yml and the alert rules (promtool check config / check rules / test rules)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from knhk_otel.codegen import collector_lint

REPO = Path(__file__).resolve().parents[2]
COLLECTOR = REPO / "collector"
RULES = COLLECTOR / "rules" / "knhk-mesh.rules.yaml"
RULE_TESTS = COLLECTOR / "rules" / "tests" / "knhk-mesh.rules.test.yaml"
RUNBOOKS = REPO / "docs" / "runbooks"
CONFIGS = ("otelcol.yaml", "otelcol-gateway.yaml")
REQUIRED_ALERTS = {
    "KnhkPartitionDetected",
    "KnhkPeersBelowQuorum",
    "KnhkByzantineDetectionsRising",
    "KnhkDistrustedPeers",
    "KnhkTickBudgetCompliance",
    "KnhkSlowConvergence",
    "KnhkSchemaViolations",
    "KnhkTelemetryExportFailing",
}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _reference() -> Path:
    return Path(os.environ.get("KNHK_REFERENCE_DIR") or REPO.parent / "shared" / "reference")


@pytest.fixture(scope="module")
def otelbin_schema() -> dict[str, Any]:
    path = _reference() / "otelcol" / "otelbin-collector.schema.json"
    if not path.is_file():
        if os.environ.get("KNHK_REQUIRE_REFERENCE") or os.environ.get("CI"):
            pytest.fail(f"{path} is missing and KNHK_REQUIRE_REFERENCE/CI forbids skipping")
        pytest.skip(f"otelbin's Collector schema not found at {path} (set KNHK_REFERENCE_DIR)")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


@pytest.mark.parametrize("name", CONFIGS)
def test_collector_config_validates_against_otelbins_schema(
    name: str, otelbin_schema: dict[str, Any]
) -> None:
    config = _load(COLLECTOR / name)
    errors = sorted(jsonschema.Draft202012Validator(otelbin_schema).iter_errors(config), key=str)
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []


@pytest.mark.parametrize("name", CONFIGS)
def test_collector_config_passes_the_structural_lint(name: str) -> None:
    config = _load(COLLECTOR / name)
    assert collector_lint.problems(config, name) == []
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline["processors"][0] == "memory_limiter" and pipeline["processors"][-1] == "batch"
        assert "debug" in pipeline["exporters"]
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert "health_check" in config["service"]["extensions"]


def test_gateway_balances_traces_and_remote_writes_metrics() -> None:
    gateway = _load(COLLECTOR / "otelcol-gateway.yaml")
    pipelines = gateway["service"]["pipelines"]
    assert "loadbalancing" in pipelines["traces"]["exporters"]
    assert "prometheusremotewrite" in pipelines["metrics"]["exporters"]


def test_the_structural_lint_names_each_kind_of_mistake() -> None:
    good = _load(COLLECTOR / "otelcol.yaml")
    bad = copy.deepcopy(good)
    bad["service"]["pipelines"]["traces"]["exporters"].append("zipkin")  # referenced, not defined
    bad["exporters"]["otlp/unused"] = {"endpoint": "x:4317"}  # defined, never used
    bad["service"]["pipelines"]["metrics"]["processors"] = ["batch", "memory_limiter"]  # wrong order
    bad["extensions"]["health_check"]["endpoint"] = "0.0.0.0:4317"  # clashes with the OTLP receiver
    found = collector_lint.problems(bad, "otelcol.yaml")
    assert any("traces.exporters: `zipkin` is not defined" in p for p in found), found
    assert any("exporters.otlp/unused: defined but used by no pipeline" in p for p in found), found
    assert any("metrics.processors: memory_limiter must come first" in p for p in found), found
    assert any("metrics.processors: batch must come last" in p for p in found), found
    assert any("port 4317 is already used" in p for p in found), found
    assert all(p.startswith("otelcol.yaml: ") for p in found)


def test_live_check_fan_out_adds_an_exporter_to_every_pipeline() -> None:
    from knhk_otel.codegen.collector_target import agent_config

    config = agent_config({"livecheck_endpoint": "localhost:14317"})
    assert collector_lint.problems(config) == []
    assert all("otlp/livecheck" in p["exporters"] for p in config["service"]["pipelines"].values())


def test_promtool_accepts_the_prometheus_config_and_its_rules(promtool: str) -> None:
    proc = subprocess.run(
        [promtool, "check", "config", str(COLLECTOR / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "knhk-mesh.rules.yaml" in proc.stdout + proc.stderr  # the rule files were found and checked
    proc = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_of_every_alert_pass(promtool: str) -> None:
    proc = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_every_alert_is_complete_and_tested_firing_and_quiet() -> None:
    rules = _load(RULES)
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} == REQUIRED_ALERTS
    tests = _load(RULE_TESTS)["tests"]
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning")
        notes = alert["annotations"]
        assert notes["summary"] and "{{" not in notes["summary"]  # static
        assert "{{" in notes["description"]  # templated
        runbook = notes["runbook_url"]
        assert runbook.startswith("docs/runbooks/") and (REPO / runbook).is_file(), runbook
        cases = [
            case["exp_alerts"]
            for t in tests
            for case in t["alert_rule_test"]
            if case["alertname"] == alert["alert"]
        ]
        assert any(cases) and any(c == [] for c in cases), alert["alert"]  # fires once, stays quiet once
    assert {p.name for p in RUNBOOKS.glob("knhk-*.md")} == {
        a["annotations"]["runbook_url"].rsplit("/", 1)[1] for a in alerts
    }


def test_a_rule_reading_a_metric_the_schema_lacks_fails_generation(tmp_path: Path) -> None:
    registry = tmp_path / "schema"
    registry.mkdir()
    for item in (REPO / "schema").iterdir():
        if item.name != "telemetry.yaml":  # drop the findings and export-failure metrics
            target = registry / item.name
            if item.is_dir():
                target.symlink_to(item, target_is_directory=True)
            else:
                target.write_bytes(item.read_bytes())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "knhk_otel.cli",
            "generate",
            "alerts",
            "-r",
            str(registry),
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "error[unknown_metric]" in proc.stderr and "knhk.mesh." in proc.stderr
    assert "Traceback" not in proc.stderr
