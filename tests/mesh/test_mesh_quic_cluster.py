"""Node processes over QUIC on loopback: a 16-process mesh converges with zero live-check violations,
a node killed with SIGKILL is detected, restarts, catches up and loses no accepted write, and a node
joins through earlier nodes while node 0 (everyone's first seed) is down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from knhk_mesh import pki
from knhk_mesh.localcluster import ClusterSpec, LocalCluster, NodeProcess
from knhk_mesh.localcluster import wait_until as _wait

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sixteen_node_processes_converge_over_quic_with_zero_violations(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    env = {**os.environ, "KNHK_OTEL_REGISTRY": str(REPO / "schema")}
    argv = ["up", "--transport", "quic", "--nodes", "16", "--duration", "15"]
    argv += ["--workdir", str(tmp_path / "mesh"), "--summary", str(summary)]
    proc = subprocess.run(
        [sys.executable, "-m", "knhk_mesh.cli", *argv],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    assert summary.exists(), proc.stdout + proc.stderr
    doc = json.loads(summary.read_text())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert doc["error"] is None
    assert len(doc["writes"]) == 3 and len({w["node"] for w in doc["writes"]}) == 3
    assert doc["converged"] and doc["converged_after_s"] is not None
    assert set(doc["exit_codes"].values()) == {0} and len(doc["exit_codes"]) == 16  # graceful shutdown
    statuses = doc["final_status"]
    assert len(statuses) == 16 and len({s["digest"] for s in statuses.values()}) == 1
    assert all(s["entries"] >= 3 and s["handshake_refusals"] == {} for s in statuses.values())
    lc = doc["live_check"]
    assert lc["findings_by_level"]["violation"] == 0
    assert lc["total_samples"] > 1000
    assert set(lc["samples_by_type"]) >= {"span", "metric", "event"}
    # the coverage of the run is reported, and the transport's own signals are in it
    assert lc["coverage"]["spans"] > 0.5 and lc["coverage"]["metrics"] > 0.4
    assert "knhk.mesh.queue.size" not in lc["never_seen"]["metrics"]
    # the nodes validate their own telemetry too (count mode exports its findings counter from 0)
    assert "knhk.mesh.schema.findings" not in lc["never_seen"]["metrics"]
    assert "live-check:" in proc.stdout and "0 violations" in proc.stdout


@pytest.fixture
def four_nodes(tmp_path: Path) -> Iterator[LocalCluster]:
    spec = ClusterSpec(nodes=4, fanout=3, round_interval=0.2, stale_timeout=3.0, idle_timeout=3.0)
    cluster = LocalCluster(tmp_path / "mesh", spec)
    try:
        cluster.prepare()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.slow
def test_a_node_killed_with_sigkill_loses_no_accepted_write(four_nodes: LocalCluster) -> None:
    cluster = four_nodes
    victim = cluster.nodes[2]
    accepted: list[tuple[str, str, int]] = []  # (agent, key, version) of every put that returned 200
    failed = 0

    def writer() -> None:
        nonlocal failed
        for i in range(400):  # bounded: the kill ends it long before
            try:
                doc = cluster.put(victim, f"k{i}", f"value {i}")
            except (urllib.error.URLError, OSError, ValueError):
                failed += 1
                if failed >= 3:
                    return
                continue
            accepted.append((doc["agent"], doc["key"], doc["version"]))

    assert _wait(lambda: cluster.converged(min_entries=0), 30)
    thread = threading.Thread(target=writer)
    thread.start()
    assert _wait(lambda: len(accepted) >= 15, 60, poll=0.02)
    cluster.kill(victim)  # SIGKILL, mid-stream of writes
    thread.join(timeout=60)
    assert not thread.is_alive()
    before = list(accepted)
    assert len(before) >= 15

    # the others notice: the silent peer is pruned and the departure emitted as an event
    others = [n for n in cluster.nodes if n is not victim]
    # (stale_timeout is 3 s; the bound leaves room for a loaded machine, where it once took over 30 s)
    assert _wait(lambda: all(s["peers_left"] >= 1 for s in cluster.statuses(others).values()), 90)

    cluster.restart(victim)
    status = cluster.call(victim, "GET", "/status")
    # every accepted write survived the kill (one more may be on disk: committed, but killed before
    # its answer left, so never accepted by the writer)
    assert len(before) <= status["stored_entries"] <= len(before) + 1
    assert status["own_version"] >= max(v for _, _, v in before)
    after = cluster.put(victim, "after-restart", "fresh")
    assert after["version"] == status["own_version"] + 1  # no version is ever reused
    accepted.append((after["agent"], after["key"], after["version"]))

    # it rejoins and catches up; every node holds every accepted write
    assert _wait(lambda: cluster.converged(min_entries=len(accepted)), 60)
    for node in cluster.nodes:
        held = {tuple(e) for e in cluster.call(node, "GET", "/entries")["entries"]}
        missing = [w for w in accepted if w not in held]
        assert missing == [], f"{node.name} lacks {len(missing)} of {len(accepted)} accepted writes"
    for s in cluster.statuses().values():
        assert "equivocation" not in s["detections"]  # a reused version would read as equivocation


@pytest.mark.slow
def test_a_revoked_node_is_cut_off_and_leaves_membership(four_nodes: LocalCluster) -> None:
    cluster = four_nodes
    revoked = cluster.nodes[3]
    others = cluster.nodes[:3]
    assert cluster.wait_for_membership(timeout=30)
    pki.revoke(cluster.pki_dir, cluster.pki_dir / f"{revoked.name}.pem")  # nodes reload the CRL within 1 s

    def cut_off() -> bool:
        st = cluster.statuses(others)
        return len(st) == 3 and all(
            s["banned"] == [revoked.node_id] and s["peers"] == 2 and s["handshake_refusals"]
            for s in st.values()
        )

    assert _wait(cut_off, 30)
    # it stays out: membership gossip between the others no longer carries its record
    time.sleep(3.0)
    assert cut_off()
    for s in cluster.statuses(others).values():
        assert set(s["handshake_refusals"]) <= {"revoked_certificate"}
    # the others still gossip among themselves
    doc = cluster.put(others[0], "after-revocation", "still here")
    assert _wait(lambda: cluster.converged(others, min_entries=1), 30)
    value = cluster.call(others[2], "GET", f"/get?key=after-revocation&agent={doc['agent']}")
    assert value["value"] == "still here"

    # its record is no longer gossiped: a newcomer meets every member but never hears of it (had it
    # heard, it would have challenged it and been refused at the handshake)
    joiner = cluster.add_node(among=others)  # the operator seeds it with members only
    members = {n.node_id for n in others}
    assert _wait(lambda: members <= {p["agent"] for p in cluster.call(joiner, "GET", "/peers")["peers"]}, 30)
    time.sleep(3.0)  # several membership rounds (every 5 rounds of 0.2 s) with every member
    known = {p["agent"] for p in cluster.call(joiner, "GET", "/peers")["peers"]}
    status = cluster.call(joiner, "GET", "/status")
    assert revoked.node_id not in known and status["handshake_refusals"] == {} and status["banned"] == []


@pytest.mark.slow
def test_a_key_rotation_over_quic_keeps_the_agent_and_its_standing(four_nodes: LocalCluster) -> None:
    """Rotate a node's key under a new certificate (files replaced, reloaded without a restart): the
    others keep the same member, now under the new key; its old certificate can then be revoked."""
    cluster = four_nodes
    node = cluster.nodes[1]
    others = [n for n in cluster.nodes if n is not node]
    assert cluster.wait_for_membership(timeout=30)
    first = cluster.put(node, "before-rotation", "old key")

    def view(of: LocalCluster) -> dict[str, dict[str, object]]:
        out = {}
        for n in others:
            rows = [p for p in of.call(n, "GET", "/peers")["peers"] if p["agent"] == node.node_id]
            out[n.name] = rows[0] if rows else {}
        return out

    before = view(cluster)
    joined_before = {n: s["peers_joined"] for n, s in cluster.statuses(others).items()}
    old_key = cluster.call(node, "GET", "/status")["public_key"]
    assert all(v.get("public_key") == old_key for v in before.values())

    old_cert = cluster.pki_dir / f"{node.name}.old.pem"
    old_cert.write_bytes((cluster.pki_dir / f"{node.name}.pem").read_bytes())
    new_key = cluster.pki_dir / f"{node.name}.next.key"
    pki.issue_node(cluster.pki_dir, node.name, cluster.pki_dir, key_path=new_key)  # new cert, new key
    new_key.replace(cluster.pki_dir / f"{node.name}.key")

    def rotated() -> bool:
        st = cluster.call(node, "GET", "/status")
        return st["key_epoch"] == 1 and st["public_key"] != old_key

    assert _wait(rotated, 30)
    new_public = cluster.call(node, "GET", "/status")["public_key"]
    assert cluster.call(node, "GET", "/status")["node_id"] == node.node_id  # the same agent id
    assert _wait(lambda: all(v.get("public_key") == new_public for v in view(cluster).values()), 30)
    after = view(cluster)
    for name, row in after.items():  # the same member: same id and address, its reputation kept
        assert row["agent"] == node.node_id and row["address"] == before[name]["address"]
        assert row["reputation"] == before[name]["reputation"]
    assert {n: s["peers_joined"] for n, s in cluster.statuses(others).items()} == joined_before

    # revoking the old certificate retires the old key: connections still open under it (the node
    # re-makes its own only a second after rotating) close, but nobody is banned or refused (issue 11)
    pki.revoke(cluster.pki_dir, old_cert)

    def crl_taken() -> bool:
        st = cluster.statuses()
        return len(st) == 4 and all(s["crl_revoked"] == 1 for s in st.values())

    assert _wait(crl_taken, 30)  # every node reloaded the CRL (within a second of the change)
    second = cluster.put(node, "after-rotation", "new key")
    assert second["version"] == first["version"] + 1
    assert _wait(lambda: cluster.converged(min_entries=2), 30)
    for name, s in cluster.statuses(others).items():
        assert (s["banned"], s["peers"], s["handshake_refusals"]) == ([], 3, {}), name
        assert s["transport"]["closed_revoked"] == 0, name
    for n in others:
        doc = cluster.call(n, "GET", f"/get?key=after-rotation&agent={node.node_id}")
        assert doc["value"] == "new key"

    # a restart resumes the rotated identity: same agent, newest key, versions go on
    cluster.kill(node, signal.SIGTERM)
    cluster.restart(node)
    status = cluster.call(node, "GET", "/status")
    assert (status["node_id"], status["key_epoch"], status["public_key"]) == (node.node_id, 1, new_public)
    assert status["stored_entries"] == 2
    assert cluster.put(node, "after-restart", "still rotated")["version"] == second["version"] + 1
    assert _wait(lambda: cluster.converged(min_entries=3), 30)


def _seed_indexes(cluster: LocalCluster, config: Path) -> list[int]:
    index_of = {n.quic_port: n.index for n in cluster.nodes}
    return [index_of[int(s.rsplit(":", 1)[1])] for s in yaml.safe_load(config.read_text())["seeds"]]


@pytest.mark.slow
def test_a_node_joins_through_earlier_nodes_while_node_zero_is_down(four_nodes: LocalCluster) -> None:
    cluster = four_nodes
    # node 0 and up to two others of the waves started before (node 0, then 1, then 2 and 3, ...)
    for node in cluster.nodes:
        seeds = _seed_indexes(cluster, node.config)
        assert len(seeds) == min(2, node.index) and len(set(seeds)) == len(seeds), (node.name, seeds)
        assert all(i < node.index for i in seeds) and (node.index == 0 or seeds[0] == 0), (node.name, seeds)
    assert cluster.wait_for_membership(timeout=60)

    first, rest = cluster.nodes[0], cluster.nodes[1:]
    cluster.kill(first)  # SIGKILL: node 0 is gone for good
    joiner = cluster.add_node()
    seeds = _seed_indexes(cluster, joiner.config)
    assert seeds[0] == 0 and len(seeds) == 3 and set(seeds[1:]) <= {n.index for n in rest}

    members = {n.node_id for n in rest}

    def knows(node: NodeProcess, agent: str) -> bool:
        return agent in {p["agent"] for p in cluster.call(node, "GET", "/peers")["peers"]}

    def admitted() -> bool:
        return all(knows(joiner, m) for m in members) and all(knows(n, joiner.node_id) for n in rest)

    assert _wait(admitted, 60)  # it met every live member, and each of them admitted it
    doc = cluster.put(joiner, "joined-without-node-0", "in")
    assert _wait(lambda: cluster.converged([*rest, joiner], min_entries=1), 30)
    for node in rest:
        got = cluster.call(node, "GET", f"/get?key=joined-without-node-0&agent={doc['agent']}")
        assert got["value"] == "in"
