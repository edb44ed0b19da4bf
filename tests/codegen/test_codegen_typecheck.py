"""Mistakes in calls to the generated helpers are caught by mypy before anything runs."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from .conftest import REPO_ROOT, VENV_BIN

GOOD = """
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from knhk_otel.semconv import attributes, metrics, spans

tracer = TracerProvider().get_tracer("t")
topology = attributes.Topology.MULTI_REGION
with spans.start_gossip_round(tracer, node_id="a", gossip_round=1, topology=topology) as s:
    s.set_attribute("x", 1)
operation = attributes.TickOperation.MERGE
metrics.TickUsage(MeterProvider().get_meter("m")).record(2, tick_operation=operation)
metrics.TickUsage(MeterProvider().get_meter("m")).record(2, tick_operation="merge")
"""

BAD = """
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from knhk_otel.semconv import attributes, metrics, spans

tracer = TracerProvider().get_tracer("t")
meter = MeterProvider().get_meter("m")
spans.start_gossip_round(tracer, node_id="a")  # line 8: required attribute missing
spans.start_gossip_round(tracer, node_id="a", gossip_round="1")  # line 9: wrong type
metrics.TickUsage(meter).record(1, tick_operation=attributes.TickOperation.TELEPORT)  # line 10
metrics.TickUsage(meter).record(1, tick_operation="merj")  # line 11: not a member value
spans.start_gossip_round(tracer, node_id="a", gossip_round=1, colour="red")  # line 12: not in the schema
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "usage.py"
    path.write_text(textwrap.dedent(source).lstrip())
    return subprocess.run(
        [str(VENV_BIN / "mypy"), "--strict", "--cache-dir", str(tmp_path / "cache"), str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_correct_calls_type_check(tmp_path: Path) -> None:
    result = _mypy(tmp_path, GOOD)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_wrong_calls_fail_type_checking(tmp_path: Path) -> None:
    result = _mypy(tmp_path, BAD)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = {int(line.split(":")[1]): line for line in result.stdout.splitlines() if ": error:" in line}
    assert 'Missing named argument "gossip_round"' in errors[8], result.stdout
    assert 'Argument "gossip_round" to "start_gossip_round" has incompatible type "str"' in errors[9]
    assert '"TELEPORT"' in errors[10] and "TickOperation" in errors[10]
    assert (
        '"tick_operation" to "record" of "TickUsage" has incompatible type "Literal[\'merj\']"' in errors[11]
    )
    assert 'Unexpected keyword argument "colour"' in errors[12]
