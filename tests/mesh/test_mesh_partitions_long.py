"""A split that outlasts `stale_timeout`: the side at quorum prunes the agents across the cut (they
have been silent for longer than the timeout, in rounds it ran too), so after the heal their frames
come from senders it no longer knows. They must be taken back in (an unknown sender's address is
challenged, and membership samples carry the minority's own records) and every accepted write must
reach everyone, within a bound.

stale_timeout is 3 s here (30 rounds) and the split lasts 8 s, so the majority has pruned the whole
minority well before the heal; the minority, read-only, prunes nobody (its peers' addresses are what
healing needs).
"""

from __future__ import annotations

from knhk_mesh.cluster import build_cluster
from knhk_mesh.core.config import MeshConfig
from knhk_mesh.core.messages import Entry
from knhk_mesh.core.partition import PartitionStatus, quorum

from .test_mesh_partitions import _split, _statuses, _write_everywhere

CFG = MeshConfig(stale_timeout=3.0, prune_every_rounds=10)
INTERVAL = CFG.round_interval
SPLIT_S = 8.0
BACK_BOUND = 60  # rounds after the heal until everyone knows everyone and holds every accepted write


def test_a_split_longer_than_the_stale_timeout_heals_with_every_member_and_write_back() -> None:
    n, minority = 30, 9  # quorum 16: 21 agents keep it
    cluster = build_cluster(n, seed=34, config=CFG)
    net = cluster.network
    net.run_for(25 * INTERVAL)
    assert _statuses(cluster.honest) == {PartitionStatus.HEALTHY}
    before, _ = _write_everywhere(cluster.honest, "before", net.now)
    net.run_for(10 * INTERVAL)
    small, large = cluster.honest[:minority], cluster.honest[minority:]
    assert len(large) >= quorum(n) > len(small)
    _split(cluster, small, large)
    started = net.now
    during: list[Entry] = []
    while net.now - started < SPLIT_S:  # bounded: 8 s of engine time; the majority keeps writing
        accepted, refused = _write_everywhere(cluster.honest, f"during/{round(net.now * 10)}", net.now)
        assert refused == minority
        during += accepted
        net.run_for(10 * INTERVAL)
    # the majority pruned every agent across the cut; the read-only minority pruned nobody
    assert all(e.agent_id not in m.registry for e in small for m in large)
    assert all(len(e.registry) == n - 1 for e in small)
    net.heal()
    accepted = before + during
    rounds = 0
    while not (
        all(len(e.registry) == n - 1 for e in cluster.honest)
        and _statuses(cluster.honest) == {PartitionStatus.HEALTHY}
        and len(cluster.digests()) == 1
    ):
        known = min(len(e.registry) for e in cluster.honest)
        assert rounds < BACK_BOUND, (
            f"not back within {BACK_BOUND} rounds: the least-informed agent knows {known} of {n - 1}, "
            f"{_statuses(cluster.honest)}, {len(cluster.digests())} roots"
        )
        net.run_for(INTERVAL)
        rounds += 1
    for e in cluster.honest:
        assert all(e.state.get(w.agent, w.key) == w for w in accepted), e.node_id
    after, refused = _write_everywhere(cluster.honest, "after", net.now)
    assert refused == 0 and len(after) == n
    print(
        f"\n{n - minority}/{minority} split for {SPLIT_S:g} s (stale_timeout {CFG.stale_timeout:g} s): "
        f"every member known everywhere, {len(accepted)} writes everywhere, {rounds} rounds after the heal"
    )
