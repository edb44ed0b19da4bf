"""The in-memory network: seeded faults are reproducible, and gossip survives them."""

from __future__ import annotations

from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.transport.memory import Faults

INTERVAL = 0.1
CFG = MeshConfig(fanout=4, round_interval=INTERVAL)


def _run(seed: int, faults: Faults) -> tuple[set[bytes], tuple[int, ...]]:
    cluster = build_cluster(30, seed=seed, config=CFG, faults=faults)
    net = cluster.network
    net.run_for(INTERVAL)
    for i in (0, 5, 9):
        cluster.honest[i].write(f"k{i}", b"v", net.now)
    net.run_for(20 * INTERVAL)
    s = net.stats
    return cluster.digests(), (s.sent, s.delivered, s.lost, s.duplicated)


def test_same_seed_same_run_different_seed_different_run() -> None:
    faults = Faults(loss=0.1, duplicate=0.1, reorder=0.3)
    assert _run(3, faults) == _run(3, faults)
    assert _run(3, faults)[1] != _run(4, faults)[1]


def test_gossip_converges_despite_loss_duplication_and_reordering() -> None:
    digests, (sent, delivered, lost, duplicated) = _run(8, Faults(loss=0.2, duplicate=0.2, reorder=0.5))
    assert lost > 0 and duplicated > 0 and delivered < sent + duplicated
    assert len(digests) == 1


def test_a_partition_keeps_sides_apart_and_healing_merges_them() -> None:
    cluster = build_cluster(20, seed=2, config=CFG)
    net = cluster.network
    left = [e.address for e in cluster.honest[:10]]
    right = [e.address for e in cluster.honest[10:]]
    net.partition([left, right])
    a = cluster.honest[0].write("side", b"left", net.now)
    b = cluster.honest[15].write("side", b"right", net.now)
    net.run_for(15 * INTERVAL)
    assert all(e.state.get(b.agent, b.key) is None for e in cluster.honest[:10])
    assert all(e.state.get(a.agent, a.key) is None for e in cluster.honest[10:])
    assert net.stats.partitioned > 0
    net.heal()
    net.run_for(15 * INTERVAL)
    assert cluster.all_have(a.agent, a.key, 1) and cluster.all_have(b.agent, b.key, 1)
    assert len(cluster.digests()) == 1


def test_agents_discover_the_mesh_from_one_seed() -> None:
    cluster = build_cluster(
        25,
        seed=4,
        config=MeshConfig(fanout=4, round_interval=INTERVAL, membership_every_rounds=2),
        full_membership=False,
    )
    net = cluster.network
    net.run_for(30 * INTERVAL)
    for e in cluster.honest:
        assert len(e.registry) >= 20, e.node_id
    w = cluster.honest[-1].write("hello", b"mesh", net.now)
    net.run_for(15 * INTERVAL)
    assert cluster.all_have(w.agent, w.key, w.version)
