"""`knhk-mesh up --transport quic`: N node processes on loopback, writes, a live table, a JSON summary.

The live-check receiver is handed in (the CLI builds it from knhk_otel): every node exports its
telemetry to it over OTLP, and its report decides, with convergence, the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table

from knhk_mesh.adversary import Attack
from knhk_mesh.localcluster import ClusterError, ClusterSpec, LocalCluster, region_names

EXIT_OK, EXIT_FAILED = 0, 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT
POLL_S = 1.0


class _Report(Protocol):
    def build(self) -> dict[str, Any]: ...


class _Checker(Protocol):
    @property
    def report(self) -> _Report: ...


class LiveChecker(Protocol):
    @property
    def checker(self) -> _Checker: ...

    def start(self) -> dict[str, int]: ...

    def stop(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class _Tally:
    """Rows of the live table from successive /status snapshots."""

    def __init__(self) -> None:
        self.last_sent = 0
        self.last_time = time.monotonic()
        self.rows: list[dict[str, Any]] = []

    def row(
        self, elapsed: float, statuses: dict[str, dict[str, Any]], honest: set[str], findings: dict[str, int]
    ) -> dict[str, Any]:
        h = [s for name, s in statuses.items() if name in honest]
        digests = Counter(s["digest"] for s in h)
        top = digests.most_common(1)[0][1] if digests else 0
        sent = sum(s["messages_sent"] for s in statuses.values())
        now = time.monotonic()
        rate = (sent - self.last_sent) / max(now - self.last_time, 1e-6)
        self.last_sent, self.last_time = sent, now
        count = sum(t["count"] for s in statuses.values() for t in s["ticks"].values())
        over = sum(t["overruns"] for s in statuses.values() for t in s["ticks"].values())
        row = {
            "t_s": round(elapsed, 1),
            "nodes_up": len(statuses),
            "round_min": min((s["round"] for s in h), default=0),
            "round_max": max((s["round"] for s in h), default=0),
            "converged_pct": round(100.0 * top / len(honest), 1) if honest else 0.0,
            "messages_per_s": round(rate, 1),
            "tick_budget_pct": round(100.0 * (count - over) / count, 1) if count else None,
            "byzantine_detections": sum(sum(s["detections"].values()) for s in statuses.values()),
            "handshake_refusals": sum(sum(s["handshake_refusals"].values()) for s in statuses.values()),
            "schema_violations": findings.get("violation", 0),
            "schema_improvements": findings.get("improvement", 0),
        }
        self.rows.append(row)
        return row


def _agree(statuses: dict[str, dict[str, Any]], honest: set[str], writes: int) -> bool:
    """Every honest node answered, with one digest, holding at least the writes."""
    h = [s for name, s in statuses.items() if name in honest]
    agreed = len(h) == len(honest) and len({s["digest"] for s in h}) == 1
    return agreed and all(s["entries"] >= writes for s in h)


def _table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for name in (
        "t (s)",
        "nodes",
        "round",
        "converged",
        "msgs/s",
        "ticks in budget",
        "Byzantine det.",
        "violations",
    ):
        table.add_column(name, justify="right")
    for r in rows[-12:]:
        ticks = "—" if r["tick_budget_pct"] is None else f"{r['tick_budget_pct']:.1f}%"
        table.add_row(
            f"{r['t_s']:.0f}",
            str(r["nodes_up"]),
            f"{r['round_min']}-{r['round_max']}",
            f"{r['converged_pct']:.0f}%",
            f"{r['messages_per_s']:.0f}",
            ticks,
            str(r["byzantine_detections"]),
            str(r["schema_violations"]),
        )
    return table


def run_up_quic(
    args: argparse.Namespace,
    validate: Callable[[argparse.Namespace], None],
    live_check: Callable[[], LiveChecker],
    console: Console | None = None,
) -> int:
    validate(args)
    console = console or Console(width=None if Console().is_terminal else 110)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="knhk-mesh-up."))
    summary_path: Path = args.summary or workdir / "summary.json"
    live = live_check()
    ports = live.start()
    n, b = args.nodes, args.byzantine
    attacks: list[Attack | None] = [None] * (n - b) + [list(Attack)[i % 2] for i in range(b)]
    # every node process serves its own metrics endpoint on a free port when asked (flags or OTEL_*)
    exporters = os.environ.get("OTEL_METRICS_EXPORTER", "").lower().replace(" ", "").split(",")
    prometheus = (
        args.prometheus_port is not None or args.prometheus_host is not None or "prometheus" in exporters
    )
    spec = ClusterSpec(
        nodes=n,
        prometheus=prometheus,
        attacks=attacks,
        fanout=min(args.fanout or 4, n - 1),
        round_interval=args.round_interval,
        regions=region_names(n, args.regions),
        peer_selection=args.peer_selection,
        nearest_fraction=args.nearest_fraction,
        rebalance_every_rounds=args.rebalance_every,
        topology=args.topology,
        validation="count",  # as a lone `knhk-mesh node` (live-check judges the export too)
        export=True,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports['grpc']}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_METRIC_EXPORT_INTERVAL": "2000",
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
            "OTEL_BLRP_SCHEDULE_DELAY": "1000",
        },
    )
    cluster = LocalCluster(workdir, spec)
    console.print(
        f"knhk-mesh up: {n} node processes over QUIC on 127.0.0.1 ({n - b} honest, {b} Byzantine: "
        f"{', '.join(a.value for a in attacks if a) or 'none'}), fanout {spec.fanout}, "
        f"rounds of {spec.round_interval:g} s, live-check on 127.0.0.1:{ports['grpc']}, work folder {workdir}"
    )
    tally = _Tally()
    writes: list[dict[str, Any]] = []
    converged_at: float | None = None
    error: str | None = None
    codes: dict[str, int | None] = {}
    honest_names = {f"node-{i:02d}" for i in range(n - b)}
    interrupted = False
    t0 = time.monotonic()
    started = 0.0
    try:
        cluster.prepare()
        cluster.start()
        for node in cluster.nodes:
            if node.metrics_address is not None:
                console.print(f"metrics for Prometheus: {node.name} http://{node.metrics_address}/metrics")
        # writes start once membership has spread (bounded): the clock measures gossip, not start-up
        membership = cluster.wait_for_membership(timeout=60.0)
        started = time.monotonic() - t0
        if not membership:
            console.print("warning: membership had not spread to every node after 60 s; writing anyway")
        honest = cluster.honest()
        t_write = time.monotonic()
        for i in sorted({0, len(honest) // 3, 2 * len(honest) // 3}):
            doc = cluster.put(honest[i], f"mesh/agent-{i}", f"written by {honest[i].name}")
            writes.append(
                {"node": honest[i].name, "agent": doc["agent"], "key": doc["key"], "version": doc["version"]}
            )
        with Live(console=console, refresh_per_second=2, transient=False) as view:
            deadline = t_write + args.duration
            while time.monotonic() < deadline:
                time.sleep(POLL_S)
                statuses = cluster.statuses()
                findings = live.checker.report.build()["statistics"]["findings_by_level"]
                tally.row(time.monotonic() - t_write, statuses, honest_names, findings)
                if converged_at is None and _agree(statuses, honest_names, len(writes)):
                    converged_at = time.monotonic() - t_write
                view.update(_table(tally.rows, f"QUIC mesh, {n} nodes"))
        console.print()
        final = cluster.statuses()
        converged_end = _agree(final, honest_names, len(writes))
        if converged_end and converged_at is None:
            converged_at = time.monotonic() - t_write  # agreed between the last row and now
    except (ClusterError, OSError) as exc:
        error = str(exc)
        final, converged_end = cluster.statuses(), False
    except KeyboardInterrupt:  # Ctrl-C: stop the nodes, still write what was seen so far
        interrupted, error = True, "interrupted (Ctrl-C) before the end of the run"
        final, converged_end = {}, False
    finally:
        for node in cluster.nodes:
            if node.alive and node.process is not None:
                node.process.send_signal(signal.SIGTERM)
        codes = cluster.stop()
        time.sleep(1.0)  # the last OTLP batches, flushed at shutdown, reach the receiver
        report = live.stop()
        live.close()
    stats = report["statistics"]
    violations = stats["findings_by_level"].get("violation", 0)
    detections: Counter[str] = Counter()
    for s in final.values():
        detections.update(s["detections"])
    summary = {
        "transport": "quic",
        "nodes": n,
        "byzantine": b,
        "attacks": [a.value for a in attacks if a],
        "fanout": spec.fanout,
        "round_interval_s": spec.round_interval,
        "startup_s": round(started, 2) if error is None else None,
        "duration_s": args.duration,
        "writes": writes,
        "converged": converged_end,
        "converged_after_s": None if converged_at is None else round(converged_at, 2),
        "byzantine_detections": dict(detections),
        "live_check": {
            "total_samples": stats["total_samples"],
            "samples_by_type": stats["samples_by_type"],
            "findings_by_level": stats["findings_by_level"],
            "findings_by_id": stats["findings_by_id"],
            "coverage": {k: v["ratio"] for k, v in stats["coverage"].items()},
            "never_seen": {k: v["never_seen"] for k, v in stats["coverage"].items() if k != "attributes"},
        },
        "prometheus_targets": {
            node.name: node.metrics_address for node in cluster.nodes if node.metrics_address
        },
        "exit_codes": codes,
        "error": error,
        "timeline": tally.rows,
        "final_status": final,
    }
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2))
    say = console.print
    if error is not None:
        say(f"error: {error}")
    if converged_at is not None:
        say(
            f"convergence: {len(writes)} writes at {len(writes)} nodes; "
            f"all {n - b} honest nodes hold identical state "
            f"{converged_at:.1f} s after the writes (polled every {POLL_S:g} s)"
            + (
                ""
                if converged_end
                else " (interrupted: not checked at the end)"
                if interrupted
                else ", but NOT at the end"
            )
        )
    else:
        say(f"convergence: the {n - b} honest nodes did NOT reach identical state in {args.duration} s")
    say(
        "Byzantine detections by kind: "
        + (", ".join(f"{k} {v}" for k, v in sorted(detections.items())) or "none")
    )
    cov = summary["live_check"]["coverage"]
    say(
        f"live-check: {stats['total_samples']} samples, {violations} violations, "
        f"{stats['findings_by_level'].get('improvement', 0)} improvements; coverage: "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in cov.items())
    )
    bad_exits = {k: v for k, v in codes.items() if v not in (0, None)}
    if bad_exits:
        say(f"nodes that did not stop cleanly: {bad_exits}")
    say(f"summary: {summary_path}")
    ok = error is None and converged_end and violations == 0 and stats["total_samples"] > 0 and not bad_exits
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if ok else EXIT_FAILED
