"""live-check cannot pass on nothing: no telemetry is exit 3, an expected signal that never came is exit 4."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from knhk_otel.commands.live_check import EXIT_FINDINGS, EXIT_MISSING_SIGNALS, EXIT_NO_SAMPLES, EXIT_USAGE

REPO_ROOT = Path(__file__).resolve().parents[2]


def _span(name: str, kind: str, **attributes: str) -> dict[str, Any]:
    attrs = [{"name": k.replace("_", "."), "value": v} for k, v in attributes.items()]
    return {"span": {"name": name, "kind": kind, "attributes": attrs}}


REFUND = _span("shop.refund", "internal", shop_order_id="o-1")
REFUND_WITHOUT_ORDER = _span("shop.refund", "internal")


def _live_check(shop_dir: Path, samples: list[Any], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "knhk_otel.cli", "live-check", "-r", str(shop_dir), "--input-source", "stdin",
         "--format", "json", *extra],
        input=json.dumps(samples),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def test_no_sample_at_all_is_its_own_exit_code(shop_dir: Path) -> None:
    done = _live_check(shop_dir, [])
    assert done.returncode == EXIT_NO_SAMPLES, done.stderr
    assert "NO TELEMETRY received" in done.stderr
    assert json.loads(done.stdout)["statistics"]["total_samples"] == 0


def test_a_resource_alone_is_no_telemetry(shop_dir: Path) -> None:
    resource = {"resource": {"attributes": [{"name": "service.name", "value": "shop"}]}}
    assert _live_check(shop_dir, [resource]).returncode == EXIT_NO_SAMPLES


def test_every_listed_signal_arrived(shop_dir: Path, tmp_path: Path) -> None:
    listed = tmp_path / "expected.txt"
    listed.write_text("# what the shop must emit\nspan shop.refund   # the only one today\n\n")
    done = _live_check(shop_dir, [REFUND], "--expect-signals", str(listed))
    assert done.returncode == 0, done.stderr
    expected = json.loads(done.stdout)["statistics"]["expected_signals"]
    assert expected == {"source": str(listed), "listed": 1, "missing": {}}


def test_a_listed_signal_that_never_arrived_fails_and_is_named(shop_dir: Path, tmp_path: Path) -> None:
    listed = tmp_path / "expected.txt"
    listed.write_text("span shop.refund\nspan shop.checkout\nmetric shop.orders\nevent shop.order.placed\n")
    done = _live_check(shop_dir, [REFUND], "--expect-signals", str(listed))
    assert done.returncode == EXIT_MISSING_SIGNALS, done.stderr
    missing = {"spans": ["shop.checkout"], "metrics": ["shop.orders"], "events": ["shop.order.placed"]}
    assert json.loads(done.stdout)["statistics"]["expected_signals"]["missing"] == missing
    last = done.stderr.strip().splitlines()[-1]
    assert "3 of 4 EXPECTED SIGNALS NEVER ARRIVED" in last and "spans: shop.checkout" in last


def test_all_own_expects_every_span_metric_and_event_of_the_registry(shop_dir: Path) -> None:
    done = _live_check(shop_dir, [REFUND], "--expect-signals", "all-own", "--format", "ansi")
    assert done.returncode == EXIT_MISSING_SIGNALS
    assert "expected signals (all-own): 1/7 arrived" in done.stdout
    metrics = "shop.order.duration, shop.orders, shop.queue.depth, shop.stock"
    assert f"NEVER ARRIVED (metrics): {metrics}" in done.stdout


def test_findings_outrank_missing_signals_and_both_are_said(shop_dir: Path) -> None:
    done = _live_check(shop_dir, [REFUND_WITHOUT_ORDER], "--expect-signals", "all-own")
    assert done.returncode == EXIT_FINDINGS
    assert "EXPECTED SIGNALS NEVER ARRIVED" in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("span shop.refund\nspan shop.refnud\n", "expected.txt:2: the registry defines no span `shop.refnud"),
        ("metric shop.refund\n", "expected.txt:1: the registry defines no metric `shop.refund`"),
        ("spans shop.refund\n", "expected.txt:1: expected `span NAME`, `metric NAME` or `event NAME`"),
        ("# nothing\n", "expected.txt: the expected-signals list names no signal"),
        (b"\xff\xfe", "expected.txt: cannot read the expected-signals list: not UTF-8"),
    ],
)
def test_a_wrong_list_is_a_one_line_usage_error(
    shop_dir: Path, tmp_path: Path, content: str | bytes, message: str
) -> None:
    listed = tmp_path / "expected.txt"
    if isinstance(content, bytes):
        listed.write_bytes(content)
    else:
        listed.write_text(content)
    done = _live_check(shop_dir, [REFUND], "--expect-signals", str(listed))
    assert done.returncode == EXIT_USAGE
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_an_absent_list_is_a_usage_error_before_anything_runs(shop_dir: Path, tmp_path: Path) -> None:
    done = _live_check(shop_dir, [REFUND], "--expect-signals", str(tmp_path / "nope.txt"))
    assert done.returncode == EXIT_USAGE
    assert "nope.txt: cannot read the expected-signals list" in done.stderr


def test_the_ci_recipe_fails_when_the_real_emitter_sends_nothing() -> None:
    """A stand-in emitter that exits 0 having sent nothing must not let the recipe pass."""
    done = subprocess.run(
        ["bash", "scripts/telemetry-schema-ci.sh"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "TELEMETRY_EMITTER": "true", "KNHK_BIN": str(REPO_ROOT / ".venv/bin")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == EXIT_NO_SAMPLES, done.stderr[-2000:]
    assert "NO TELEMETRY received" in done.stderr
    assert "FAILED: self-test verdict 0, real emitters verdict 3" in done.stderr
