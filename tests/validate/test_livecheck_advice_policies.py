"""`live-check --advice-policies DIR`: Weaver's live_check_advice Rego policies on every sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from knhk_otel.schema.model import ResolvedRegistry
from knhk_otel.validate.advice import AdvicePolicies, AdvicePolicyError
from knhk_otel.validate.samples import AttributeSample, MetricSample, SpanSample
from knhk_otel.validate.server import Checker

HERE = Path(__file__).resolve().parent

SAMPLES: list[dict[str, Any]] = [
    {
        "span": {
            "name": "shop.checkout",
            "kind": "client",
            "attributes": [
                {"name": "shop.order.id", "value": "o-1"},
                {"name": "shop.payment.method", "value": "card"},
                {"name": "shop.legacy.code", "value": "L"},
            ],
        }
    },
    {
        "span": {
            "name": "shop.checkout",
            "kind": "server",
            "attributes": [{"name": "shop.order.id", "value": "o"}],
        }
    },
]


def _ids(findings: Any) -> list[tuple[str, str | None]]:
    return sorted((f.id, f.attribute) for f in findings)


def test_advice_findings_join_ours_per_sample(shop: ResolvedRegistry) -> None:
    advice = AdvicePolicies([HERE / "advice"], shop)
    span = SpanSample("shop.checkout", "client", {"shop.order.id": "o", "shop.legacy.code": "L"})
    found = advice.findings(span)
    assert _ids(found) == [("checkout_kind", None), ("legacy_key", "shop.legacy.code")]
    kind = next(f for f in found if f.id == "checkout_kind")
    assert (
        kind.level == "violation"
        and kind.message == "Span 'shop.checkout' is client; the registry says server."
    )
    legacy = next(f for f in found if f.id == "legacy_key")
    assert legacy.level == "improvement" and legacy.signal_type == "span"
    # attributes of bare samples and of metric data points are judged one by one too
    assert _ids(advice.findings(AttributeSample("x.legacy", "v", True))) == [("legacy_key", "x.legacy")]
    metric = MetricSample("shop.orders", "counter", "{order}", [{"shop.legacy.code": "a"}, {}])
    assert _ids(advice.findings(metric)) == [("legacy_key", "shop.legacy.code")]


def test_checker_with_advice_takes_every_span_through_the_policies(shop: ResolvedRegistry) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.name, span.kind = "shop.checkout", 3  # client
    kv = span.attributes.add()
    kv.key, kv.value.string_value = "shop.legacy.code", "L"
    checker = Checker(shop, AdvicePolicies([HERE / "advice"], shop))
    checker.ingest("traces", request)
    report = checker.report.build()
    ids = {f["id"] for s in report["samples"] for f in s["findings"]}
    assert {"checkout_kind", "legacy_key", "span_kind_mismatch"} <= ids


def test_live_check_cli_runs_advice_policies_on_a_sample_file(tmp_path: Path, shop_dir: Path) -> None:
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps(SAMPLES), encoding="utf-8")
    cmd = [sys.executable, "-m", "knhk_otel.cli", "live-check", "-r", str(shop_dir)]
    done = subprocess.run(
        [*cmd, "--input-source", str(samples), "--format", "json", "--advice-policies", str(HERE / "advice")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    ids = report["statistics"]["findings_by_id"]
    assert ids["checkout_kind"] == 1 and ids["legacy_key"] == 1


@pytest.mark.parametrize(
    ("policies", "where"),
    [
        ("advice_broken", "advice_broken/bad.rego:6:"),  # a Rego syntax error: file and line
        ("no_such_folder", "no_such_folder: error[policy_file_invalid]: policy file does not exist"),
        ("empty", "empty: error[policy_file_invalid]: policy folder holds no .rego file"),
    ],
)
def test_a_broken_advice_policy_is_one_line_and_exit_2(
    tmp_path: Path, shop_dir: Path, policies: str, where: str
) -> None:
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps(SAMPLES), encoding="utf-8")
    (tmp_path / "empty").mkdir()
    folder = HERE / policies if (HERE / policies).is_dir() else tmp_path / policies
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "knhk_otel.cli",
            "live-check",
            "-r",
            str(shop_dir),
            "--input-source",
            str(samples),
            "--advice-policies",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"{folder.parent}/{where}" in line and "policy_file_invalid" in line


def test_a_value_that_is_not_a_finding_names_the_policy_file_and_line(
    shop: ResolvedRegistry, tmp_path: Path
) -> None:
    (tmp_path / "p.rego").write_text(
        'package live_check_advice\nimport rego.v1\n\ndeny contains "just text" if {\n'
        "  input.sample.attribute\n}\n",
        encoding="utf-8",
    )
    [found] = AdvicePolicies([tmp_path], shop).findings(AttributeSample("shop.order.id", "o", True))
    assert found.id == "advice_policy_failed" and found.level == "violation"
    assert found.message.startswith(
        f'{tmp_path / "p.rego"}:4:1: the `live_check_advice` policy returned "just text"'
    )


def test_a_folder_without_advice_package_is_refused(shop: ResolvedRegistry, tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package after_resolution\n", encoding="utf-8")
    with pytest.raises(AdvicePolicyError, match="live_check_advice"):
        AdvicePolicies([tmp_path], shop)


def test_advice_policies_take_the_place_of_the_default_advice(shop: ResolvedRegistry) -> None:
    """As in Weaver: a custom advice folder replaces the default advice policy (key-name advice),
    while the checks that are no policy (missing, type, template, required) keep running."""
    bare = AttributeSample("Nodot", "v", True)
    plain = Checker(shop).validator.validate(bare)
    assert {f.id for f in plain} == {"missing_attribute", "missing_namespace", "invalid_format"}
    advised = Checker(shop, AdvicePolicies([HERE / "advice"], shop)).validator.validate(bare)
    assert {f.id for f in advised} == {"missing_attribute"}
    metric = MetricSample("Shop-Orders", "counter", "{order}", [])
    assert {f.id for f in Checker(shop).validator.validate(metric)} == {"invalid_format", "missing_metric"}
    assert {
        f.id for f in Checker(shop, AdvicePolicies([HERE / "advice"], shop)).validator.validate(metric)
    } == {"missing_metric"}
