"""The partition detector in memory: splits are detected within a bound, sides below quorum refuse
writes while a side at quorum keeps taking them, and healing merges every accepted write.

Bound: a peer leaves the reachable set after a window of silence (auto: max(20, 3(n-1)/k) rounds, 20
here) and a verdict takes `confirm_rounds` (3) checks, so a split is detected within
window + confirm + 1 = 24 rounds. Meshes are small (30-40 agents) to keep the suite lean.
"""

from __future__ import annotations

from typing import Any

import pytest

from knhk_mesh.cluster import Cluster, build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.errors import PartitionedError
from knhk_mesh.core.messages import Entry
from knhk_mesh.core.partition import (
    Check,
    PartitionConfig,
    PartitionDetector,
    PartitionStatus,
    quorum,
)
from knhk_otel.semconv import metrics as M

HEALTHY, PARTITIONED, RECOVERING = PartitionStatus
CFG = MeshConfig()  # fanout 10, 0.1 s rounds: the defaults `knhk-mesh up` runs
INTERVAL = CFG.round_interval
DETECT_BOUND = 20 + 3 + 1  # window + confirm_rounds + 1 (the window is 20 rounds up to n = 67)
HEAL_BOUND = 40  # rounds from the heal until every agent is healthy again


def _statuses(engines: list[MeshEngine]) -> set[PartitionStatus]:
    return {e.partition.status for e in engines}


def _split(cluster: Cluster, *sides: list[MeshEngine]) -> int:
    """Cut the network into `sides` and run until each side's verdict is in: the rounds it took."""
    net = cluster.network
    net.partition([[e.address for e in side] for side in sides])
    expected = [PARTITIONED if quorum(len(cluster.honest)) > len(side) else HEALTHY for side in sides]
    for rounds in range(1, DETECT_BOUND + 1):
        net.run_for(INTERVAL)
        if all(_statuses(side) == {want} for side, want in zip(sides, expected, strict=True)):
            return rounds
    pytest.fail(f"no verdict within {DETECT_BOUND} rounds: {[_statuses(s) for s in sides]}")


def _write_everywhere(engines: list[MeshEngine], tag: str, now: float) -> tuple[list[Entry], int]:
    """A write on every engine: (the accepted entries, how many were refused as read-only)."""
    accepted: list[Entry] = []
    refused = 0
    for i, e in enumerate(engines):
        try:
            accepted.append(e.write(f"{tag}/{i}", b"v", now))
        except PartitionedError as exc:
            assert "read-only" in str(exc) and "\n" not in str(exc)
            refused += 1
    return accepted, refused


def _heal_and_count(cluster: Cluster, accepted: list[Entry]) -> int:
    """Heal, run until every agent is healthy again; every agent must hold every accepted write."""
    net = cluster.network
    net.heal()
    rounds = 0
    while _statuses(cluster.honest) != {HEALTHY} or len(cluster.digests()) != 1:
        rounds += 1
        assert rounds <= HEAL_BOUND, f"not healed within {HEAL_BOUND} rounds: {_statuses(cluster.honest)}"
        net.run_for(INTERVAL)
    for e in cluster.honest:
        held = sum(1 for w in accepted if e.state.get(w.agent, w.key) == w)
        assert held == len(accepted), (e.node_id, held, len(accepted))
    return rounds


def _run(n: int, minority: int, seed: int, **kw: Any) -> dict[str, int]:
    """Split n agents into `minority` and the rest, write on every agent during the split and after."""
    cluster = build_cluster(n, seed=seed, config=CFG, **kw)
    net = cluster.network
    net.run_for(25 * INTERVAL)  # past the first window: verdicts are given
    assert _statuses(cluster.honest) == {HEALTHY}
    before, refused = _write_everywhere(cluster.honest, "before", net.now)
    assert refused == 0
    net.run_for(10 * INTERVAL)
    assert len(cluster.digests()) == 1  # spread everywhere before the split
    small, large = cluster.honest[:minority], cluster.honest[minority:]
    detected = _split(cluster, small, large)
    during, refused = _write_everywhere(cluster.honest, "during", net.now)
    refusing = [e for e in cluster.honest if e.partition.read_only]
    assert refused == len(refusing)
    for side in (small, large):
        assert all(e.partition.read_only == (len(side) < quorum(n)) for e in side)
    net.run_for(5 * INTERVAL)  # the split lasts on: the accepted writes spread within their side
    assert _statuses(small) == {PARTITIONED}  # and no verdict flapped meanwhile
    # nothing accepted is dropped: every agent still holds every earlier write, every writer its own
    assert all(e.state.get(w.agent, w.key) == w for w in before for e in cluster.honest)
    by_id = {e.agent_id: e for e in cluster.honest}
    assert all(by_id[w.agent].state.get(w.agent, w.key) == w for w in during)
    healed = _heal_and_count(cluster, before + during)
    after, refused = _write_everywhere(cluster.honest, "after", net.now)
    assert refused == 0 and len(after) == n
    accepted = len(before + during)
    return {"detected": detected, "healed": healed, "accepted": accepted, "refused": len(refusing)}


def test_a_50_50_split_makes_both_sides_read_only_and_healing_merges_everything() -> None:
    n = 30  # quorum 21: each side of 15 is below it
    got = _run(n, 15, seed=31)
    assert got["detected"] <= DETECT_BOUND
    assert got["refused"] == n  # every agent refused its write during the split
    assert got["accepted"] == n  # the writes before the split, all kept
    print(f"\n50/50 of {n}: detected in {got['detected']} rounds, healthy {got['healed']} after the heal")


def test_a_70_30_split_keeps_the_majority_writing() -> None:
    n = 40  # quorum 27: 28 agents keep it, 12 do not
    got = _run(n, 12, seed=32)
    assert got["refused"] == 12
    assert got["accepted"] == n + 28  # before the split everyone, during it the majority
    print(f"\n70/30 of {n}: detected in {got['detected']} rounds, healthy {got['healed']} after the heal")


def test_a_single_isolated_agent_goes_read_only_and_the_rest_does_not_notice(telemetry: Any) -> None:
    hub = telemetry.hub
    n = 30
    got = _run(n, 1, seed=33, instrumentation=lambda ident: hub.for_node(ident.hex_id))
    assert got["refused"] == 1 and got["accepted"] == n + n - 1
    # the isolated agent told it, through the generated helpers (validated strictly by the fixture)
    detected = telemetry.events("knhk.mesh.partition.detected")
    healed = telemetry.events("knhk.mesh.partition.healed")
    assert len(detected) == 1 and len(healed) == 1
    assert detected[0].attributes["knhk.mesh.partition.quorum"] == quorum(n)
    assert detected[0].attributes["knhk.mesh.partition.reachable"] < quorum(n) - 1
    assert telemetry.spans("knhk.mesh.partition.detect") and telemetry.spans("knhk.mesh.partition.recover")
    [count] = telemetry.points(M.PartitionsDetected.NAME)
    assert count.value == 1
    [duration] = telemetry.points(M.PartitionRecoveryDuration.NAME)
    assert duration.count == 1 and duration.sum > 0
    points = telemetry.points(M.PartitionStatus.NAME)
    status = {p.attributes["knhk.mesh.partition.status"]: p.value for p in points}
    assert status == {"healthy": n, "partitioned": 0, "recovering": 0}
    refused = [
        p.value
        for p in telemetry.points(M.MessagesRejected.NAME)
        if p.attributes["knhk.mesh.rejection.reason"] == "read_only"
    ]
    assert refused == [1]


def test_one_quiet_check_does_not_flap_and_recovery_waits_for_agreeing_roots() -> None:
    det = PartitionDetector(PartitionConfig(confirm_rounds=3, clean_rounds=3))
    ok, cut = Check(30, 29, 5, 0), Check(30, 10, 0, 0)
    assert quorum(30) == 21 and quorum(4) == 3 and quorum(1) == 1
    for check in (cut, cut, ok, cut, cut):  # never three in a row
        assert det.check(check, 1.0) is None
    assert det.status is HEALTHY and not det.read_only
    move = det.check(cut, 2.0)
    assert move is not None and move.detected and det.read_only and det.detections == 1
    assert det.check(ok, 3.0) is None and det.check(cut, 3.1) is None  # a streak is consecutive
    for _ in range(2):
        assert det.check(ok, 3.2) is None
    move = det.check(ok, 3.5)
    assert move is not None and move.current is RECOVERING and not det.read_only
    disagreeing = Check(30, 29, 1, 4)
    for check in (ok, ok, disagreeing, ok, ok):  # clean rounds must be consecutive too
        assert det.check(check, 4.0) is None
    move = det.check(ok, 5.0)
    assert move is not None and move.healed and move.now - move.detected_at == 3.0
