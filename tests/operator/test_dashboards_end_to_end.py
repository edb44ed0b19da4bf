"""End to end: a real Prometheus scrapes a running `knhk-mesh up` (its own Prometheus endpoint) and
a few QUIC node processes (each its own endpoint: the send queues live there, and they validate
their telemetry in `count` mode, as deployed), and every query of every generated dashboard returns
at least one series with a finite value — except the queries of metrics no component emits, listed
in EXPECTED_EMPTY with the reason, whose queries must stay empty (so the list cannot go stale
silently). Then `knhk-otel dashboards render` draws every dashboard from that Prometheus: one PNG
each, and exactly the panels of those metrics without data.

"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from knhk_mesh.localcluster import ClusterSpec, LocalCluster
from knhk_otel.codegen import naming
from knhk_otel.dashboards.render import expand, variable_values
from knhk_otel.schema import load_and_resolve
from knhk_otel.validate.findings import COUNTED_IN_PROCESS

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO_ROOT / "dashboards"
AGENTS, BYZANTINE = 60, 3
#: How long the mesh may run at most (it is stopped as soon as the test has what it needs).
MESH_ROUNDS = 3000

#: QUIC node processes beside the memory mesh: the only transport with send queues
#: (`knhk.mesh.queue.size`); in `count` mode, as deployed, their `knhk.mesh.schema.findings` series
#: start at 0 (the memory mesh runs strict, which raises instead of counting).
QUIC_NODES = 3

#: Schema metric → why no running component emits it (none today: every metric has a panel with data).
EXPECTED_EMPTY: dict[str, str] = {}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_mesh(tmp_path: Path, port: int) -> Iterator[str]:
    """`knhk-mesh up` with its Prometheus endpoint on `port`; yields `host:port`, stops the mesh after."""
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp_path / "mesh.log"
    command = [
        str(Path(sys.executable).with_name("knhk-mesh")),
        "up",
        "--transport=memory",
        f"--nodes={AGENTS}",
        f"--byzantine={BYZANTINE}",
        f"--rounds={MESH_ROUNDS}",
        # two splits early in the run (rounds 50-100 and 150-200), so the partition panels have
        # detections and recoveries: the second heal's recoveries are an increase of the histogram
        # series the first one created (a series whose first sample is its only value has no rate)
        "--partition=50/50@5s+5s",
        "--partition=50/50@15s+5s",
        # hierarchical over 3 regions, so the hierarchy panels (agents per level) have data too
        "--topology=hierarchical",
        "--regions=3",
        "--prometheus-host=127.0.0.1",
        f"--prometheus-port={port}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        address = None
        while address is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(
                r"metrics for Prometheus: http://([^/\s]+)/metrics", log.read_text(errors="replace")
            )
            address = found.group(1) if found else None
            time.sleep(0.2)
        assert address is not None, (
            f"knhk-mesh up printed no metrics endpoint: {log.read_text(errors='replace')}"
        )
        yield address
        assert proc.poll() is None, (
            f"the mesh stopped before the test was done: {log.read_text(errors='replace')}"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _schema_names() -> dict[str, str]:
    """Prometheus family name → schema metric name, for every metric of the schema."""
    registry, diagnostics = load_and_resolve(REPO_ROOT / "schema")
    assert registry is not None, [d.render() for d in diagnostics]
    return {naming.prometheus_name(g): g.signal_name for g in registry.groups if g.type == "metric"}


def _metrics_of(expr: str, names: dict[str, str]) -> set[str]:
    if "__name__" in expr:  # the coverage query names every metric in one regex
        return set()
    return {
        metric for family, metric in names.items() if re.search(rf"\b{family}(_bucket|_count|_sum)?\b", expr)
    }


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(item["value"][1])) for item in result)


def _check(server: Any, boards: dict[str, Any], names: dict[str, str]) -> tuple[list[str], list[str], int]:
    """(empty, stale, filled): queries without data that should have some, expected-empty queries that
    have data, and how many queries have data."""
    empty: list[str] = []
    stale: list[str] = []
    filled = 0
    for file, board in boards.items():
        values = variable_values(board, {})
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = expand(target["expr"], values, "3m")  # a window covering the whole run
                where = f"{file} {panel['title']!r} {target['refId']}"
                metrics = _metrics_of(target["expr"], names)
                expected_empty = bool(metrics) and metrics <= set(EXPECTED_EMPTY)
                has_data = _finite(server.query(expr))
                if expected_empty and has_data:
                    stale.append(f"{where}: has data now; drop {sorted(metrics)} from EXPECTED_EMPTY")
                elif not expected_empty and not has_data:
                    empty.append(f"{where}: {expr}")
                filled += has_data
    return empty, stale, filled


@pytest.mark.slow
def test_every_dashboard_query_returns_data_from_a_running_mesh(
    start_prometheus: Any, tmp_path: Path
) -> None:
    names = _schema_names()
    assert set(EXPECTED_EMPTY) <= set(names.values()), "EXPECTED_EMPTY names a metric the schema dropped"
    boards = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}
    assert len(boards) == 6
    port = _closed_port()
    rules = sorted((REPO_ROOT / "collector" / "rules").glob("*.rules.yaml"))
    assert rules, "no generated rules in collector/rules (run `knhk-otel generate alerts`)"
    with quic_nodes(tmp_path) as quic_targets:
        # Prometheus before the memory mesh, so that it sees the mesh from its first round (a rate
        # needs two samples), with the generated rules: dashboards read heavy figures from them
        server = start_prometheus(
            [
                {"job_name": "knhk-mesh", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
                {"job_name": "knhk-mesh-quic", "static_configs": [{"targets": quic_targets}]},
            ],
            rule_files=rules,
            scrape_interval="1s",
        )
        with running_mesh(tmp_path, port):
            _check_every_query(server, boards, names, tmp_path)


@contextlib.contextmanager
def quic_nodes(tmp_path: Path) -> Iterator[list[str]]:
    """QUIC_NODES `knhk-mesh node` processes serving their metrics; yields their `host:port`s."""
    spec = ClusterSpec(
        nodes=QUIC_NODES, fanout=QUIC_NODES - 1, round_interval=0.25, validation="count", prometheus=True
    )
    cluster = LocalCluster(tmp_path / "quic", spec)
    try:
        cluster.prepare()
        cluster.start(timeout=90)
        targets = [node.metrics_address for node in cluster.nodes]
        assert all(targets), f"a node served no metrics endpoint: {[cluster.tail(n) for n in cluster.nodes]}"
        yield [t for t in targets if t is not None]
        assert all(node.alive for node in cluster.nodes), [cluster.tail(n) for n in cluster.nodes]
    finally:
        cluster.stop()


def _check_every_query(server: Any, boards: dict[str, Any], names: dict[str, str], tmp_path: Path) -> None:
    """Every dashboard query has data (polled, bounded), then every dashboard renders with data."""
    server.wait_for("a scrape of the mesh", lambda: bool(server.query('up{job="knhk-mesh"} == 1')), 90)
    server.wait_for(
        f"a scrape of the {QUIC_NODES} QUIC nodes",
        lambda: len(server.query('up{job="knhk-mesh-quic"} == 1')) == QUIC_NODES,
        90,
    )
    # the mesh fills in as it runs (convergence of its first writes, pings): poll, bounded
    seen: list[tuple[list[str], list[str], int]] = []

    def complete() -> bool:
        seen.append(_check(server, boards, names))
        return not seen[-1][0]

    with contextlib.suppress(AssertionError):  # the lists below say which queries stayed empty
        server.wait_for("data in every dashboard query", complete, 150)
    empty, stale, filled = seen[-1]
    assert stale == []
    assert empty == [], "\n".join(empty)
    assert filled > 45
    # the QUIC nodes' own figures: send queues, and findings counted from 0 (they conform: all 0)
    assert server.query('knhk_mesh_queue_size{job="knhk-mesh-quic"}')
    findings = server.query('knhk_mesh_schema_findings_total{job="knhk-mesh-quic"}')
    per_node = sum(len(signals) for signals in COUNTED_IN_PROCESS.values())
    assert len(findings) == QUIC_NODES * per_node, len(findings)
    assert {float(f["value"][1]) for f in findings} == {0.0}
    _render_all(server.url, boards, names, tmp_path)


def _render_all(
    url: str,
    boards: dict[str, Any],
    names: dict[str, str],
    tmp_path: Path,
) -> None:
    """`knhk-otel dashboards render` from the same Prometheus: one PNG per dashboard, and exactly the
    panels of expected-empty metrics without data."""
    out = tmp_path / "png"
    done = subprocess.run(  # as a user runs it; matplotlib stays out of the test process
        [
            str(Path(sys.executable).with_name("knhk-otel")),
            "dashboards",
            "render",
            f"--prometheus={url}",
            f"--output={out}",
            f"--dashboards={DASHBOARDS}",
            "--range=3m",
            "--scrape-interval=1s",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f.replace(".json", ".png") for f in boards)
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000, png
    for file, board in boards.items():
        expected_no_data = sorted(
            p["title"]
            for p in board["panels"]
            if p.get("targets")
            and all((m := _metrics_of(t["expr"], names)) and m <= set(EXPECTED_EMPTY) for t in p["targets"])
        )
        panels = [p for p in board["panels"] if p["type"] != "row"]
        (line,) = [line for line in lines if line.startswith(f"{out / file.replace('.json', '.png')}:")]
        match = re.fullmatch(r".*: (\d+) panels, (\d+) with data(?: \(no data: (.*)\))?", line)
        assert match is not None, line
        no_data = sorted(match.group(3).split("; ")) if match.group(3) else []
        assert int(match.group(1)) == len(panels), line
        assert no_data == expected_no_data, line
        assert int(match.group(2)) == len(panels) - len(expected_no_data), line
