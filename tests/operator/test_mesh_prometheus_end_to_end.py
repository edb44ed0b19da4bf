"""End to end: a real Prometheus on 127.0.0.1 scrapes a running instrumented mesh of 500 agents,
evaluates the generated rules, and the alerts fire and resolve with their causes.

The mesh runs in a child process (`mesh_for_prometheus.py`), as a node would; the rules are
generated with a short rate window and `for: 0s`, so the test waits seconds, not minutes. Every
wait is bounded.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
AGENTS = 500
WINDOW = "30s"
WAIT_S = 360.0  # bound of every wait (a round of 500 agents takes seconds on a loaded machine)

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def _running_mesh(nodes: int, byzantine: int) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`mesh_for_prometheus.py` in a child process: (the process, its metrics `host:port`); stopped after."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "mesh_for_prometheus.py"),
            "--nodes",
            str(nodes),
            "--byzantine",
            str(byzantine),
            "--max-seconds",
            "900",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[:1] == ["prometheus"], first
        yield proc, f"{first[1]}:{first[2]}"
    finally:
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write("quit\n")
                proc.stdin.flush()
                proc.wait(timeout=120)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def mesh() -> Iterator[tuple[subprocess.Popen[str], str]]:
    with _running_mesh(AGENTS, 2) as running:
        yield running


def _send(proc: subprocess.Popen[str], command: str) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().startswith(f"ok {command}")  # applied between two rounds


def _rules(tmp_path: Path, window: str = WINDOW) -> Path:
    out = tmp_path / "rules"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "knhk_otel.cli",
            "generate",
            "alerts",
            "-o",
            str(out),
            "-D",
            f"rate_window={window}",
            "-D",
            "alert_for=0s",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE.parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    return out / "knhk-mesh.rules.yaml"


def _scraping(start_prometheus: Any, target: str, rules: Path, interval: str) -> Any:
    """A Prometheus scraping the mesh at `target` every `interval`, with `rules` loaded."""
    scrape = {
        "job_name": "knhk-mesh",
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "static_configs": [{"targets": [target]}],
    }
    return start_prometheus([scrape], rule_files=[rules])


def _firing(server: Any) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for alert in server.alerts():
        if alert["state"] == "firing":
            out.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
    return out


def _fired(server: Any, alert: str) -> list[dict[str, str]]:
    """Label sets with which `alert` has been firing in the last 15 minutes (Prometheus' own ALERTS
    series: a burst may fire and resolve between two polls of /api/v1/alerts)."""
    query = f'max_over_time(ALERTS{{alertname="{alert}", alertstate="firing"}}[15m])'
    return [r["metric"] for r in server.query(query)]


def test_prometheus_scrapes_500_agents_and_alerts_fire_and_resolve(
    mesh: tuple[subprocess.Popen[str], str], start_prometheus: Any, tmp_path: Path
) -> None:
    proc, target = mesh
    rules = _rules(tmp_path)
    records = [
        r["record"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"] if "record" in r
    ]
    server = _scraping(start_prometheus, target, rules, "2s")
    server.wait_for("the mesh to be scraped", lambda: bool(server.query('up{job="knhk-mesh"} == 1')), WAIT_S)

    # 500 agents in one process, and no cardinality overflow: metrics are per process, not per agent
    with urllib.request.urlopen(f"http://{target}/metrics", timeout=30) as resp:
        body = resp.read().decode()
    assert "otel_metric_overflow" not in body
    series = [line for line in body.splitlines() if line.startswith("knhk_mesh_")]
    assert 0 < len(series) < AGENTS, len(series)
    assert not any("node_id" in line for line in series)
    assert server.query('count(target_info{job="knhk-mesh"})')[0]["value"][1] == "1"

    # Byzantine agents: detections and distrusted peers fire their alerts
    server.wait_for(
        "Byzantine alerts firing",
        lambda: bool(
            _fired(server, "KnhkByzantineDetectionsRising") and _fired(server, "KnhkDistrustedPeers")
        ),
        WAIT_S,
    )
    kinds = {labels["knhk_mesh_byzantine_kind"] for labels in _fired(server, "KnhkByzantineDetectionsRising")}
    assert {"invalid_signature", "impersonation"} & kinds, kinds  # the two attacks of the driver

    # every recording rule returns a series from the real mesh
    def all_recorded() -> bool:
        return all(server.query(record) for record in records)

    server.wait_for("every recording rule to return a series", all_recorded, WAIT_S)
    empty = [record for record in records if not server.query(record)]
    assert empty == []

    # a forced tick-budget overrun fires the compliance alert per operation
    assert not _fired(server, "KnhkTickBudgetCompliance")
    _send(proc, "overrun on")

    def overrun_ops() -> set[str]:
        return {
            labels["knhk_mesh_tick_operation"]
            for labels in _firing(server).get("KnhkTickBudgetCompliance", [])
        }

    # each operation's compliance falls as its window fills with overruns: wait for all of them
    server.wait_for(
        "tick-budget alert firing for every operation",
        lambda: {"message", "merge", "validation", "peer_selection"} <= overrun_ops(),
        WAIT_S,
    )

    # causes gone: the alerts resolve
    _send(proc, "overrun off")
    _send(proc, "byzantine off")
    server.wait_for(
        "the alerts to resolve",
        lambda: not {"KnhkTickBudgetCompliance", "KnhkByzantineDetectionsRising"} & set(_firing(server)),
        WAIT_S,
    )
    # the mesh's telemetry met its schema all along
    assert not _fired(server, "KnhkSchemaViolations")
    assert proc.poll() is None  # still running: the alerts resolved while it kept gossiping


PARTITION_ALERTS = {"KnhkPartitionDetected", "KnhkPeersBelowQuorum"}
PARTITION_AGENTS = 40  # honest only: a distrusted agent is ignored by all and counts itself cut off
PARTITION_WINDOW = "20s"  # increase() window of KnhkPartitionDetected: it resolves this long after the heal
PARTITION_WAIT_S = 120.0  # bound of each wait (a round of 40 agents takes milliseconds)


def _partitioned(server: Any) -> float:
    """Agents whose detector says partitioned, summed over the mesh (-1 before the first scrape)."""
    result = server.query('sum(knhk_mesh_partition_status{knhk_mesh_partition_status="partitioned"})')
    return float(result[0]["value"][1]) if result else -1.0


def _alert_state(server: Any) -> str:
    """What /api/v1/alerts reports, one `name state` per alert, for failure messages."""
    return (
        ", ".join(sorted(f"{a['labels']['alertname']} {a['state']}" for a in server.alerts())) or "no alert"
    )


def _wait_reporting(server: Any, what: str, predicate: Callable[[], bool]) -> None:
    """`server.wait_for`, failing with the alerts and partitioned count Prometheus reported last."""
    try:
        server.wait_for(what, predicate, PARTITION_WAIT_S)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nlast alerts: {_alert_state(server)}; agents partitioned: {_partitioned(server)}"
        ) from None


def test_partition_alerts_fire_during_a_split_and_resolve_after_the_heal(
    start_prometheus: Any, tmp_path: Path
) -> None:
    """40 honest agents split 50/50 (each half of 20 is below its quorum of 27): with the generated
    rules loaded, a real Prometheus reports KnhkPartitionDetected and KnhkPeersBelowQuorum firing during
    the split, and neither firing once the mesh is healed."""
    rules = _rules(tmp_path, window=PARTITION_WINDOW)
    with _running_mesh(PARTITION_AGENTS, 0) as (proc, target):
        server = _scraping(start_prometheus, target, rules, "1s")
        _wait_reporting(server, "the mesh scraped, no agent partitioned", lambda: _partitioned(server) == 0)
        assert not PARTITION_ALERTS & set(_firing(server)), _alert_state(server)

        _send(proc, "partition 50/50")
        _wait_reporting(
            server, "both partition alerts firing", lambda: set(_firing(server)) >= PARTITION_ALERTS
        )
        _wait_reporting(
            server,
            f"all {PARTITION_AGENTS} agents partitioned",
            lambda: _partitioned(server) == PARTITION_AGENTS,
        )

        _send(proc, "heal")
        _wait_reporting(
            server, "both partition alerts resolved", lambda: not PARTITION_ALERTS & set(_firing(server))
        )
        assert _partitioned(server) == 0, _alert_state(server)
        # both fired in Prometheus' own ALERTS series, and the telemetry met its schema all along
        assert _fired(server, "KnhkPartitionDetected") and _fired(server, "KnhkPeersBelowQuorum")
        assert not _fired(server, "KnhkSchemaViolations")
        assert proc.poll() is None  # the mesh kept gossiping through the split and the heal


def test_distrusted_peers_alert_fires_during_attacks_and_resolves_once_they_stop(
    start_prometheus: Any, tmp_path: Path
) -> None:
    """12 agents, 2 of them Byzantine: KnhkDistrustedPeers fires while they attack, and once they stop
    their reputation recovers (one step every recovery_every_rounds) and the alert resolves."""
    rules = _rules(tmp_path)
    with _running_mesh(12, 2) as (proc, target):
        server = _scraping(start_prometheus, target, rules, "1s")

        def distrusted() -> float:
            got = server.query("sum(knhk_mesh_peer_distrusted)")
            return float(got[0]["value"][1]) if got else -1.0

        _wait_reporting(
            server, "KnhkDistrustedPeers firing", lambda: "KnhkDistrustedPeers" in _firing(server)
        )
        assert distrusted() > 0, _alert_state(server)
        _send(proc, "byzantine off")
        _wait_reporting(
            server,
            "KnhkDistrustedPeers resolved, no peer distrusted",
            lambda: "KnhkDistrustedPeers" not in _firing(server) and distrusted() == 0,
        )
        assert not _fired(server, "KnhkSchemaViolations")
        assert proc.poll() is None


VIOLATION_WINDOW = "10s"  # increase() window of KnhkSchemaViolations: it resolves this long after


def _findings(server: Any, **labels: str) -> dict[tuple[str, str, str], float]:
    """The scraped `knhk_mesh_schema_findings_total` series: (id, level, signal type) → value."""
    where = ", ".join(f'knhk_mesh_schema_finding_{k}="{v}"' for k, v in labels.items())
    return {
        (
            r["metric"]["knhk_mesh_schema_finding_id"],
            r["metric"]["knhk_mesh_schema_finding_level"],
            r["metric"]["knhk_mesh_schema_signal_type"],
        ): float(r["value"][1])
        for r in server.query(f"knhk_mesh_schema_findings_total{{{where}}}")
    }


def test_a_single_schema_violation_fires_the_alert_and_it_resolves(
    start_prometheus: Any, tmp_path: Path
) -> None:
    """A mesh validating in `count` mode reports 0 findings of every kind from its start (a panel
    reads 0, not "no data"); one span the schema does not define, ended once, counts 1 on its series,
    an increase Prometheus sees: KnhkSchemaViolations fires, and resolves when the window passed."""
    rules = _rules(tmp_path, window=VIOLATION_WINDOW)
    with _running_mesh(4, 0) as (proc, target):
        server = _scraping(start_prometheus, target, rules, "1s")
        missing_span = ("missing_span", "violation", "span")
        _wait_reporting(
            server, "the findings counted from 0", lambda: _findings(server).get(missing_span) == 0
        )
        zeros = _findings(server)
        assert set(zeros.values()) == {0.0} and len(zeros) > 40, zeros
        assert {level for _id, level, _signal in zeros} == {"violation", "improvement"}
        assert "KnhkSchemaViolations" not in _firing(server), _alert_state(server)

        _send(proc, "undescribed span")
        _wait_reporting(
            server, "KnhkSchemaViolations firing", lambda: "KnhkSchemaViolations" in _firing(server)
        )
        (labels,) = _firing(server)["KnhkSchemaViolations"]
        assert labels["instance"] == target and labels["severity"] == "warning"
        counted = {key: value for key, value in _findings(server).items() if value}
        assert counted == {missing_span: 1.0}, counted  # on the series that started at 0, no new one

        # one violation and no more: once it is older than the window, the alert resolves
        _wait_reporting(
            server, "KnhkSchemaViolations resolved", lambda: "KnhkSchemaViolations" not in _firing(server)
        )
        assert _findings(server, id="missing_span", level="violation") == {missing_span: 1.0}
        assert proc.poll() is None
