"""The engine-correctness scenarios of issue 9 over QUIC between node processes: gap-making relays
(f < n/3), a partition healed while writes go on, and a late joiner while writes go on. At the end of
each, every honest node holds every write that was accepted so far (counted) under one digest.

One mesh of 7 processes (2 of them relays that leave gaps) serves the scenarios in turn, so they cost
one start-up. The partition is made by the nodes' fault injection (`POST /faults`): each node drops
every frame to and from the other side, as a firewall DROP rule would; no root needed.
"""

from __future__ import annotations

import threading
import time
import urllib.error
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from knhk_mesh.localcluster import ClusterSpec, LocalCluster, NodeProcess
from knhk_mesh.localcluster import wait_until as _wait

pytestmark = pytest.mark.slow

Write = tuple[str, str, int]  # (agent, key, version) of a put that returned 200
RELAYS = (5, 6)  # f = 2 < 7/3


class Mesh:
    """The running cluster and the ledger of every accepted write."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.accepted: list[Write] = []
        self._lock = threading.Lock()

    def put(self, node: NodeProcess, key: str) -> Write:
        doc = self.cluster.put(node, key, f"value of {key}")
        write = (doc["agent"], doc["key"], int(doc["version"]))
        with self._lock:
            self.accepted.append(write)
        return write

    def burst(self, nodes: Sequence[NodeProcess], tag: str, per_node: int) -> list[Write]:
        """`per_node` writes at each node, all nodes at once."""

        def one(node: NodeProcess) -> list[Write]:
            return [self.put(node, f"{tag}/{node.name}/{i}") for i in range(per_node)]

        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            return [w for ws in pool.map(one, nodes) for w in ws]

    def held(self, node: NodeProcess) -> set[Write]:
        rows = self.cluster.call(node, "GET", "/entries")["entries"]
        return {(a, k, int(v)) for a, k, v in rows}

    def missing(self, nodes: Sequence[NodeProcess]) -> dict[str, int]:
        out = {}
        for node in nodes:
            try:
                held = self.held(node)
            except (urllib.error.URLError, OSError):
                out[node.name] = len(self.accepted)
                continue
            out[node.name] = sum(1 for w in self.accepted if w not in held)
        return out

    def settled(self) -> bool:
        honest = self.cluster.honest()
        return self.cluster.converged(honest) and not any(self.missing(honest).values())

    def assert_settles(self, timeout: float = 60.0) -> None:
        if not _wait(self.settled, timeout, poll=1.0):
            honest = self.cluster.honest()
            digests = {n: s["digest"][:12] for n, s in self.cluster.statuses(honest).items()}
            missing = self.missing(honest)
            raise AssertionError(f"not settled in {timeout:g} s: missing {missing}, digests {digests}")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    spec = ClusterSpec(nodes=7, fanout=3, round_interval=0.2, stale_timeout=60.0, withholding=RELAYS)
    cluster = LocalCluster(Path(tmp_path_factory.mktemp("quic-repair")) / "mesh", spec)
    try:
        cluster.prepare()
        cluster.start(batch=3)  # admitted 3 at a time, each seeded by two members (as the bench starts 32)
        assert cluster.wait_for_membership(timeout=60), cluster.statuses()
        yield Mesh(cluster)
    finally:
        cluster.stop()


def test_gap_making_relay_processes_cannot_keep_honest_nodes_apart(mesh: Mesh) -> None:
    cluster = mesh.cluster
    honest = cluster.honest()
    assert len(honest) == 5 and [n.index for n in cluster.nodes if not n.honest] == list(RELAYS)
    for r in range(4):  # several writes per owner per round: frames carry runs a relay can thin
        mesh.burst(honest, f"gaps{r}", per_node=3)
        time.sleep(0.2)
    mesh.assert_settles()
    relays = cluster.statuses([cluster.nodes[i] for i in RELAYS])
    assert len(relays) == 2 and all(s["byzantine"] == "withholding_relay" for s in relays.values())
    assert sum(s["withheld"] for s in relays.values()) > 0  # the relays did leave gaps
    assert len(mesh.accepted) == 5 * 4 * 3


def test_a_partition_healed_while_writes_go_on_converges(mesh: Mesh) -> None:
    cluster = mesh.cluster
    honest = cluster.honest()
    left = [*honest[:3], cluster.nodes[RELAYS[0]]]
    right = [*honest[3:5], cluster.nodes[RELAYS[1]]]
    cluster.partition([left, right])
    writer: threading.Thread | None = None
    try:
        on_left = mesh.burst(honest[:3], "left", per_node=4)
        on_right = mesh.burst(honest[3:5], "right", per_node=4)
        time.sleep(2.0)  # ten rounds: plenty for gossip to cross, were the split not real
        # each side has its own writes and none of the other's
        assert _wait(lambda: set(on_left) <= mesh.held(honest[0]), 30)
        assert _wait(lambda: set(on_right) <= mesh.held(honest[4]), 30)
        assert not set(on_right) & mesh.held(honest[0]) and not set(on_left) & mesh.held(honest[4])
        dropped = cluster.statuses(honest)
        assert all(s["transport"]["dropped_fault"] > 0 for s in dropped.values())
        writer = threading.Thread(target=mesh.burst, args=(honest, "across-heal", 3))
        writer.start()  # writes go on while the split heals
    finally:
        cluster.heal()
    assert writer is not None
    writer.join(timeout=60)
    assert not writer.is_alive()
    mesh.assert_settles()
    assert all(s["faults"]["drop"] == [] for s in cluster.statuses().values())


def test_a_late_joiner_catches_up_while_writes_go_on(mesh: Mesh) -> None:
    cluster = mesh.cluster
    before = len(mesh.accepted)
    writer = threading.Thread(target=mesh.burst, args=(cluster.honest()[:3], "during-join", 5))
    writer.start()
    joiner = cluster.add_node()
    writer.join(timeout=60)
    assert not writer.is_alive()
    mesh.burst([joiner, *cluster.honest()[:2]], "after-join", per_node=2)
    mesh.assert_settles()
    assert joiner in cluster.honest() and len(cluster.honest()) == 6
    assert len(mesh.held(joiner)) >= len(mesh.accepted) > before  # it holds every write so far
    assert cluster.statuses([joiner])[joiner.name]["peers"] >= 4  # it met the mesh, not just its seed
