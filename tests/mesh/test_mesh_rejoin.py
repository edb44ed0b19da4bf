"""An agent the mesh pruned comes back by itself: after a silence it re-announces its signed record
(to the addresses of peers it pruned too), and a peer receiving frames from a member it does not know
challenges that address; either way the mesh admits it again through the address challenge and every
write made meanwhile, on either side, reaches everyone."""

from __future__ import annotations

import dataclasses

from knhk_mesh.cluster import Cluster, build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.engine import MeshEngine
from knhk_mesh.core.messages import Entry
from knhk_mesh.core.partition import PartitionConfig

INTERVAL = 0.1
# The partition detector is off here: it would make the lone agent read-only (and keep it from pruning
# the peers across the cut); these scenarios are about rejoining, and tests/mesh/test_mesh_partitions.py
# covers what a cut-off agent does with the detector on.
CONFIG = MeshConfig(
    stale_timeout=2.0, prune_every_rounds=5, rejoin_after=1.0, partition=PartitionConfig(enabled=False)
)
BACK_WITHIN = 40  # rounds after the heal until it is known everywhere and holds every write


def _cut_off(cluster: Cluster, lone: MeshEngine, writes: list[Entry], rounds: int) -> None:
    """Isolate `lone` for `rounds` rounds while it and a few others keep writing."""
    net, others = cluster.network, [e for e in cluster.honest if e is not lone]
    net.partition([[lone.address], [e.address for e in others]])
    for r in range(rounds):
        if r % 5 == 0:
            writes.append(lone.write(f"alone/{r}", b"x" * 16, net.now))
            writes.extend(e.write(f"rest/{r}/{e.node_id}", b"y" * 16, net.now) for e in others[:3])
        net.run_for(INTERVAL)
    assert all(lone.agent_id not in e.registry for e in others), "the others never pruned it"
    net.heal()


def _back(cluster: Cluster, lone: MeshEngine, writes: list[Entry]) -> int:
    """Rounds after the heal until every agent knows `lone` and all hold every write (one root)."""
    others = [e for e in cluster.honest if e is not lone]
    for rounds in range(1, BACK_WITHIN + 1):
        cluster.network.run_for(INTERVAL)
        if (
            all(lone.agent_id in e.registry for e in others)
            and len(cluster.digests()) == 1
            and all(cluster.all_have(w.agent, w.key, w.version) for w in writes)
        ):
            return rounds
    known = sum(lone.agent_id in e.registry for e in others)
    raise AssertionError(
        f"not back in {BACK_WITHIN} rounds: known by {known} of {len(others)}, "
        f"{len(cluster.digests())} roots, it holds {len(lone.state)} of {len(writes)} writes"
    )


def test_an_agent_pruned_by_all_that_pruned_all_rejoins_after_the_silence() -> None:
    cluster = build_cluster(21, seed=61, config=CONFIG)
    lone = cluster.honest[5]
    writes: list[Entry] = []
    _cut_off(cluster, lone, writes, rounds=40)
    assert len(lone.registry) == 0  # it pruned everyone too: only the pruned addresses are left
    rounds = _back(cluster, lone, writes)
    assert lone.rejoins >= 1
    assert len(lone.registry) == 20
    assert all(len(e.state) == len(writes) for e in cluster.honest)  # nothing lost, nothing extra
    print(f"\nrejoined after a silence: back {rounds} rounds after the heal, {len(writes)} writes everywhere")


def test_a_peer_that_no_longer_knows_us_challenges_us_back_in() -> None:
    """It still knows the others and never re-announces (rejoin_after very long): the others, hearing
    from a member they pruned, challenge its address and admit it again."""
    cluster = build_cluster(21, seed=62, config=CONFIG)
    lone = cluster.honest[7]
    lone.config = dataclasses.replace(CONFIG, stale_timeout=1000.0, rejoin_after=1000.0)
    writes: list[Entry] = []
    _cut_off(cluster, lone, writes, rounds=40)
    assert len(lone.registry) == 20
    rounds = _back(cluster, lone, writes)
    assert lone.rejoins == 0
    assert all(len(e.state) == len(writes) for e in cluster.honest)
    print(f"\nchallenged back in: {rounds} rounds after the heal, {len(writes)} writes everywhere")
